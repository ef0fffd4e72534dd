"""Attacker-minded checks of what the guard relies on: with clipping, one row moves each
released number by at most its declared sensitivity, whatever its values; and no text at
all gets through the cohort parser except a tree of allowed nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.workloads.federation.federation_data import patient_rows
from workloads.analysis import cohort, glm, statistics
from workloads.analysis.spec import from_dict, validate
from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.local_node import LocalNode

SPEC = from_dict({"table": "patient_genomic_data", "outcome": "diagnosis_cancer",
                  "covariates": ["age", "bmi"], "categorical": ["variant_brca1"]})


def _extreme_row(age: int, bmi: float, brca1: int, cancer: int) -> pa.Table:
    return pa.table({"patient_id": ["XX-1"], "age": [age], "variant_brca1": [brca1],
                     "variant_tp53": [0], "variant_apoe4": [0], "bmi": [bmi],
                     "diagnosis_cancer": [cancer]}, schema=PATIENT_GENOMIC_DATA.arrow_schema())


@pytest.mark.parametrize(("age", "bmi", "brca1", "cancer"),
                         [(1000, -50.0, 2, 1), (-7, 400.0, 1, 0), (80, 40.0, 0, 1)])
def test_one_row_moves_each_slot_by_at_most_its_sensitivity(
    tmp_path: Path, age: int, bmi: float, brca1: int, cancer: int
) -> None:
    node = LocalNode("zz", tmp_path)
    with node.open_warehouse() as warehouse:
        warehouse.ensure_tables([PATIENT_GENOMIC_DATA])
        warehouse.merge(PATIENT_GENOMIC_DATA, patient_rows("zz", 200, 3))
        design = validate(SPEC)
        slots = glm.slots(design, clipped=True)
        rng = np.random.default_rng(0)
        betas = [rng.normal(0, 3, len(design.terms)) for _ in range(3)]
        before = [glm.node_aggregate(warehouse, SPEC, b, clip=True).to_vector() for b in betas]
        warehouse.merge(PATIENT_GENOMIC_DATA, _extreme_row(age, bmi, brca1, cancer))
        after = [glm.node_aggregate(warehouse, SPEC, b, clip=True).to_vector() for b in betas]
    for a, b in zip(before, after, strict=True):
        for slot, change in zip(slots, np.abs(b - a), strict=True):
            if slot.sensitivity is not None:
                assert change <= slot.sensitivity + 1e-9, slot.name


def test_statistics_cells_respect_sensitivity(tmp_path: Path) -> None:
    spec = statistics.from_dict({"table": "patient_genomic_data", "numeric": ["age", "bmi"],
                                 "crosstabs": [["variant_brca1", "diagnosis_cancer"]],
                                 "by": "variant_tp53"})
    node = LocalNode("zz", tmp_path)
    with node.open_warehouse() as warehouse:
        warehouse.ensure_tables([PATIENT_GENOMIC_DATA])
        warehouse.merge(PATIENT_GENOMIC_DATA, patient_rows("zz", 100, 4))
        before = statistics.node_statistics(warehouse, spec)
        warehouse.merge(PATIENT_GENOMIC_DATA, _extreme_row(1000, -50.0, 2, 1))
        after = statistics.node_statistics(warehouse, spec)
    cells = statistics.plan(spec).cells
    for cell, change in zip(cells, np.abs(after - before), strict=True):
        assert change <= cell.sensitivity + 1e-9, cell


_ALPHABET = st.sampled_from(
    ["age", "bmi", "variant_brca1", "patient_id", "AND", "OR", "NOT", "IN", "BETWEEN", "(",
     ")", ",", "=", "<", ">=", "!=", "1", "2.5", "-3", "'0'", "'x'", ";", "--", "/*", "SELECT",
     "exp", "+", "'", "\\", " ", "TRUE", "NULL", "IS", "e9", "0x1"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=14).map(" ".join) | st.text(max_size=40))
def test_any_text_is_refused_or_an_allowed_tree(text: str) -> None:
    try:
        tree = cohort.parse(text, PATIENT_GENOMIC_DATA)
    except UserError:
        return
    if tree is None:
        assert not text.strip()
        return
    assert {type(node) for node in tree.walk()} <= set(cohort.ALLOWED_NODES)
    rendered = tree.sql(dialect="duckdb")
    assert ";" not in rendered and "--" not in rendered and "/*" not in rendered
