"""Fixtures: a local node with patients, and one with their synthetic FHIR bundles."""

from __future__ import annotations

from pathlib import Path

import pytest
from clinical_helpers import PATIENTS, patients_table

from workloads.clinical.load import INPUT_PREFIX, node_store
from workloads.clinical.synth import write_synthetic
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.local_node import LocalNode


@pytest.fixture
def node(tmp_path: Path) -> LocalNode:
    """A local node whose warehouse holds PATIENTS patients."""
    local = LocalNode("us", tmp_path / "nodes")
    with local.open_warehouse() as wh:
        wh.merge(PATIENT_GENOMIC_DATA, patients_table(PATIENTS), label="patients")
    return local


@pytest.fixture
def synth_node(node: LocalNode) -> LocalNode:
    """The node with Synthea-shaped bundles for its patients under fhir/input/."""
    write_synthetic(patients_table(PATIENTS), node_store(node), INPUT_PREFIX, progress=False)
    return node
