"""The clinical load into BigQuery: NDJSON load jobs with the JSON type, one merge script.

After the "fhir" Batch tasks staged every file (workloads.clinical.task), `merge_staged`
runs once: the same checks as the local load (one content per id, dangling references),
then it writes the load's rows as NDJSON to the staging bucket, loads them into scratch
tables with load jobs whose ids are derived from the load's content (BigQuery refuses a
second job with the same id, so a retry re-attaches instead of loading twice), and runs one
multi-statement transaction (`merge_script`) - staging insert, current-version MERGE,
flattened tables and features - whose job id is derived the same way. The SQL is BigQuery
standard SQL (the tests parse it with sqlglot's BigQuery dialect).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from workloads.clinical.validate import StagedResource
from workloads.clinical.viewdef import ViewDefinition
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.contracts.tables.clinical import (
    CLINICAL_FEATURES,
    FEATURES_SQL,
    FHIR_LOADS,
    FHIR_RESOURCES,
    FHIR_STAGING,
    FLATTENED,
    ROW_INDEX,
    VIEW_DEFINITIONS,
)
from workloads.objectstore.base import ObjectStore

LOADS_PREFIX = "fhir/loads/"
_JOB_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def job_id(step: str, load_id: str) -> str:
    """One job id per (load content, step): a retried merge re-attaches to its jobs."""
    if not re.fullmatch(r"[0-9a-f]{64}", load_id):
        raise UserError(f"load id {load_id!r} is not a sha256 hex digest")
    return _JOB_ID_UNSAFE.sub("_", f"fhir_{step}_{load_id}")


def scratch_name(step: str, load_id: str) -> str:
    return f"_scratch_fhir_{step}_{load_id[:16]}"


def load_config(table: Table, kms_key: str = "") -> Any:
    """NDJSON into a scratch table with the contract's schema (JSON columns stay JSON)."""
    from google.cloud import bigquery

    from workloads.warehouse.bigquery_warehouse import schema_fields

    return bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
        schema=schema_fields(table),
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
        destination_encryption_configuration=(
            bigquery.EncryptionConfiguration(kms_key_name=kms_key) if kms_key else None),
    )


def staging_rows(staged: Sequence[StagedResource], load_id: str, now: datetime) -> bytes:
    """fhir_staging rows as NDJSON; the resource is embedded as JSON, not as a string."""
    lines = []
    for r in staged:
        lines.append(
            '{"load_id":' + json.dumps(load_id) + ',"source":' + json.dumps(r.source)
            + ',"line":' + str(r.line) + ',"resource_type":' + json.dumps(r.resource_type)
            + ',"id":' + json.dumps(r.id) + ',"resource":' + r.resource
            + ',"digest":' + json.dumps(r.digest) + ',"generated_ts":'
            + json.dumps(r.generated_ts.isoformat() if r.generated_ts else None)
            + ',"staged_ts":' + json.dumps(now.isoformat()) + "}")
    return ("\n".join(lines) + "\n").encode()


def flattened_rows(name: str, staged: Sequence[StagedResource], now: datetime) -> bytes:
    view = ViewDefinition(VIEW_DEFINITIONS[name])
    out = []
    for r in staged:
        if r.resource_type != view.resource:
            continue
        for index, row in enumerate(view.rows_of(json.loads(r.resource))):
            out.append(json.dumps({**row, ROW_INDEX: index, "digest": r.digest,
                                   "generated_ts": r.generated_ts.isoformat()
                                   if r.generated_ts else None,
                                   "ingestion_ts": now.isoformat()}, default=str))
    return ("\n".join(out) + "\n").encode() if out else b""


def merge_script(project: str, dataset: str, load_id: str, views: Sequence[str],
                 inputs_json: str, quarantined: int) -> str:
    """The load's one transaction, in BigQuery standard SQL."""
    def ref(name: str) -> str:
        return f"`{project}.{dataset}.{name}`"

    scratch = ref(scratch_name("resources", load_id))
    cols_current = [c.name for c in FHIR_RESOURCES.columns]
    values = ", ".join("now" if c == "ingestion_ts" else f"s.{c}" for c in cols_current)
    parts = [
        "DECLARE now TIMESTAMP DEFAULT CURRENT_TIMESTAMP()",
        "BEGIN TRANSACTION",
        f"CREATE TEMP TABLE _fhir_action AS SELECT s.resource_type, s.id, CASE "
        f"WHEN t.id IS NULL THEN 'insert' WHEN t.digest = s.digest THEN 'unchanged' "
        f"WHEN s.generated_ts IS NOT NULL AND t.generated_ts IS NOT NULL "
        f"AND s.generated_ts < t.generated_ts THEN 'stale' ELSE 'update' END AS action "
        f"FROM {scratch} AS s LEFT JOIN {ref(FHIR_RESOURCES.name)} AS t "
        f"ON t.resource_type = s.resource_type AND t.id = s.id",
        f"INSERT INTO {ref(FHIR_STAGING.name)} SELECT s.* FROM {scratch} AS s JOIN "
        f"_fhir_action AS a ON a.resource_type = s.resource_type AND a.id = s.id "
        f"WHERE a.action != 'unchanged' AND NOT EXISTS (SELECT 1 FROM "
        f"{ref(FHIR_STAGING.name)} AS t WHERE t.load_id = s.load_id "
        f"AND t.source = s.source AND t.line = s.line)",
        f"MERGE {ref(FHIR_RESOURCES.name)} AS t USING (SELECT s.* FROM {scratch} AS s "
        f"JOIN _fhir_action AS a ON a.resource_type = s.resource_type AND a.id = s.id "
        f"WHERE a.action IN ('insert', 'update')) AS s "
        f"ON t.resource_type = s.resource_type AND t.id = s.id "
        f"WHEN MATCHED THEN UPDATE SET resource = s.resource, digest = s.digest, "
        f"generated_ts = s.generated_ts, ingestion_ts = now, source = s.source, "
        f"line = s.line, load_id = s.load_id "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols_current)}) VALUES ({values})",
    ]
    for name in views:
        table, resource = FLATTENED[name], VIEW_DEFINITIONS[name]["resource"]
        key = table.primary_key[0]
        changed = (f"(SELECT id FROM _fhir_action WHERE resource_type = '{resource}' "
                   f"AND action IN ('insert', 'update'))")
        cols = ", ".join(f"`{c}`" for c in table.column_names)
        select = ", ".join("now" if c == "ingestion_ts" else f"f.`{c}`"
                           for c in table.column_names)
        parts += [
            f"DELETE FROM {ref(name)} WHERE `{key}` IN {changed}",
            f"INSERT INTO {ref(name)} ({cols}) SELECT {select} FROM "
            f"{ref(scratch_name(name, load_id))} AS f WHERE f.`{key}` IN {changed}",
        ]
    features = FEATURES_SQL.replace("`{dataset}.", f"`{project}.{dataset}.")
    parts += [
        f"MERGE {ref(CLINICAL_FEATURES.name)} AS t USING ({features}) AS s "
        f"ON t.patient_id = s.patient_id WHEN MATCHED AND ("
        f"t.diagnosis_cancer != s.diagnosis_cancer OR TO_JSON_STRING(t.bmi) != "
        f"TO_JSON_STRING(s.bmi) OR TO_JSON_STRING(t.bmi_effective) != "
        f"TO_JSON_STRING(s.bmi_effective)) THEN UPDATE SET diagnosis_cancer = "
        f"s.diagnosis_cancer, bmi = s.bmi, bmi_effective = s.bmi_effective "
        f"WHEN NOT MATCHED THEN INSERT (patient_id, diagnosis_cancer, bmi, bmi_effective) "
        f"VALUES (s.patient_id, s.diagnosis_cancer, s.bmi, s.bmi_effective)",
        f"MERGE {ref(FHIR_LOADS.name)} AS t USING (SELECT '{load_id}' AS load_id) AS s "
        f"ON t.load_id = s.load_id WHEN NOT MATCHED THEN INSERT (load_id, inputs, resources, "
        f"inserted, updated, unchanged, stale, quarantined, loaded_at) VALUES ('{load_id}', "
        f"PARSE_JSON({_sql_string(inputs_json)}), "
        f"(SELECT COUNT(*) FROM _fhir_action), "
        f"(SELECT COUNTIF(action = 'insert') FROM _fhir_action), "
        f"(SELECT COUNTIF(action = 'update') FROM _fhir_action), "
        f"(SELECT COUNTIF(action = 'unchanged') FROM _fhir_action), "
        f"(SELECT COUNTIF(action = 'stale') FROM _fhir_action), {int(quarantined)}, now)",
        "COMMIT TRANSACTION",
        "SELECT action, COUNT(*) AS n FROM _fhir_action GROUP BY action",
    ]
    return ";\n".join(parts)


MERGE_ATTEMPTS = 5


def _run_merge(client: Any, script: str, config: Any, load_id: str) -> dict[str, int]:
    """Run the merge transaction. Tasks merge in parallel and BigQuery aborts one of two
    transactions that change the same table at once: retry with the next deterministic job
    id (a retried task finds its earlier attempts' jobs and re-attaches or moves on)."""
    from google.api_core.exceptions import BadRequest, Conflict

    for attempt in range(MERGE_ATTEMPTS):
        jid = job_id("merge", load_id) + (f"_{attempt}" if attempt else "")
        try:
            job = client.query(script, job_config=config, job_id=jid)
        except Conflict:
            job = client.get_job(jid)
        try:
            return {str(row[0]): int(row[1]) for row in job.result()}
        except BadRequest as exc:
            if "concurrent" not in str(exc).lower() or attempt == MERGE_ATTEMPTS - 1:
                raise
            time.sleep(2 ** attempt)
    raise AssertionError("unreachable")


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def merge_staged(client: Any, *, project: str, dataset: str, staging: ObjectStore,
                 staged_keys: Sequence[str], kms_key: str = "") -> dict[str, int]:
    """Check, load and merge the staged files of one load (the step after the tasks)."""
    from google.api_core.exceptions import Conflict
    from google.cloud import bigquery

    from workloads.clinical.load import (
        LoadReport,
        _drop_dangling,
        _one_version_per_key,
        _resolve_pending,
    )
    from workloads.clinical.task import read_identifier_index, read_staged

    load_id = hashlib.sha256("\n".join(sorted(staged_keys)).encode()).hexdigest()
    report = LoadReport(load_id, files=len(staged_keys))
    staged = [r for key in staged_keys for r in read_staged(staging, key)]
    known = {row[0] for row in client.query(
        f"SELECT CONCAT(resource_type, '/', id) FROM `{project}.{dataset}.{FHIR_RESOURCES.name}`"
    ).result()}
    if any(r.pending for r in staged):  # identifiers published by the provider bundles
        staged = _resolve_pending(staged, read_identifier_index(staging), report)
    staged = _drop_dangling(_one_version_per_key(staged, report), known, report)
    now = datetime.now(UTC)
    if report.quarantined:
        staging.write_bytes(f"fhir/quarantine/{load_id[:32]}.ndjson", "".join(
            q.to_json() + "\n" for q in report.quarantined).encode())

    def load(step: str, table: Table, data: bytes) -> None:
        key = f"{LOADS_PREFIX}{load_id}/{step}.ndjson"
        staging.write_bytes(key, data)
        jid = job_id(f"load_{step}", load_id)
        try:
            job = client.load_table_from_uri(
                staging.uri(key), f"{project}.{dataset}.{scratch_name(step, load_id)}",
                job_id=jid, job_config=load_config(table, kms_key))
        except Conflict:  # a previous attempt created this job: wait for it instead
            job = client.get_job(jid)
        job.result()

    load("resources", FHIR_STAGING, staging_rows(staged, load_id, now))
    views = []
    for name in VIEW_DEFINITIONS:
        data = flattened_rows(name, staged, now)
        if data:
            load(name, FLATTENED[name], data)
            views.append(name)
    inputs = json.dumps(sorted(staged_keys))
    script = merge_script(project, dataset, load_id, views, inputs, len(report.quarantined))
    config = bigquery.QueryJobConfig(destination_encryption_configuration=(
        bigquery.EncryptionConfiguration(kms_key_name=kms_key) if kms_key else None))
    counts = _run_merge(client, script, config, load_id)
    for step in ("resources", *views):
        client.delete_table(f"{project}.{dataset}.{scratch_name(step, load_id)}",
                            not_found_ok=True)
    return {**counts, "quarantined": len(report.quarantined)}

