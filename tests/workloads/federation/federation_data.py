"""Synthetic node data for the federation tests (numpy rows merged into real warehouses)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.local_node import LocalNode


def patient_rows(node: str, n: int, seed: int, *, cases: bool = True) -> pa.Table:
    """Rows with a known logistic risk model (nodes differ in age mix and baseline),
    inside the columns' public bounds."""
    rng = np.random.default_rng(seed)
    age = rng.integers(25, 81, n)
    bmi = np.clip(np.round(rng.normal(27 + (seed % 3), 4.5, n), 1), 18.5, 40.0)
    brca1 = rng.binomial(2, 0.08, n)
    tp53 = rng.binomial(2, 0.05, n)
    apoe4 = rng.binomial(2, 0.15, n)
    eta = -6.0 + 0.05 * age + 0.04 * bmi + 0.9 * brca1 + 0.7 * tp53 + 0.1 * apoe4
    cancer = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(np.int64)
    if not cases:
        cancer[:] = 0
    return pa.table(
        {
            "patient_id": [f"{node.upper()}-{i:07d}" for i in range(n)],
            "age": age.astype(np.int64),
            "variant_brca1": brca1.astype(np.int64),
            "variant_tp53": tp53.astype(np.int64),
            "variant_apoe4": apoe4.astype(np.int64),
            "bmi": bmi,
            "diagnosis_cancer": cancer,
        },
        schema=PATIENT_GENOMIC_DATA.arrow_schema(),
    )


def make_node(root: Path, name: str, n: int, seed: int, *, cases: bool = True) -> LocalNode:
    return write_rows(LocalNode(name, root), patient_rows(name, n, seed, cases=cases))


def write_rows(node: LocalNode, rows: pa.Table) -> LocalNode:
    warehouse = node.open_warehouse()
    try:
        warehouse.ensure_tables([PATIENT_GENOMIC_DATA])
        warehouse.merge(PATIENT_GENOMIC_DATA, rows)
    finally:
        warehouse.close()
    return node
