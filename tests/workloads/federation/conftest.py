"""Fixtures: node warehouses filled with synthetic rows, and the Pub/Sub emulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from workloads.federation import emulator
from workloads.local_node import LocalNode
from workloads.tables import PATIENT_GENOMIC_DATA


def patient_rows(node: str, n: int, seed: int) -> pa.Table:
    """Rows with a known logistic risk model (nodes differ in age mix and baseline)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(25, 81, n)
    bmi = np.round(rng.normal(27 + (seed % 3), 4.5, n), 1)
    brca1 = rng.binomial(2, 0.08, n)
    tp53 = rng.binomial(2, 0.05, n)
    apoe4 = rng.binomial(2, 0.15, n)
    eta = -6.0 + 0.05 * age + 0.04 * bmi + 0.9 * brca1 + 0.7 * tp53 + 0.1 * apoe4
    cancer = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(np.int64)
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


def make_node(root: Path, name: str, n: int, seed: int) -> LocalNode:
    node = LocalNode(name, root)
    warehouse = node.open_warehouse()
    try:
        warehouse.ensure_tables([PATIENT_GENOMIC_DATA])
        warehouse.merge(PATIENT_GENOMIC_DATA, patient_rows(name, n, seed))
    finally:
        warehouse.close()
    return node


@pytest.fixture(scope="session")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[LocalNode]]:
    """us (3,000 rows) and eu (2,000 rows), built once per test session (read-only)."""
    root = tmp_path_factory.mktemp("nodes")
    return root, [make_node(root, "us", 3000, 1), make_node(root, "eu", 2000, 2)]


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[str]:
    """One emulator per pytest(-xdist) worker, on a free port; sets PUBSUB_EMULATOR_HOST."""
    problems = emulator.missing()
    if problems:
        pytest.skip("Pub/Sub emulator not usable: " + "; ".join(problems))
    with emulator.running_emulator() as host:
        old = os.environ.get("PUBSUB_EMULATOR_HOST")
        os.environ["PUBSUB_EMULATOR_HOST"] = host
        try:
            yield host
        finally:
            if old is None:
                os.environ.pop("PUBSUB_EMULATOR_HOST", None)
            else:
                os.environ["PUBSUB_EMULATOR_HOST"] = old
