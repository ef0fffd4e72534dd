"""`python -m workloads fhir ...` on a local node."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from clinical_helpers import PATIENTS

from workloads.cli import main
from workloads.local_node import LocalNode


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_synth_ingest_status_view(node: LocalNode, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    base = ("--node", "us", "--root", str(node.root))
    code, out, _ = _run(capsys, "fhir", "synth", *base, "--no-progress")
    assert code == 0 and json.loads(out)["bundles"] == PATIENTS + 2
    code, out, _ = _run(capsys, "fhir", "ingest", *base, "--no-progress", "--workers", "1")
    first = json.loads(out)
    assert code == 0 and first["inserted"] == first["resources"] > 0
    code, out, _ = _run(capsys, "fhir", "ingest", *base, "--no-progress", "--workers", "1")
    assert (json.loads(out)["inserted"], json.loads(out)["updated"]) == (0, 0)
    code, out, _ = _run(capsys, "fhir", "status", *base)
    status = json.loads(out)
    assert status["resources"]["Patient"] == PATIENTS
    assert sum(status["resources"].values()) == first["resources"]
    assert status["last_load"]["load_id"] == first["load_id"]
    assert status["quarantined"]["records"] == 0
    code, out, _ = _run(capsys, "fhir", "view", *base, "patients")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == PATIENTS and rows[0]["birth_date"]
    custom = tmp_path / "bmi.json"
    custom.write_text(json.dumps({
        "resourceType": "ViewDefinition", "resource": "Observation", "status": "active",
        "select": [{"column": [{"name": "patient", "path": "subject.getReferenceKey(Patient)"},
                               {"name": "bmi", "path": "value.ofType(Quantity).value"}]}],
        "where": [{"path": "code.coding.where(code = '39156-5').exists()"}]}))
    out_csv = tmp_path / "bmi.csv"
    code, _, _ = _run(capsys, "fhir", "view", *base, str(custom), "--out", str(out_csv))
    bmi_rows = list(csv.DictReader(out_csv.open()))
    assert code == 0 and {r["patient"] for r in bmi_rows} == {f"US-{i:04d}"
                                                              for i in range(PATIENTS)}


def test_bad_view_is_a_user_error(node: LocalNode, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"select": []}))
    code, _, err = _run(capsys, "fhir", "view", "--node", "us", "--root", str(node.root),
                        str(bad))
    assert code == 2 and "names no resource" in err and "Traceback" not in err


def test_ingest_without_input_says_how(node: LocalNode,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "fhir", "ingest", "--node", "us", "--root", str(node.root))
    assert code == 2 and "fhir synth --node us" in err


@pytest.mark.slow  # captures the us stack under Pulumi mocks
def test_batch_dry_run_names_the_fhir_kind(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    from infra.capture import capture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        outputs = capture("us").outputs
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    code, out, _ = _run(capsys, "fhir", "batch", "dry-run", "--stack-outputs", str(path),
                        "--item", "fhir/input/a.json", "--item", "fhir/input/b.json")
    assert code == 0
    job = json.loads(out)
    assert job["jobId"].startswith("fhir-")
    env = json.dumps(job["job"])
    assert '"SOVEREIGN_TASK_KIND": "fhir"' in env and "fhir/input/b.json" in env
    code, _, err = _run(capsys, "fhir", "batch", "dry-run", "--stack-outputs", str(path),
                        "--item", "x.json", "--location", "europe-west4")
    assert code == 2 and "outside node region" in err


def test_batch_run_local(synth_node: LocalNode, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "fhir", "batch", "run-local", "--node", "us", "--root",
                        str(synth_node.root), "--workers", "1", "--no-progress")
    summary = json.loads(out)
    assert code == 0 and summary["inserted"] == summary["resources"] > 0
