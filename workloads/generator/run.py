"""Generate one node's patients in a single streaming pass into files and its warehouse.

Every batch goes to each file sink (in worker threads) and into the warehouse's MERGE as
it is produced. Modes: `replace` (the default: the node's synthetic population becomes
exactly the new rows, files and table) or `append` (new patients numbered after the
ones already there).

Crash safety: the node's files are objects of its encrypted store under a fresh
generation key (patient_genomic_data/<generation>/...), complete before the warehouse
transaction commits; that transaction also records the generation in `_generations`.
The warehouse's record is the commit point: a crash before it leaves the old generation
committed (the new objects are orphans, removed by the next run), a crash after it
leaves the new one. `CURRENT.json` repeats the record for readers of the bucket and is
rewritten from the warehouse when they disagree. Exports to --out (plain files the user
asked for) are renamed into place after the warehouse commits.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from workloads.contracts.errors import UserError
from workloads.contracts.schema import Column, Table
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.generator.outputs import (
    FILE_FORMATS,
    ExportFile,
    Sink,
    StoreObject,
    Target,
    open_sink,
    writable_dir,
)
from workloads.generator.profile import Profile
from workloads.generator.sampling import DEFAULT_CHUNK_ROWS, check_counts, generate_batches
from workloads.local_node import LocalNode
from workloads.objectstore.base import ObjectStore
from workloads.objectstore.folder import clean_temporaries
from workloads.warehouse.base import LoadResult
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

WAREHOUSE = "warehouse"
FORMATS = (*FILE_FORMATS, WAREHOUSE)
DEFAULT_FORMATS = FORMATS
MODES = ("replace", "append")
DEFAULT_MODE = "replace"
FILES_PREFIX = f"{PATIENT_GENOMIC_DATA.name}/"
CURRENT_KEY = f"{FILES_PREFIX}CURRENT.json"

# Local bookkeeping, not part of the deployed schema: which generation of the synthetic
# table is committed, written in the same transaction as its rows.
GENERATIONS = Table(
    name="_generations",
    description="The committed generation of each synthetic table of this local node.",
    columns=(
        Column("table_name", "STRING", "REQUIRED", "The generated table"),
        Column("record", "STRING", "REQUIRED", "JSON: generations, their files, rows, seed"),
        Column("committed_at", "TIMESTAMP", "REQUIRED", "When the rows committed"),
    ),
    primary_key=("table_name",),
)


@dataclass(frozen=True)
class GenerateResult:
    node: str
    rows: int
    files: dict[str, str]  # format -> where the file is (an export path or a store object)
    load: LoadResult | None  # what the warehouse MERGE did, if loaded
    generation: str = ""
    mode: str = DEFAULT_MODE


def parse_formats(text: str) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise UserError(
            f"--formats {text!r}: unknown format {', '.join(unknown) or '(none given)'}; "
            f"fix: a comma-separated subset of {','.join(FORMATS)}"
        )
    return wanted


def file_name(node: str, fmt: str) -> str:
    return f"{PATIENT_GENOMIC_DATA.name}_{node}.{fmt}"


def committed(node: LocalNode) -> dict[str, Any] | None:
    """The committed generation record: the warehouse's, else CURRENT.json's (files only)."""
    if node.warehouse_path.exists():
        with node.open_warehouse(create=False) as warehouse:
            record = warehouse_record(warehouse)
        if record is not None:
            return record
    store = node.store(create=False)
    if store.exists(CURRENT_KEY):
        current: dict[str, Any] = json.loads(store.read_bytes(CURRENT_KEY))
        return current
    return None


def warehouse_record(warehouse: DuckDBWarehouse) -> dict[str, Any] | None:
    warehouse.ensure_tables([GENERATIONS])
    found = warehouse.query(
        f"SELECT record FROM {warehouse.table_ref(GENERATIONS)} WHERE table_name = ?",
        [PATIENT_GENOMIC_DATA.name]).column("record").to_pylist()
    return json.loads(found[0]) if found else None


def tidy(node: LocalNode, store: ObjectStore, record: dict[str, Any] | None) -> list[str]:
    """Make CURRENT.json say what is committed and remove objects of other generations and
    dead writers' temporaries; returns the removed keys."""
    clean_temporaries(node.bucket)
    if record is None:
        return []
    keep = {key for gen in record["generations"] for key in gen["files"].values()}
    removed = [key for key in store.list(FILES_PREFIX)
               if key != CURRENT_KEY and key not in keep]
    for key in removed:
        store.delete(key)
    text = json.dumps(record, indent=2, sort_keys=True).encode()
    if not store.exists(CURRENT_KEY) or store.read_bytes(CURRENT_KEY) != text:
        store.write_bytes(CURRENT_KEY, text)
    return removed


def _next_first_id(warehouse: DuckDBWarehouse | None) -> int:
    if warehouse is None:
        return 0
    warehouse.ensure_tables([PATIENT_GENOMIC_DATA])
    table = warehouse.table_ref(PATIENT_GENOMIC_DATA)
    found = warehouse.query(f"SELECT count(*) AS n FROM {table}")
    return int(found.column("n")[0].as_py())


def generate_node(
    profile: Profile,
    *,
    rows: int,
    seed: int,
    root: Path,
    out_dir: Path | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = True,
    mode: str = DEFAULT_MODE,
) -> GenerateResult:
    check_counts(rows=rows, seed=seed, chunk_rows=chunk_rows)
    if mode not in MODES:
        raise UserError(f"--mode {mode!r}: unknown; fix: one of {', '.join(MODES)}")
    node = LocalNode(profile.node, root)
    file_formats = [f for f in formats if f in FILE_FORMATS]
    to_store = bool(file_formats) and out_dir is None
    if out_dir is not None and file_formats:
        writable_dir(out_dir)
        clean_temporaries(out_dir)
    elif WAREHOUSE in formats or to_store:
        writable_dir(node.folder, "--root")
    store = node.store() if to_store or WAREHOUSE in formats else None
    generation = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    previous = committed(node) if store is not None else None
    if store is not None:
        tidy(node, store, previous)  # leftovers of a crashed run go first
    schema = PATIENT_GENOMIC_DATA.arrow_schema()
    with (node.open_warehouse() if WAREHOUSE in formats else nullcontext()) as warehouse:
        first_id = _next_first_id(warehouse) if mode == "append" else 0
        targets: dict[str, Target] = {}
        for fmt in file_formats:
            name = file_name(profile.node, fmt)
            if out_dir is not None:
                targets[fmt] = ExportFile(out_dir / name)
            else:
                assert store is not None
                targets[fmt] = StoreObject(store, f"{FILES_PREFIX}{generation}/{name}")
        record = _record(previous, generation, mode, rows, seed, profile, first_id,
                         {fmt: t.key for fmt, t in targets.items() if isinstance(t, StoreObject)})
        batches = generate_batches(profile, rows, seed, chunk_rows=chunk_rows, first_id=first_id)
        load = _stream(profile, rows, batches, targets, schema, warehouse, record, mode,
                       progress)
    if store is not None and (to_store or warehouse is not None):
        tidy(node, store, record)
    files = {fmt: t.location for fmt, t in targets.items()}
    return GenerateResult(profile.node, rows, files, load, generation, mode)


def _record(
    previous: dict[str, Any] | None, generation: str, mode: str, rows: int, seed: int,
    profile: Profile, first_id: int, files: dict[str, str],
) -> dict[str, Any]:
    this = {"generation": generation, "rows": rows, "seed": seed, "first_id": first_id,
            "profile": str(profile.source), "files": files}
    kept = list(previous["generations"]) if previous and mode == "append" else []
    return {"table": PATIENT_GENOMIC_DATA.name, "mode": mode,
            "generations": [*kept, this]}


def _stream(
    profile: Profile,
    rows: int,
    batches: Iterator[pa.RecordBatch],
    targets: dict[str, Target],
    schema: pa.Schema,
    warehouse: DuckDBWarehouse | None,
    record: dict[str, Any],
    mode: str,
    progress: bool,
) -> LoadResult | None:
    sinks: list[Sink] = []
    done: list[Sink] = []  # store objects committed when the stream ended
    load: LoadResult | None = None
    with tqdm(
        total=rows, unit="row", unit_scale=True, desc=f"generate {profile.node}",
        file=sys.stderr, disable=not progress,
    ) as bar, ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        writer = _BackgroundWriter(pool, sinks)
        try:
            for fmt, target in targets.items():
                sinks.append(open_sink(fmt, target, schema))
            exports = [s for s in sinks if isinstance(s.target, ExportFile)]
            objects = [s for s in sinks if isinstance(s.target, StoreObject)]
            stream = _fan_out(batches, writer, bar, objects, done)
            if warehouse is not None:
                statement = (
                    f"INSERT OR REPLACE INTO {warehouse.table_ref(GENERATIONS)} "
                    f"VALUES ('{PATIENT_GENOMIC_DATA.name}', "
                    f"'{json.dumps(record, sort_keys=True).replace(chr(39), chr(39) * 2)}', "
                    "now())")
                warehouse.ensure_tables([GENERATIONS])
                load = warehouse.merge(PATIENT_GENOMIC_DATA, stream, label=str(profile.source),
                                       replace=mode == "replace", also=[statement])
            else:
                for _ in stream:
                    pass
            writer.wait()
        except BaseException:
            writer.wait(raise_errors=False)  # never close a file another thread writes
            for sink in sinks:
                if sink not in done:
                    sink.abort()
            raise
        for sink in exports:
            sink.commit()
    return load


class _BackgroundWriter:
    """Writes each batch to every sink in worker threads while the next batch is drawn.

    Arrow's CSV and Parquet writers release the GIL, so file output overlaps generation
    (and the warehouse load). Batches reach each sink in order: a batch is handed over
    only after every sink finished the previous one.
    """

    def __init__(self, pool: ThreadPoolExecutor, sinks: Sequence[Sink]) -> None:
        self._pool = pool
        self._sinks = sinks
        self._pending: list[Future[None]] = []

    def write(self, batch: pa.RecordBatch) -> None:
        self.wait()
        self._pending = [self._pool.submit(sink.write, batch) for sink in self._sinks]

    def wait(self, *, raise_errors: bool = True) -> None:
        pending, self._pending = self._pending, []
        futures_wait(pending)
        if raise_errors:
            for future in pending:
                future.result()


def _fan_out(
    batches: Iterable[pa.RecordBatch], writer: _BackgroundWriter, bar: tqdm[Any],
    objects: Sequence[Sink], done: list[Sink],
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        writer.write(batch)
        bar.update(batch.num_rows)
        yield batch
    # The generation's objects are complete before the warehouse commits (see the module).
    writer.wait()
    for sink in objects:
        sink.commit()
        done.append(sink)
    bar.set_postfix_str("finishing: warehouse MERGE / file commit")  # can take a while at 10M
