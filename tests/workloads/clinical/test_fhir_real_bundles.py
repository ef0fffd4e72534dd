"""Real Synthea bundles: references resolved, validated, staged, flattened."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from clinical_helpers import SYNTHEA, provider_bundles_for

from workloads.clinical.load import ingest, sources_from
from workloads.clinical.records import walk_references
from workloads.local_node import LocalNode


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_real_bundles_with_their_provider_bundles(node: LocalNode, tmp_path: Path) -> None:
    bundles = sorted(SYNTHEA.glob("*.json"))
    providers = tmp_path / "providers"
    providers.mkdir()
    for name, bundle in zip(("hospitalInformation1.json", "practitionerInformation1.json"),
                            provider_bundles_for(bundles), strict=True):
        (providers / name).write_text(json.dumps(bundle))
    before = _digests(SYNTHEA)
    report = ingest(node, sources_from(node, [str(SYNTHEA), str(providers)]), workers=1,
                    progress=False)
    assert _digests(SYNTHEA) == before  # the user's files are only read
    assert report.quarantined == []
    entries = sum(len(json.loads(p.read_text())["entry"]) for p in bundles)
    assert report.by_type["Patient"] == 2
    assert sum(report.by_type.values()) == entries + sum(
        len(b["entry"]) for b in provider_bundles_for(bundles))
    with node.open_warehouse() as wh:
        refs = wh.query("SELECT resource FROM node.main.fhir_resources").column(0).to_pylist()
        targets = [ref["reference"] for r in refs for ref in walk_references(json.loads(r))]
        assert len(targets) > 1000
        assert all(t.startswith("#") or t.count("/") == 1 for t in targets), targets[:5]
        patients = wh.query("SELECT * FROM node.main.patients ORDER BY patient_id").to_pylist()
        assert [p["name"] for p in patients] == ["Bob965 Keeling57", "Levi940 Gusikowski974"]
        assert all(p["gender"] and p["birth_date"] and p["city"] for p in patients)
        encounters = wh.query("SELECT count(*) AS n, count(practitioner_id) AS p, "
                              "count(organization_id) AS o FROM node.main.encounters").to_pylist()
        assert encounters[0]["n"] == encounters[0]["p"] == encounters[0]["o"] > 0
        observations = wh.query("SELECT count(*) AS n FROM node.main.observations").to_pylist()
        assert observations[0]["n"] == report.by_type["Observation"]
    again = ingest(node, sources_from(node, [str(SYNTHEA), str(providers)]), workers=1,
                   progress=False)
    assert (again.inserted, again.updated, len(again.quarantined)) == (0, 0, 0)


def test_without_provider_bundles_references_dangle(node: LocalNode) -> None:
    report = ingest(node, sources_from(node, [str(SYNTHEA)]), workers=1, progress=False)
    reasons = [q.reason for q in report.quarantined]
    assert any("dangling reference 'Practitioner?identifier=" in r for r in reasons)
    # Resources whose references all resolve still load: the patients themselves.
    assert report.by_type.get("Patient") == 2
    assert all(q.file.startswith(str(SYNTHEA)) and q.line >= 1 for q in report.quarantined)
