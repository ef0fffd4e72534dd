"""A FHIR load into a local node: split and validate in parallel per file, then one
transaction that stages, merges the current versions, refreshes the flattened tables and
the clinical features, and writes the load's ledger row.

The workers only read inputs and write objects to the node's bucket (the split NDJSON);
DuckDB allows one writing process, so this process does the single transaction. A crash
before COMMIT leaves the tables as they were; the split objects and the quarantine file
are keyed by content and rewritten identically by a re-run.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
from tqdm import tqdm

from workloads.clinical.records import Quarantined, SplitResult, split_file
from workloads.clinical.validate import StagedResource, ValidatedObject, validate_object
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.contracts.tables.clinical import (
    CLINICAL,
    CLINICAL_FEATURES,
    FEATURES_SQL,
    FHIR_LOADS,
    FHIR_RESOURCES,
    FHIR_STAGING,
    FLATTENED,
    ROW_INDEX,
    VIEW_DEFINITIONS,
)
from workloads.local_node import LocalNode
from workloads.objectstore.base import ObjectStore

INPUT_PREFIX = "fhir/input/"  # where `fhir synth` writes and `fhir ingest` reads by default
QUARANTINE_PREFIX = "fhir/quarantine/"
_INPUT_SUFFIXES = (".json", ".ndjson")
T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    """One input file: a path on this machine (read only) or a key in the node's bucket."""

    name: str
    path: Path | None = None
    key: str | None = None

    def read(self, store: ObjectStore) -> bytes:
        if self.path is not None:
            return self.path.read_bytes()
        assert self.key is not None
        return store.read_bytes(self.key)


@dataclass
class LoadReport:
    load_id: str
    files: int = 0
    resources: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    quarantine_key: str = ""
    by_type: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"load_id": self.load_id, "files": self.files, "resources": self.resources,
                "inserted": self.inserted, "updated": self.updated,
                "unchanged": self.unchanged, "stale": self.stale,
                "quarantined": len(self.quarantined), "quarantine": self.quarantine_key}


def node_store(node: LocalNode) -> ObjectStore:
    """The node's bucket, sealed with the node's key (never plain file writes)."""
    return node.store()


def sources_from(node: LocalNode, paths: Sequence[str]) -> list[Source]:
    """PATHs are files or folders on this machine; none means the bucket's fhir/input/."""
    if not paths:
        keys = [k for k in node_store(node).list(INPUT_PREFIX) if k.endswith(_INPUT_SUFFIXES)]
        if not keys:
            raise UserError(f"no FHIR files under {node.bucket / INPUT_PREFIX}; fix: python -m "
                            f"workloads fhir synth --node {node.name}, or pass files")
        return [Source(k, key=k) for k in keys]
    out: list[Source] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in
                           _INPUT_SUFFIXES)
            if not found:
                raise UserError(f"{path}: no .json or .ndjson files; fix: point at Synthea's "
                                f"output/fhir folder")
            out += [Source(str(p), path=p) for p in found]
        elif path.is_file():
            out.append(Source(str(path), path=path))
        else:
            raise UserError(f"{path}: no such file or folder; fix: pass Synthea bundles "
                            f"(*.json) or bulk NDJSON (<Type>.ndjson)")
    return out


# -- the two parallel steps (run in worker processes) ------------------------------------------
def split_task(node: LocalNode, source: Source) -> SplitResult:
    store = node_store(node)
    return split_file(source.name, source.read(store), store)


def validate_task(node: LocalNode, split: SplitResult, identifiers: dict[str, str],
                  known_digests: frozenset[str], only_known: bool = False
                  ) -> list[ValidatedObject] | None:
    """Validate one input file's split objects; with `only_known`, None as soon as one
    holds content the node does not have yet."""
    store = node_store(node)
    out = []
    for key, lines in split.objects.items():
        checked = validate_object(store, key, origin_file=split.source, origin_lines=lines,
                                  identifiers=identifiers, generated=split.generated,
                                  known_digests=known_digests, only_known=only_known)
        if checked.incomplete:
            return None
        out.append(checked)
    return out


def _parallel(pool: ProcessPoolExecutor | None, fn: Callable[..., T],
              calls: list[tuple[Any, ...]], *, desc: str, progress: bool) -> list[T]:
    bar = tqdm(total=len(calls), desc=desc, file=sys.stderr, disable=not progress)
    if pool is None or len(calls) <= 1:
        results = []
        for args in calls:
            results.append(fn(*args))
            bar.update()
        bar.close()
        return results
    futures = [pool.submit(fn, *args) for args in calls]
    for future in futures:
        future.add_done_callback(lambda _: bar.update())
    results = [f.result() for f in futures]
    bar.close()
    return results


@contextmanager
def _pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """One pool of worker processes for both steps (starting one costs ~1 s of imports)."""
    if workers <= 1:
        yield None
        return
    spawn = multiprocessing.get_context("spawn")  # no inherited DuckDB state
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        yield pool


# -- the coordinator -------------------------------------------------------------------------
def ingest(node: LocalNode, sources: Sequence[Source], *, workers: int = 2,
           progress: bool = True) -> LoadReport:
    """Load files into the node. Splitting is cheap and runs here; files whose content the
    node does not hold yet are validated in parallel (`workers` processes, one task per
    file). Files whose every resource is already current skip the pool: starting worker
    processes costs more than checking their digests."""
    store = node_store(node)
    splits = [split_task(node, s) for s in tqdm(sources, desc="fhir split", file=sys.stderr,
                                                 disable=not progress)]
    load_id = hashlib.sha256("\n".join(sorted(f"{s.sha256}" for s in splits)).encode()
                             ).hexdigest()
    report = LoadReport(load_id, files=len(sources))
    for s in splits:
        report.quarantined += s.quarantined
    with node.open_warehouse() as warehouse:
        con = _connection(warehouse)
        warehouse.ensure_tables(CLINICAL.tables)
        identifiers = _known_identifiers(con, warehouse)
        for s in splits:
            identifiers.update(s.identifiers)
        digests = frozenset(r[0] for r in con.execute(
            f"SELECT digest FROM {warehouse.table_ref(FHIR_RESOURCES)}").fetchall())
        validated = [validate_task(node, s, identifiers, digests, True)
                     for s in tqdm(splits, desc="fhir check", file=sys.stderr,
                                   disable=not progress)]
        todo = [i for i, v in enumerate(validated) if v is None]
        with _pool(workers if len(todo) > 1 else 1) as pool:
            full = _parallel(pool, validate_task,
                             [(node, splits[i], identifiers, digests) for i in todo],
                             desc="fhir validate", progress=progress)
        for i, objects in zip(todo, full, strict=True):
            validated[i] = objects
        staged: list[StagedResource] = []
        for objects in validated:
            for obj in objects or ():
                staged += obj.staged
                report.quarantined += obj.quarantined
        inputs = [{"file": src.name, "sha256": sp.sha256}
                  for src, sp in zip(sources, splits, strict=True)]
        check_and_commit(con, warehouse, store, staged, report, inputs)
    return report


def check_and_commit(con: Any, warehouse: Any, store: ObjectStore,
                     staged: list[StagedResource], report: LoadReport,
                     inputs: list[dict[str, str]]) -> None:
    """The checks across the load (conditional references the tasks left, one version per
    id, dangling references), the quarantine object, then the one transaction."""
    if any(r.pending for r in staged):
        staged = _resolve_pending(staged, {**_known_identifiers(con, warehouse),
                                           **_identifiers_in(store)}, report)
    staged = _one_version_per_key(staged, report)
    staged = _drop_dangling(staged, _known_keys(con, warehouse), report)
    report.resources = len(staged)
    for r in staged:
        report.by_type[r.resource_type] = report.by_type.get(r.resource_type, 0) + 1
    report.quarantine_key = _write_quarantine(store, report.load_id, report.quarantined)
    _commit(con, warehouse, staged, report, inputs)


def _connection(warehouse: Any) -> Any:
    # The load is several statements in one transaction with Arrow inputs: it needs the
    # warehouse's own DuckDB connection (the Warehouse protocol offers single statements).
    return warehouse._con


def _known_identifiers(con: Any, warehouse: Any) -> dict[str, str]:
    from workloads.clinical.records import identifier_keys

    rows = con.execute(
        f"SELECT resource FROM {warehouse.table_ref(FHIR_RESOURCES)} WHERE resource_type IN "
        f"('Practitioner', 'PractitionerRole', 'Organization', 'Location', 'Patient')"
    ).fetchall()
    out: dict[str, str] = {}
    for (text,) in rows:
        resource = json.loads(text)
        for key in identifier_keys(resource):
            out.setdefault(key, str(resource.get("id")))
    return out


def _identifiers_in(store: ObjectStore) -> dict[str, str]:
    from workloads.clinical.task import read_identifier_index

    return read_identifier_index(store)


def _resolve_pending(staged: list[StagedResource], identifiers: dict[str, str],
                     report: LoadReport) -> list[StagedResource]:
    from workloads.clinical.validate import resolve_pending

    out = []
    for r in staged:
        resolved = resolve_pending(r, identifiers) if r.pending else r
        if isinstance(resolved, str):
            file, _, line = r.origin.rpartition(":")
            report.quarantined.append(Quarantined(
                file, int(line), f"{r.resource_type}/{r.id}: dangling reference {resolved!r}; "
                f"fix: load the bundle that holds it (Synthea writes practitioners and "
                f"hospitals in their own files) in the same run or before", r.resource))
        else:
            out.append(resolved)
    return out


def _known_keys(con: Any, warehouse: Any) -> set[str]:
    rows = con.execute(
        f"SELECT resource_type || '/' || id FROM {warehouse.table_ref(FHIR_RESOURCES)}"
    ).fetchall()
    return {r[0] for r in rows}


def _one_version_per_key(staged: list[StagedResource], report: LoadReport
                         ) -> list[StagedResource]:
    """Identical copies collapse to one. Different contents of one id: the latest generated
    wins when every version has its own generation time (the others count as stale);
    otherwise nothing says which is current, and every copy is quarantined."""
    by_key: dict[tuple[str, str], list[StagedResource]] = {}
    for r in staged:
        by_key.setdefault((r.resource_type, r.id), []).append(r)
    out = []
    for (rtype, rid), copies in by_key.items():
        versions = {c.digest: c for c in copies}
        if len(versions) == 1:
            out.append(copies[0])
            continue
        dated = [(v.generated_ts, v) for v in versions.values() if v.generated_ts is not None]
        if len(dated) == len(versions) and len({t for t, _ in dated}) == len(dated):
            out.append(max(dated, key=lambda tv: tv[0])[1])
            report.stale += len(dated) - 1
            continue
        places = ", ".join(c.origin for c in copies[:4])
        for c in copies:
            file, _, line = c.origin.rpartition(":")
            report.quarantined.append(Quarantined(
                file, int(line), f"{rtype}/{rid} appears with {len({x.digest for x in copies})}"
                f" different contents in one load ({places}); fix: keep one version per id "
                f"per load, or load the versions one after another", c.resource))
    return out


def _drop_dangling(staged: list[StagedResource], known: set[str], report: LoadReport
                   ) -> list[StagedResource]:
    """A `Type/id` that neither the load nor the warehouse holds is dangling; quarantining a
    resource can leave others dangling, so repeat until nothing changes."""
    present = known | {f"{r.resource_type}/{r.id}" for r in staged}
    while True:
        keep: list[tuple[StagedResource, list[str]]] = []
        dropped: list[tuple[StagedResource, list[str]]] = []
        for r in staged:
            missing = [t for t in r.references if t not in present]
            (dropped if missing else keep).append((r, missing))
        if not dropped:
            return [r for r, _ in keep]
        for r, missing in dropped:
            file, _, line = r.origin.rpartition(":")
            report.quarantined.append(Quarantined(
                file, int(line), f"{r.resource_type}/{r.id}: dangling reference {missing[0]!r} "
                f"(not in this load nor in the node); fix: load the resource it names",
                r.resource))
            present.discard(f"{r.resource_type}/{r.id}")
        staged = [r for r, _ in keep]


def _write_quarantine(store: ObjectStore, load_id: str, records: list[Quarantined]) -> str:
    if not records:
        return ""
    key = f"{QUARANTINE_PREFIX}{load_id[:32]}.ndjson"
    lines = sorted(q.to_json() for q in records)
    store.write_bytes(key, ("\n".join(lines) + "\n").encode())
    return key


def _arrow(table: Table, rows: list[dict[str, Any]]) -> pa.Table:
    def clean(value: Any, type_: str) -> Any:
        if value is None:
            return None
        if type_ == "FLOAT":
            return float(value)
        if type_ == "STRING" and not isinstance(value, str):
            return str(value)
        return value

    return pa.Table.from_pylist(
        [{c.name: clean(row.get(c.name), c.type) for c in table.columns} for row in rows],
        schema=table.arrow_schema())


def _commit(con: Any, warehouse: Any, staged: list[StagedResource], report: LoadReport,
            inputs: list[dict[str, str]]) -> None:
    now = datetime.now(UTC)
    incoming = _arrow(FHIR_STAGING, [
        {"load_id": report.load_id, "source": r.source, "line": r.line,
         "resource_type": r.resource_type, "id": r.id, "resource": r.resource,
         "digest": r.digest, "generated_ts": r.generated_ts, "staged_ts": now}
        for r in staged])
    staging_ref, current_ref = warehouse.table_ref(FHIR_STAGING), warehouse.table_ref(
        FHIR_RESOURCES)
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("_fhir_incoming", incoming)
        con.execute("CREATE OR REPLACE TEMP TABLE _fhir_in AS SELECT * FROM _fhir_incoming")
        con.unregister("_fhir_incoming")
        # What the merge will do, per row: the latest generated version wins; equal content
        # never rewrites a row (so ingestion_ts moves only when the content changed).
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _fhir_action AS
            SELECT s.resource_type, s.id,
              CASE WHEN t.id IS NULL THEN 'insert'
                   WHEN t.digest = s.digest THEN 'unchanged'
                   WHEN s.generated_ts IS NOT NULL AND t.generated_ts IS NOT NULL
                        AND s.generated_ts < t.generated_ts THEN 'stale'
                   ELSE 'update' END AS action
            FROM _fhir_in AS s LEFT JOIN {current_ref} AS t
              ON t.resource_type = s.resource_type AND t.id = s.id""")
        # Staging keeps every version that arrived with new content (inserted, updated or
        # stale), not another copy of content the node already holds.
        con.execute(
            f"INSERT INTO {staging_ref} SELECT s.* FROM _fhir_in AS s JOIN _fhir_action AS a "
            f"ON a.resource_type = s.resource_type AND a.id = s.id WHERE a.action <> "
            f"'unchanged' AND NOT EXISTS (SELECT 1 FROM {staging_ref} AS t WHERE "
            f"t.load_id = s.load_id AND t.source = s.source AND t.line = s.line)")
        counts = dict(con.execute(
            "SELECT action, count(*) FROM _fhir_action GROUP BY action").fetchall())
        report.inserted, report.updated = counts.get("insert", 0), counts.get("update", 0)
        report.unchanged = counts.get("unchanged", 0)
        report.stale += counts.get("stale", 0)  # plus older versions within this load
        con.execute(f"""
            MERGE INTO {current_ref} AS t
            USING (SELECT s.* FROM _fhir_in AS s JOIN _fhir_action AS a
                   ON a.resource_type = s.resource_type AND a.id = s.id
                   WHERE a.action IN ('insert', 'update')) AS s
            ON t.resource_type = s.resource_type AND t.id = s.id
            WHEN MATCHED THEN UPDATE SET resource = s.resource, digest = s.digest,
              generated_ts = s.generated_ts, ingestion_ts = ?, source = s.source,
              line = s.line, load_id = s.load_id
            WHEN NOT MATCHED THEN INSERT (resource_type, id, resource, digest, generated_ts,
              ingestion_ts, source, line, load_id) VALUES (s.resource_type, s.id, s.resource,
              s.digest, s.generated_ts, ?, s.source, s.line, s.load_id)""", [now, now])
        changed = report.inserted + report.updated
        if changed:
            _refresh_flattened(con, warehouse, staged, now)
            _refresh_features(con, warehouse)
        known = con.execute(f"SELECT count(*) FROM {warehouse.table_ref(FHIR_LOADS)} "
                            f"WHERE load_id = ?", [report.load_id]).fetchone()
        if changed or not (known and known[0]):
            con.execute(
                f"INSERT OR REPLACE INTO {warehouse.table_ref(FHIR_LOADS)} VALUES "
                f"(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [report.load_id, json.dumps(inputs), report.resources, report.inserted,
                 report.updated,
                 report.unchanged, report.stale, len(report.quarantined), now])
        con.execute("DROP TABLE _fhir_in")
        con.execute("DROP TABLE _fhir_action")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _refresh_flattened(con: Any, warehouse: Any, staged: Sequence[StagedResource],
                       now: datetime) -> None:
    """Replace the flattened rows of the resources this load inserted or updated (their
    ViewDefinition rows were computed by the parallel tasks)."""
    by_key = {(r.resource_type, r.id): r for r in staged}
    from workloads.clinical.viewdef import ViewDefinition

    for name, spec in VIEW_DEFINITIONS.items():
        table, resource_type = FLATTENED[name], spec["resource"]
        key = table.primary_key[0]
        changed = [by_key[(resource_type, rid)] for (rid,) in con.execute(
            "SELECT id FROM _fhir_action WHERE action IN ('insert', 'update') "
            "AND resource_type = ?", [resource_type]).fetchall()]
        if not changed:
            continue
        rows: list[dict[str, Any]] = []
        view = ViewDefinition(spec)
        for r in changed:
            # New content is flattened by its validation task; staged files read back from
            # the bucket (the Batch task kind) carry no rows and are flattened here.
            view_rows = r.view_rows if r.view_rows is not None else tuple(
                view.rows_of(json.loads(r.resource)))
            for index, row in enumerate(view_rows):
                rows.append({**row, ROW_INDEX: index, "digest": r.digest,
                             "generated_ts": r.generated_ts, "ingestion_ts": now,
                             key: row.get(key) or r.id})
        flat_ref = warehouse.table_ref(table)
        con.register("_changed_ids", pa.table({"id": [r.id for r in changed]}))
        con.execute(f'DELETE FROM {flat_ref} WHERE "{key}" IN (SELECT id FROM _changed_ids)')
        con.unregister("_changed_ids")
        if rows:
            con.register("_flat_rows", _arrow(table, rows))
            cols = ", ".join(f'"{c}"' for c in table.column_names)
            con.execute(f"INSERT INTO {flat_ref} ({cols}) SELECT {cols} FROM _flat_rows")
            con.unregister("_flat_rows")


def features_sql(warehouse: Any) -> str:
    """FEATURES_SQL (BigQuery) for this warehouse: table names resolved, dialect transpiled."""
    import sqlglot

    sql = FEATURES_SQL
    for table in FLATTENED.values():
        sql = sql.replace(f"`{{dataset}}.{table.name}`", warehouse.table_ref(table))
    return str(sqlglot.transpile(sql, read="bigquery", write="duckdb")[0])


def _refresh_features(con: Any, warehouse: Any) -> None:
    target = warehouse.table_ref(CLINICAL_FEATURES)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _features AS {features_sql(warehouse)}")
    con.execute(f"""
        MERGE INTO {target} AS t USING _features AS s ON t.patient_id = s.patient_id
        WHEN MATCHED AND (t.diagnosis_cancer IS DISTINCT FROM s.diagnosis_cancer
          OR t.bmi IS DISTINCT FROM s.bmi OR t.bmi_effective IS DISTINCT FROM s.bmi_effective)
        THEN UPDATE SET diagnosis_cancer = s.diagnosis_cancer, bmi = s.bmi,
          bmi_effective = s.bmi_effective
        WHEN NOT MATCHED THEN INSERT VALUES (s.patient_id, s.diagnosis_cancer, s.bmi,
          s.bmi_effective)""")
    con.execute("DROP TABLE _features")


def iter_resources(warehouse: Any, resource_type: str) -> Iterable[dict[str, Any]]:
    con = _connection(warehouse)
    cursor = con.execute(f"SELECT resource FROM {warehouse.table_ref(FHIR_RESOURCES)} WHERE "
                         f"resource_type = ? ORDER BY id", [resource_type])
    while batch := cursor.fetchmany(1000):
        for (text,) in batch:
            yield json.loads(text)
