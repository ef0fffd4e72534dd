"""The Cloud path without a cloud: the Batch task on folder stores, and the BigQuery SQL
and load jobs checked offline (parsed as BigQuery SQL by sqlglot)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import sqlglot
from clinical_helpers import PATIENTS, patients_table
from sqlglot import exp

from workloads.batch.registry import run_task, task_kinds
from workloads.clinical.bigquery import (
    flattened_rows,
    job_id,
    load_config,
    merge_script,
    staging_rows,
)
from workloads.clinical.synth import synth_bundles
from workloads.clinical.task import read_staged
from workloads.contracts.batch import TaskContext, TaskRequest
from workloads.contracts.tables.clinical import FEATURES_SQL, FHIR_STAGING, VIEW_DEFINITIONS
from workloads.local_node import LocalNode
from workloads.objectstore.folder import FolderStore

LOAD_ID = "ab" * 32


def _statements(sql: str) -> list[exp.Expression]:
    parsed = [e for e in sqlglot.parse(sql, read="bigquery") if e is not None]
    assert not any(isinstance(e, exp.Command) for e in parsed), "unparsed statement"
    return parsed


def test_merge_script_is_bigquery_sql() -> None:
    script = merge_script("proj", "clinical", LOAD_ID, list(VIEW_DEFINITIONS),
                          json.dumps(["fhir/staged/x.ndjson"]), 3)
    statements = _statements(script)
    kinds = [type(s).__name__ for s in statements]
    assert kinds[:2] == ["Declare", "Transaction"] and kinds[-2:] == ["Commit", "Select"]
    assert kinds.count("Merge") == 3  # current versions, features, ledger
    assert kinds.count("Delete") == kinds.count("Insert") - 1 == len(VIEW_DEFINITIONS)
    assert "`proj.clinical.fhir_resources`" in script


def test_features_sql_is_bigquery_sql() -> None:
    (select,) = _statements(FEATURES_SQL.format(dataset="proj.clinical"))
    assert isinstance(select, exp.Select)


def test_job_ids_are_deterministic_and_valid() -> None:
    assert job_id("merge", LOAD_ID) == job_id("merge", LOAD_ID)
    assert job_id("merge", LOAD_ID) != job_id("load_resources", LOAD_ID)
    assert all(c.isalnum() or c in "_-" for c in job_id("load_patients", LOAD_ID))


def test_load_config_keeps_json_type() -> None:
    config = load_config(FHIR_STAGING, "projects/p/locations/l/keyRings/r/cryptoKeys/k")
    types = {f.name: f.field_type for f in config.schema}
    assert types["resource"] == "JSON"
    assert config.source_format == "NEWLINE_DELIMITED_JSON"
    assert config.destination_encryption_configuration.kms_key_name.endswith("/k")


def test_task_stages_files_then_retry_rewrites_the_same(tmp_path: Path) -> None:
    inputs, staging = tmp_path / "in", tmp_path / "staging"
    store = FolderStore(inputs)
    names = []
    for name, bundle in synth_bundles(patients_table(4)):
        store.write_bytes(name, json.dumps(bundle).encode())
        names.append(name)
    # Provider bundles first (they publish their identifiers), then the patients.
    for i in range(len(names)):
        context = TaskContext(kind="fhir", items=tuple(names), index=i,
                              input_location=str(inputs), staging_location=str(staging))
        result = run_task(context)
        assert result.status == "staged" and json.loads(result.to_json())["quarantined"] == 0
    staged_store = FolderStore(staging)
    staged = [r for k in staged_store.list("fhir/staged/") for r in read_staged(staged_store, k)]
    assert {r.resource_type for r in staged} >= {"Patient", "Encounter", "Observation"}
    before = {k: staged_store.read_bytes(k) for k in staged_store.list("fhir/")}
    run_task(TaskContext(kind="fhir", items=tuple(names), index=3,
                         input_location=str(inputs), staging_location=str(staging)))
    assert {k: staged_store.read_bytes(k) for k in staged_store.list("fhir/")} == before
    now = datetime(2026, 1, 2, tzinfo=UTC)
    rows = [json.loads(line) for line in staging_rows(staged, LOAD_ID, now).splitlines()]
    assert all(isinstance(r["resource"], dict) for r in rows)  # JSON, not a string
    patients = [json.loads(line) for line in flattened_rows("patients", staged, now).splitlines()]
    assert sorted(p["patient_id"] for p in patients) == [f"US-{i:04d}" for i in range(4)]


def test_fhir_kind_runs_locally_like_ingest(synth_node: LocalNode, tmp_path: Path) -> None:
    """`batch run-local` for the fhir kind: tasks stage in processes, finish_local merges."""
    from workloads.batch.local import run_local
    from workloads.clinical.load import INPUT_PREFIX, node_store

    assert "fhir" in task_kinds()
    items = tuple(node_store(synth_node).list(INPUT_PREFIX))
    run = run_local(synth_node, TaskRequest("fhir", items), workers=2, progress=False)
    assert run.quarantined == []
    assert run.finished["inserted"] == run.finished["resources"] > 0
    again = run_local(synth_node, TaskRequest("fhir", items), workers=1, progress=False)
    assert (again.finished["inserted"], again.finished["updated"]) == (0, 0)
    with synth_node.open_warehouse() as wh:
        rows = wh.query("SELECT g.bmi = f.bmi AND g.diagnosis_cancer = f.diagnosis_cancer "
                        "AS same FROM node.main.patient_genomic_data g JOIN "
                        "node.main.clinical_features f USING (patient_id)").to_pylist()
    assert len(rows) == PATIENTS and all(r["same"] for r in rows)


def test_patient_task_before_provider_task_resolves_at_merge(synth_node: LocalNode) -> None:
    """A patient's task that runs before the practitioner bundle's task leaves its
    conditional references to the merge, which resolves them; nothing dangles."""
    from workloads.clinical.load import INPUT_PREFIX, node_store
    from workloads.clinical.task import FHIR_TASK, FhirTaskResult

    assert FHIR_TASK.finish_local is not None
    keys = node_store(synth_node).list(INPUT_PREFIX)
    providers = [k for k in keys if "Information" in k]
    patients = [k for k in keys if k not in providers]
    order = tuple(patients + providers)  # the worst order: patients first
    bucket = str(synth_node.bucket)
    key = synth_node.store().key_bytes  # the node's bucket is sealed with the node's key
    results = [run_task(TaskContext(kind="fhir", items=order, index=i, input_location=bucket,
                                    staging_location=bucket, store_key=key))
               for i in range(len(order))]
    staged_store = node_store(synth_node)
    first = [r for r in read_staged(staged_store, results[0].staged_key)
             if r.resource_type == "Encounter"]
    assert first and all(r.pending for r in first)  # deferred, not quarantined
    summary = FHIR_TASK.finish_local(synth_node, [r for r in results
                                                  if isinstance(r, FhirTaskResult)])
    assert summary["quarantined"] == 0 and summary["inserted"] == summary["resources"]
    with synth_node.open_warehouse() as wh:
        refs = wh.query("SELECT count(*) AS n FROM node.main.encounters WHERE "
                        "practitioner_id IS NULL").to_pylist()
    assert refs == [{"n": 0}]
