"""After the FHIR example, every byte under the node's folder is under the node's key."""

from __future__ import annotations

import pytest

from workloads.cli import main
from workloads.local_node import LocalNode


def test_no_plaintext_record_under_the_node_after_synth_and_ingest(
    node: LocalNode, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--node", node.name, "--root", str(node.root)]
    assert main(["fhir", "synth", *base]) == 0
    assert main(["fhir", "ingest", *base]) == 0
    capsys.readouterr()
    with node.open_warehouse(create=False) as wh:
        ids = wh.query("SELECT patient_id FROM node.main.patient_genomic_data")
    markers = [b'"resourceType"', b"urn:uuid:", b"http://loinc.org", b"39156-5",
               b"http://snomed.info/sct", *(i.encode() for i in ids.column(0).to_pylist())]
    files = [p for p in node.folder.rglob("*") if p.is_file()]
    assert any(p.is_relative_to(node.bucket) for p in files)  # bundles and staging exist
    for path in files:
        data = path.read_bytes()
        found = [m for m in markers if m in data]
        assert not found, f"{path} holds plaintext {found[:3]}"
