"""Bad input: every bad record quarantined (file, line, reason), the rest loaded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from workloads.cli import main
from workloads.clinical.load import QUARANTINE_PREFIX, ingest, node_store, sources_from
from workloads.contracts.tables.clinical import MAX_RESOURCE_BYTES
from workloads.local_node import LocalNode


def _patient(pid: str, family: str = "Doe", **extra: Any) -> str:
    return json.dumps({"resourceType": "Patient", "id": pid, "gender": "female",
                       "name": [{"family": family, "given": ["Ann"]}], **extra})


def _observation(oid: str, subject: str) -> str:
    return json.dumps({"resourceType": "Observation", "id": oid, "status": "final",
                       "code": {"coding": [{"system": "http://loinc.org", "code": "39156-5"}]},
                       "subject": {"reference": subject}, "valueQuantity": {"value": 25.1}})


GOOD = [_patient("good-1"), _observation("obs-1", "Patient/good-1")]

CASES = {
    "invalid JSON": ('{"resourceType": "Patient", "id": ', "invalid JSON"),
    "unknown resourceType": (json.dumps({"resourceType": "Spaceship", "id": "s1"}),
                             "unknown resourceType 'Spaceship'"),
    "validation failure": (json.dumps({"resourceType": "Observation", "id": "o-bad",
                                       "status": "final",
                                       "subject": {"reference": "Patient/good-1"}}),
                           "fails FHIR R4 validation: code"),
    "meta.generated is not FHIR": (_patient("gen-1", meta={"generated": "2024-01-01"}),
                                   "fails FHIR R4 validation: meta.generated"),
    "dangling reference": (_observation("obs-2", "Patient/nobody"),
                           "dangling reference 'Patient/nobody'"),
    "dangling conditional reference": (
        json.dumps({"resourceType": "Encounter", "id": "e1", "status": "finished",
                    "class": {"code": "AMB"}, "subject": {"reference": "Patient/good-1"},
                    "serviceProvider": {"reference": "Organization?identifier=x|1"}}),
        "dangling reference 'Organization?identifier=x|1'"),
    "over 1 MB": (_patient("big-1", text={"status": "generated",
                                          "div": "<div>" + "x" * MAX_RESOURCE_BYTES + "</div>"}),
                  "over the 1048576-byte limit"),
}


def _write(folder: Path, name: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _loaded_ids(node: LocalNode) -> set[str]:
    with node.open_warehouse() as wh:
        return set(wh.query("SELECT id FROM node.main.fhir_resources").column(0).to_pylist())


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_line_is_quarantined_rest_loaded(node: LocalNode, tmp_path: Path, case: str) -> None:
    bad, reason = CASES[case]
    path = _write(tmp_path / "in", "mixed.ndjson", [GOOD[0], bad, GOOD[1]])
    sha = _sha(path)
    report = ingest(node, sources_from(node, [str(path)]), workers=1, progress=False)
    assert _sha(path) == sha and path.exists()  # the user's file is only read
    assert len(report.quarantined) == 1, report.quarantined
    q = report.quarantined[0]
    assert (q.file, q.line) == (str(path), 2)
    assert reason in q.reason
    assert _loaded_ids(node) == {"good-1", "obs-1"}
    stored = node_store(node).read_bytes(report.quarantine_key).decode().splitlines()
    assert [json.loads(s)["line"] for s in stored] == [2]
    assert report.quarantine_key.startswith(QUARANTINE_PREFIX)


def test_one_id_two_contents_in_one_load(node: LocalNode, tmp_path: Path) -> None:
    a = _write(tmp_path / "in", "a.ndjson", [_patient("twin", "Smith"), GOOD[0]])
    b = _write(tmp_path / "in", "b.ndjson", [_patient("twin", "Jones")])
    c = _write(tmp_path / "in", "c.ndjson", [GOOD[0]])  # an identical copy is fine
    report = ingest(node, sources_from(node, [str(a), str(b), str(c)]), workers=1,
                    progress=False)
    places = sorted((q.file, q.line) for q in report.quarantined)
    assert places == [(str(a), 1), (str(b), 1)]
    assert all("Patient/twin appears with 2 different contents" in q.reason
               for q in report.quarantined)
    assert _loaded_ids(node) == {"good-1"}


def test_two_versions_in_one_load_latest_generated_wins(node: LocalNode, tmp_path: Path
                                                        ) -> None:
    newer = _patient("v", "New", meta={"lastUpdated": "2026-03-01T00:00:00Z"})
    older = _patient("v", "Old", meta={"lastUpdated": "2026-01-01T00:00:00Z"})
    path = _write(tmp_path / "in", "versions.ndjson", [newer, older])
    report = ingest(node, sources_from(node, [str(path)]), workers=1, progress=False)
    assert (report.quarantined, report.inserted, report.stale) == ([], 1, 1)
    with node.open_warehouse() as wh:
        assert wh.query("SELECT family_name FROM node.main.patients").to_pylist() == [
            {"family_name": "New"}]


def test_cascade_a_reference_to_a_quarantined_resource(node: LocalNode, tmp_path: Path) -> None:
    path = _write(tmp_path / "in", "x.ndjson", [
        _patient("p-bad", birthDate="not-a-date"), _observation("o-on-bad", "Patient/p-bad"),
        GOOD[0]])
    report = ingest(node, sources_from(node, [str(path)]), workers=1, progress=False)
    assert sorted(q.line for q in report.quarantined) == [1, 2]
    assert _loaded_ids(node) == {"good-1"}


def test_non_utf8_file(node: LocalNode, tmp_path: Path) -> None:
    good = _write(tmp_path / "in", "good.ndjson", GOOD)
    latin = tmp_path / "in" / "latin1.ndjson"
    latin.write_bytes(_patient("ok-2").encode() + b"\n" + b'{"resourceType": "Patient", '
                      b'"id": "p-l", "name": [{"family": "M\xfcller"}]}\n')
    report = ingest(node, sources_from(node, [str(tmp_path / "in")]), workers=1, progress=False)
    assert [(q.file, q.line) for q in report.quarantined] == [(str(latin), 2)]
    assert "not UTF-8" in report.quarantined[0].reason
    assert _loaded_ids(node) == {"good-1", "obs-1"}  # nothing of the bad file, all of the good
    assert good.exists() and latin.exists()


def test_invalid_bundle_file(node: LocalNode, tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_text('{"resourceType": "Bundle",\n "entry": [ }')
    report = ingest(node, sources_from(node, [str(path)]), workers=1, progress=False)
    assert [(q.file, q.line) for q in report.quarantined] == [(str(path), 2)]


def test_cli_reports_quarantine_and_exit_code(node: LocalNode, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "in", "mixed.ndjson", [GOOD[0], "{oops", GOOD[1]])
    code = main(["fhir", "ingest", "--node", "us", "--root", str(node.root), "--no-progress",
                 str(path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert json.loads(out)["inserted"] == 2
    assert f"quarantined: {path}:2: invalid JSON" in err
    code = main(["fhir", "ingest", "--node", "us", "--root", str(node.root), "--no-progress",
                 str(tmp_path / "missing.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "fix:" in err and "Traceback" not in err
