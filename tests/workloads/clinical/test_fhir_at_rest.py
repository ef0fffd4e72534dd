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


def test_the_cli_names_the_registered_fhir_kind() -> None:
    from workloads.cli.fhir import FHIR_KIND
    from workloads.clinical.task import FHIR_TASK

    assert FHIR_TASK.name == FHIR_KIND


def test_fhir_batch_dry_run_builds_a_fhir_job_from_the_shipped_outputs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json
    from pathlib import Path

    example = Path(__file__).resolve().parents[3] / "docs" / "examples" / "us.outputs.json"
    assert main(["fhir", "batch", "dry-run", "--stack-outputs", str(example),
                 "--item", "fhir/input/a.json", "--item", "fhir/input/b.json"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["parent"] == "projects/fed-node-us/locations/us-central1"
    assert job["job"]["taskGroups"][0]["taskCount"] == "2"
    assert "fhir" in json.dumps(job["job"]["taskGroups"][0])
