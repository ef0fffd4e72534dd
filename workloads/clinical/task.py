"""The `fhir` Batch task kind: one input file (a bundle or an NDJSON file) per task.

Task i splits item i (an object key in the input store) into per-patient NDJSON in the
staging store, validates every line and writes the valid resources with their provenance to
`fhir/staged/<file sha256>.ndjson` (rejected ones to `fhir/quarantine/task-...`).
Conditional references resolve through the identifiers the node already holds (locally:
`local_inputs`), those published under `fhir/identifiers/` by earlier tasks of hospital and
practitioner bundles, and the file's own. Everything a task writes is keyed by the file's
content, so a retried task rewrites the same objects.

In the cloud (warehouse "bigquery") the task then merges its own file into BigQuery
(`workloads.clinical.bigquery.merge_staged`: the same checks as locally, NDJSON load jobs
with the JSON type, one transaction, job ids derived from the content). Load the hospital
and practitioner bundles in a job before the patients' (Synthea's patient bundles reference
only their own resources and those). Locally, `finish_local` loads every staged file into
the node's DuckDB in one transaction (one writer per database).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from workloads.batch.registry import TaskKind, TaskResult, register_task_kind
from workloads.clinical.records import split_file
from workloads.clinical.validate import StagedResource, validate_object
from workloads.contracts.batch import TaskContext
from workloads.objectstore.base import ObjectStore, open_store

if TYPE_CHECKING:
    from workloads.local_node import LocalNode

STAGED_PREFIX = "fhir/staged/"
IDENTIFIERS_PREFIX = "fhir/identifiers/"
TASK_QUARANTINE_PREFIX = "fhir/quarantine/task-"


@dataclass(frozen=True)
class FhirTaskResult:
    source: str
    sha256: str
    staged_key: str
    resources: int
    quarantined: int
    loaded: dict[str, int] | None = None  # the BigQuery merge's counts, in the cloud

    @property
    def status(self) -> str:
        """"quarantined" only when nothing of the file could be staged."""
        return "quarantined" if self.quarantined and not self.resources else "staged"

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "status": self.status}, sort_keys=True)


def staged_line(r: StagedResource) -> str:
    return json.dumps({
        "resource_type": r.resource_type, "id": r.id, "resource": r.resource,
        "digest": r.digest, "generated_ts": r.generated_ts.isoformat() if r.generated_ts
        else None, "source": r.source, "line": r.line, "origin": r.origin,
        "references": list(r.references), "pending": list(r.pending)}, sort_keys=True)


def read_staged(store: ObjectStore, key: str) -> list[StagedResource]:
    from workloads.clinical.validate import parse_instant

    out = []
    for line in store.read_bytes(key).decode().splitlines():
        d = json.loads(line)
        out.append(StagedResource(d["resource_type"], d["id"], d["resource"], d["digest"],
                                  parse_instant(d["generated_ts"]), d["source"], d["line"],
                                  d["origin"], tuple(d["references"]), None,
                                  tuple(d.get("pending", ()))))
    return out


def read_identifier_index(store: ObjectStore) -> dict[str, str]:
    """Every identifier index written by earlier tasks (one object per input file)."""
    out: dict[str, str] = {}
    for key in store.list(IDENTIFIERS_PREFIX):
        out.update({str(k): str(v) for k, v in json.loads(store.read_bytes(key)).items()})
    return out


def write_identifier_index(store: ObjectStore, sha256: str, identifiers: Mapping[str, str]
                           ) -> None:
    # One object per file (parallel tasks never read-modify-write a shared object).
    store.write_bytes(f"{IDENTIFIERS_PREFIX}{sha256}.json",
                      json.dumps(dict(identifiers), sort_keys=True).encode())


def stage_file(input_location: str, staging_location: str, key: str, *,
               identifiers: Mapping[str, str] | None = None,
               store_key: bytes | None = None) -> FhirTaskResult:
    """Split and validate one file (a key in the input store) into the staging store
    (`store_key`: a local node's bucket is sealed with the node's key)."""
    inputs = open_store(input_location, store_key)
    staging = open_store(staging_location, store_key)
    split = split_file(inputs.uri(key), inputs.read_bytes(key), staging)
    known = {**read_identifier_index(staging), **(identifiers or {}), **split.identifiers}
    staged, quarantined = [], list(split.quarantined)
    for obj_key, lines in split.objects.items():
        checked = validate_object(staging, obj_key, origin_file=split.source,
                                  origin_lines=lines, identifiers=known,
                                  generated=split.generated, defer_conditional=True)
        staged += checked.staged
        quarantined += checked.quarantined
    staged_key = f"{STAGED_PREFIX}{split.sha256}.ndjson"
    staging.write_bytes(staged_key, "".join(staged_line(r) + "\n" for r in staged).encode())
    if quarantined:
        staging.write_bytes(f"{TASK_QUARANTINE_PREFIX}{split.sha256[:32]}.ndjson",
                            "".join(q.to_json() + "\n" for q in quarantined).encode())
    if split.identifiers and not any(r.resource_type == "Patient" for r in staged):
        write_identifier_index(staging, split.sha256, split.identifiers)  # provider bundle
    return FhirTaskResult(split.source, split.sha256, staged_key, len(staged), len(quarantined))


def run_fhir_task(context: TaskContext) -> FhirTaskResult:
    """The registered function: stage `context.item`; in the cloud, merge it too."""
    identifiers = context.inputs.get("identifiers")
    result = stage_file(context.input_location, context.staging_location, context.item,
                        identifiers=identifiers if isinstance(identifiers, dict) else None,
                        store_key=context.store_key)
    if context.warehouse != "bigquery" or not result.resources:
        return result
    from google.cloud import bigquery

    from workloads.clinical.bigquery import merge_staged
    from workloads.contracts.tables.clinical import CLINICAL

    counts = merge_staged(bigquery.Client(project=context.project), project=context.project,
                          dataset=CLINICAL.dataset,
                          staging=open_store(context.staging_location, context.store_key),
                          staged_keys=[result.staged_key], kms_key=context.kms_key)
    return FhirTaskResult(result.source, result.sha256, result.staged_key, result.resources,
                          result.quarantined + counts.get("quarantined", 0), counts)


def _local_inputs(node: LocalNode) -> Mapping[str, Any]:
    from workloads.clinical.load import _connection, _known_identifiers
    from workloads.contracts.tables.clinical import CLINICAL

    with node.open_warehouse() as warehouse:
        warehouse.ensure_tables(CLINICAL.tables)
        return {"identifiers": _known_identifiers(_connection(warehouse), warehouse)}


def _finish_local(node: LocalNode, results: Sequence[TaskResult]) -> dict[str, Any]:
    """Load what the tasks staged into the node's DuckDB: the same checks and transaction
    as `fhir ingest`."""
    import hashlib

    from workloads.clinical.load import LoadReport, _connection, check_and_commit, node_store
    from workloads.contracts.tables.clinical import CLINICAL

    done = [r for r in results if isinstance(r, FhirTaskResult)]
    store = node_store(node)
    load_id = hashlib.sha256("\n".join(sorted(r.sha256 for r in done)).encode()).hexdigest()
    report = LoadReport(load_id, files=len(done))
    staged = [s for r in done for s in read_staged(store, r.staged_key)]
    for r in done:
        quarantine_key = f"{TASK_QUARANTINE_PREFIX}{r.sha256[:32]}.ndjson"
        if r.quarantined and store.exists(quarantine_key):
            from workloads.clinical.records import Quarantined

            report.quarantined += [Quarantined(**json.loads(line)) for line in
                                   store.read_bytes(quarantine_key).decode().splitlines()]
    with node.open_warehouse() as warehouse:
        warehouse.ensure_tables(CLINICAL.tables)
        check_and_commit(_connection(warehouse), warehouse, store, staged, report,
                         [{"file": r.source, "sha256": r.sha256} for r in done])
    return report.summary()


FHIR_TASK = register_task_kind(TaskKind(
    "fhir",
    run=run_fhir_task,
    local_inputs=_local_inputs,
    finish_local=_finish_local,
    description="split, validate and stage one FHIR bundle or NDJSON file (and merge it)",
))
