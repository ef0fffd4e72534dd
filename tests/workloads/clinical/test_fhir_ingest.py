"""Ingestion end to end on generated bundles: merge semantics, idempotence, features."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from clinical_helpers import PATIENTS, patients_table

from workloads.clinical import load as load_module
from workloads.clinical.load import INPUT_PREFIX, ingest, node_store, sources_from
from workloads.clinical.synth import GENERATED_AT, synth_bundles
from workloads.contracts.tables.clinical import (
    BMI_LOINC,
    CANCER_SNOMED_CODES,
    CLINICAL_FEATURES,
    FHIR_RESOURCES,
    FHIR_STAGING,
)
from workloads.contracts.tables.clinical import (
    PATIENTS as PATIENTS_TABLE,
)
from workloads.local_node import LocalNode


def _rows(node: LocalNode, sql: str) -> list[dict[str, Any]]:
    with node.open_warehouse() as wh:
        return wh.query(sql.replace("{node}", "node.main")).to_pylist()


def test_first_load_then_rerun_changes_nothing(synth_node: LocalNode) -> None:
    first = ingest(synth_node, sources_from(synth_node, []), workers=2, progress=False)
    assert first.quarantined == []
    assert first.inserted == first.resources > PATIENTS * 4
    assert (first.updated, first.unchanged) == (0, 0)
    before = _rows(synth_node, "SELECT resource_type, id, ingestion_ts FROM {node}.fhir_resources "
                               "ORDER BY ALL")
    staged = _rows(synth_node, "SELECT count(*) AS n FROM {node}.fhir_staging")[0]["n"]
    again = ingest(synth_node, sources_from(synth_node, []), workers=2, progress=False)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, first.resources)
    assert again.load_id == first.load_id
    assert _rows(synth_node, "SELECT resource_type, id, ingestion_ts FROM {node}.fhir_resources "
                             "ORDER BY ALL") == before
    assert _rows(synth_node, "SELECT count(*) AS n FROM {node}.fhir_staging")[0]["n"] == staged
    assert staged == first.resources


def test_features_equal_patient_genomic_data(synth_node: LocalNode) -> None:
    ingest(synth_node, sources_from(synth_node, []), workers=1, progress=False)
    rows = _rows(synth_node, """
        SELECT g.patient_id, g.bmi AS g_bmi, f.bmi AS f_bmi,
               g.diagnosis_cancer AS g_dx, f.diagnosis_cancer AS f_dx
        FROM {node}.patient_genomic_data g FULL JOIN {node}.clinical_features f USING (patient_id)
        ORDER BY g.patient_id""")
    assert len(rows) == PATIENTS
    assert all(r["g_bmi"] == r["f_bmi"] and r["g_dx"] == r["f_dx"] for r in rows), rows
    assert {r["f_dx"] for r in rows} == {0, 1}  # both outcomes occur
    assert CLINICAL_FEATURES.column("bmi").releasable


def test_patients_table_every_column_filled(synth_node: LocalNode) -> None:
    ingest(synth_node, sources_from(synth_node, []), workers=1, progress=False)
    rows = _rows(synth_node, "SELECT * FROM {node}.patients ORDER BY patient_id")
    assert [r["patient_id"] for r in rows] == patients_table(PATIENTS)["patient_id"].to_pylist()
    optional = {"deceased"}  # nobody generated has died
    for column in PATIENTS_TABLE.column_names:
        if column not in optional:
            assert all(r[column] is not None for r in rows), column
    ages = dict(zip(patients_table(PATIENTS)["patient_id"].to_pylist(),
                    patients_table(PATIENTS)["age"].to_pylist(), strict=True))
    today = GENERATED_AT.date()
    for r in rows:
        born = date.fromisoformat(r["birth_date"])
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        assert age == ages[r["patient_id"]]
        assert r["name"] == f"{r['given_name']} {r['family_name']}"


def test_synth_is_deterministic_and_cancer_matches_diagnosis() -> None:
    table = patients_table(12)
    one = [json.dumps(b) for _, b in synth_bundles(table, seed=3)]
    assert one == [json.dumps(b) for _, b in synth_bundles(table, seed=3)]
    assert one != [json.dumps(b) for _, b in synth_bundles(table, seed=4)]
    for row, (_, bundle) in zip(table.to_pylist(), list(synth_bundles(table))[2:], strict=True):
        resources = [e["resource"] for e in bundle["entry"]]
        cancers = [r for r in resources if r["resourceType"] == "Condition"
                   and r["code"]["coding"][0]["code"] in CANCER_SNOMED_CODES]
        assert len(cancers) == row["diagnosis_cancer"]
        bmis = [r for r in resources if r["resourceType"] == "Observation"
                and r["code"]["coding"][0]["code"] == BMI_LOINC]
        latest = max(bmis, key=lambda r: r["effectiveDateTime"])
        assert latest["valueQuantity"]["value"] == row["bmi"]
        assert all(e["fullUrl"].startswith("urn:uuid:") for e in bundle["entry"])


def _bundle_key(node: LocalNode, patient: str) -> str:
    return next(k for k in node_store(node).list(INPUT_PREFIX) if k.endswith(f"_{patient}.json"))


def _edit_patient(node: LocalNode, patient: str, city: str, last_updated: str) -> None:
    store = node_store(node)
    key = _bundle_key(node, patient)
    bundle = json.loads(store.read_bytes(key))
    resource = bundle["entry"][0]["resource"]
    resource["address"][0]["city"] = city
    resource["meta"]["lastUpdated"] = last_updated
    store.write_bytes(key, json.dumps(bundle).encode())


def test_changed_content_updates_only_that_row(synth_node: LocalNode) -> None:
    ingest(synth_node, sources_from(synth_node, []), workers=1, progress=False)
    before = {r["id"]: r for r in _rows(
        synth_node, "SELECT id, ingestion_ts, digest FROM {node}.fhir_resources")}
    _edit_patient(synth_node, "US-0003", "Salem", "2026-02-01T00:00:00+00:00")
    report = ingest(synth_node, sources_from(synth_node, []), workers=1, progress=False)
    assert (report.inserted, report.updated) == (0, 1)
    staged = "SELECT count(*) AS n FROM {node}.fhir_staging"
    assert _rows(synth_node, staged)[0]["n"] == len(before) + 1  # only the new version
    after = {r["id"]: r for r in _rows(
        synth_node, "SELECT id, ingestion_ts, digest FROM {node}.fhir_resources")}
    moved = [i for i in after if after[i]["ingestion_ts"] != before[i]["ingestion_ts"]]
    assert moved == ["US-0003"]
    assert _rows(synth_node, "SELECT city FROM {node}.patients WHERE patient_id = 'US-0003'") == [
        {"city": "Salem"}]
    # An older version arriving later does not overwrite the newer one.
    _edit_patient(synth_node, "US-0003", "Lynn", "2025-06-01T00:00:00+00:00")
    stale = ingest(synth_node, sources_from(synth_node, []), workers=1, progress=False)
    assert (stale.updated, stale.stale) == (0, 1)
    assert _rows(synth_node, staged)[0]["n"] == len(before) + 2  # kept, as history
    assert _rows(synth_node, "SELECT city FROM {node}.patients WHERE patient_id = 'US-0003'") == [
        {"city": "Salem"}]


def test_crash_before_commit_leaves_old_state(synth_node: LocalNode,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(load_module, "_refresh_features", boom)
    with pytest.raises(RuntimeError):
        ingest(synth_node, sources_from(synth_node, []), workers=1, progress=False)
    for table in (FHIR_RESOURCES, FHIR_STAGING, PATIENTS_TABLE, CLINICAL_FEATURES):
        assert _rows(synth_node, f"SELECT count(*) AS n FROM {{node}}.{table.name}") == [
            {"n": 0}], table.name
    monkeypatch.undo()
    report = ingest(synth_node, sources_from(synth_node, []), workers=1, progress=False)
    assert report.inserted == report.resources > 0


def test_bulk_ndjson_input(synth_node: LocalNode, tmp_path: Any) -> None:
    """Synthea's bulk export: <Type>.ndjson with Type/id references."""
    from workloads.clinical.records import split_file

    class Memory:
        def __init__(self) -> None:
            self.data: dict[str, bytes] = {}

        def write_bytes(self, key: str, data: bytes) -> None:
            self.data[key] = data

    by_type: dict[str, list[str]] = {}
    for key in node_store(synth_node).list(INPUT_PREFIX):
        memory = Memory()
        split_file(key, node_store(synth_node).read_bytes(key), memory)  # type: ignore[arg-type]
        for blob in memory.data.values():
            for line in blob.decode().splitlines():
                by_type.setdefault(json.loads(line)["resourceType"], []).append(line)
    bulk = tmp_path / "bulk"
    bulk.mkdir()
    for rtype, lines in by_type.items():
        (bulk / f"{rtype}.ndjson").write_text("\n".join(lines) + "\n")
    report = ingest(synth_node, sources_from(synth_node, [str(bulk)]), workers=1,
                    progress=False)
    assert report.quarantined == []
    assert report.resources == sum(len(v) for v in by_type.values())
    # The same resources from bundles afterwards: all unchanged.
    again = ingest(synth_node, sources_from(synth_node, []), workers=1, progress=False)
    assert (again.inserted, again.updated) == (0, 0)
