"""Fixtures: a local node with patients."""

from __future__ import annotations

from pathlib import Path

import pytest
from vcf_helpers import patients_table

from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.local_node import LocalNode


@pytest.fixture
def node(tmp_path: Path) -> LocalNode:
    """A local node whose warehouse holds 40 patients."""
    local = LocalNode("us", tmp_path / "nodes")
    with local.open_warehouse() as wh:
        wh.merge(PATIENT_GENOMIC_DATA, patients_table(40), label="patients")
    return local
