"""The local node warehouse: a DuckDB database encrypted at rest with the node's own key.

DuckDB encrypts the database file, its write-ahead log and its spill files with
AES-256-GCM. It writes encrypted files only through OpenSSL, which DuckDB ships in its
official `httpfs` extension; we load that extension from the `duckdb-extension-httpfs`
wheel with DuckDB's signature check left on, so DuckDB itself refuses the binary unless
it carries DuckDB's own signature. The "unsafe" fallback (`force_mbedtls_unsafe`) is
never set: without the extension, writing fails instead of writing weak ciphertext.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import duckdb_extension_httpfs
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from workloads.contracts.catalogue import ALL_TABLES
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.objectstore.base import ObjectStore
from workloads.warehouse.base import LoadResult
from workloads.warehouse.dialect import translate
from workloads.warehouse.long_layout import ROW, LongLayout

CATALOG = "node"
CATALOGUE_NAMES = frozenset(t.name for t in ALL_TABLES)
LONG_LAYOUTS = {t.name: LongLayout.of(t) for t in ALL_TABLES if t.stored_long}
# Element rows (calls) committed per statement while a file is staged: DuckDB keeps an
# uncommitted statement's rows in memory, so commits bound the peak (measured with
# benchmarks/calls_store.py: 4M a commit and a 1 GB pool peaked at 1.9 GB for 115M calls).
ELEMENTS_PER_COMMIT = 2_000_000
STREAM_MEMORY_LIMIT = "300MB"


def _httpfs_extension_path() -> str:
    folder = os.path.dirname(duckdb_extension_httpfs.__file__)
    wanted = os.path.join(folder, "extensions", f"v{duckdb.__version__}", "httpfs.duckdb_extension")
    if os.path.exists(wanted):
        return wanted
    found = sorted(glob.glob(os.path.join(folder, "extensions", "*", "httpfs.duckdb_extension")))
    raise UserError(
        f"duckdb {duckdb.__version__} needs duckdb-extension-httpfs=={duckdb.__version__} "
        f"for encrypted writes (found {found or 'none'}); fix: pip install -r requirements.txt"
    )


class DuckDBWarehouse:
    """One node's encrypted DuckDB database, attached under the catalog name `node`."""

    def __init__(self, node: str, path: Path, key: str, *, memory_limit: str = "1GB",
                 nested: bool = False) -> None:
        """`nested`: keep `stored_long` tables nested as declared (the layout before the
        long one; the benchmark's baseline and the tests' reference)."""
        self.node = node
        self.dialect = "duckdb"
        self._long: dict[str, LongLayout] = {} if nested else dict(LONG_LAYOUTS)
        self._staged_long: dict[str, LongLayout] = {}  # staged files like a long table
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(":memory:")
        self._memory_limit = memory_limit
        self._con.execute(f"SET memory_limit = '{memory_limit}'")
        # Signature checks stay on, so only DuckDB's own signed build of httpfs can load.
        unsigned = self._con.execute("SELECT current_setting('allow_unsigned_extensions')")
        if (unsigned.fetchone() or (True,))[0]:
            raise UserError("DuckDB allows unsigned extensions here; fix: unset that option")
        self._con.execute(f"LOAD '{_httpfs_extension_path()}'")
        # Spill files go next to the database, encrypted like it (off by default in DuckDB).
        self._con.execute(f"SET temp_directory = '{self.path.parent / '.duckdb_tmp'}'")
        self._con.execute("SET temp_file_encryption = true")
        try:
            self._con.execute(
                f"ATTACH '{self.path}' AS {CATALOG} "
                f"(ENCRYPTION_KEY '{key}', ENCRYPTION_CIPHER 'GCM')"
            )
        except duckdb.Error as exc:
            self._con.close()
            if "lock" in str(exc).lower():  # another process has the database open
                holder = str(exc).split("Conflicting lock is held in", 1)[-1].strip()
                raise UserError(
                    f"node {node!r} is in use by another process (its warehouse {self.path} "
                    f"is locked{': ' + holder if holder != str(exc).strip() else ''}); fix: wait "
                    "for that command to finish (one writer per node at a time), or stop it"
                ) from exc
            raise UserError(
                f"cannot open node {node!r} warehouse {self.path}: {exc}; fix: use the key this "
                f"node was created with (see README, 'Data at rest')"
            ) from exc
        self._con.execute(f"USE {CATALOG}")

    # -- schema -----------------------------------------------------------------
    def ensure_tables(self, tables: Iterable[Table]) -> None:
        for table in tables:
            layout = self._long.get(table.name)
            if layout is None:
                self._con.execute(table.duckdb_ddl(self.table_ref(table)))
                continue
            nested = self._con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND "
                "schema_name = 'main' AND table_name = ?", [CATALOG, table.name]).fetchone()
            if nested and nested[0]:
                raise UserError(
                    f"node {self.node!r} keeps {table.name} nested (written by an earlier "
                    f"version); fix: python -m workloads node reset --node {self.node} --yes, "
                    "then load the VCFs again")
            for part in (layout.parent_table(), layout.child_table()):
                self._con.execute(part.duckdb_ddl(self.table_ref(part)))
            self._con.execute(layout.view_sql(self.table_ref))

    def table_ref(self, table: Table | str) -> str:
        name = table.name if isinstance(table, Table) else table
        return f'{CATALOG}.main."{name}"'

    # -- loading ----------------------------------------------------------------
    def merge(
        self, table: Table, batches: pa.Table | Iterable[pa.RecordBatch], *, label: str = "",
        replace: bool = False, also: Sequence[str] = (),
    ) -> LoadResult:
        """Upsert on the primary key in one transaction: a failure leaves the table as it was.

        `replace`: delete the rows whose key is not among the new ones (same transaction).
        `also`: further statements (this backend's SQL) committed with the rows.
        """
        if not table.primary_key:
            raise ValueError(f"table {table.name} has no primary key to merge on")
        self.ensure_tables([table])
        schema = table.arrow_schema()
        chunks = [batches] if isinstance(batches, pa.Table) else batches
        target = self.table_ref(table)
        cols = table.column_names
        on = " AND ".join(f't."{k}" = s."{k}"' for k in table.primary_key)
        changed = " OR ".join(
            f't."{c}" IS DISTINCT FROM s."{c}"' for c in cols if c not in table.primary_key
        ) or "FALSE"
        staging = "temp.main._staging"
        merge_sql = (
            f"MERGE INTO {target} AS t USING {staging} AS s ON {on} "
            f"WHEN MATCHED AND ({changed}) THEN UPDATE SET "
            + ", ".join(f'"{c}" = s."{c}"' for c in cols if c not in table.primary_key)
            + " WHEN NOT MATCHED THEN INSERT ("
            + ", ".join(f'"{c}"' for c in cols)
            + ") VALUES ("
            + ", ".join(f's."{c}"' for c in cols)
            + ")"
        )
        col_list = ", ".join(f'"{c}"' for c in cols)
        first_key = table.primary_key[0]
        total = 0
        self._con.execute("BEGIN TRANSACTION")
        try:
            # Stage every chunk first (a temp table spills, encrypted, to temp_directory),
            # then check keys and MERGE once: one join against the target instead of one
            # per chunk, which made 10M-row loads quadratic and ran out of memory.
            self._con.execute(
                f"CREATE OR REPLACE TEMP TABLE _staging AS SELECT {col_list} FROM {target} LIMIT 0"
            )
            for chunk in chunks:
                if chunk.num_rows == 0:
                    continue
                if isinstance(chunk, pa.RecordBatch):
                    chunk = pa.Table.from_batches([chunk])
                incoming = chunk.select(cols).cast(schema)
                self._con.register("_incoming", incoming)
                self._con.execute(f"INSERT INTO {staging} SELECT {col_list} FROM _incoming")
                self._con.unregister("_incoming")
                total += incoming.num_rows
            self._check_unique_keys(table, staging, label)
            deleted = 0
            if replace:
                gone = self._con.execute(
                    f"DELETE FROM {target} AS t WHERE NOT EXISTS "
                    f"(SELECT 1 FROM {staging} AS s WHERE {on})").fetchone()
                deleted = int(gone[0]) if gone else 0
            # Count what the MERGE will do with one vectorised join, then do it.
            inserted, updated = self._con.execute(
                f"SELECT count(*) FILTER (WHERE t.\"{first_key}\" IS NULL), "
                f"count(*) FILTER (WHERE t.\"{first_key}\" IS NOT NULL AND ({changed})) "
                f"FROM {staging} AS s LEFT JOIN {target} AS t ON {on}"
            ).fetchone() or (0, 0)
            self._con.execute(merge_sql)
            self._con.execute(f"DROP TABLE {staging}")
            for statement in also:
                self._con.execute(statement)
            self._con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):  # e.g. the transaction already aborted
                self._con.execute("ROLLBACK")
            raise
        return LoadResult(table.name, inserted, updated, total - inserted - updated, deleted)

    def _check_unique_keys(self, table: Table, staging: str, label: str) -> None:
        keys = ", ".join(f'"{k}"' for k in table.primary_key)
        dup = self._con.execute(
            f"SELECT {keys}, count(*) AS n FROM {staging} GROUP BY ALL HAVING n > 1 LIMIT 1"
        ).fetchone()
        if dup:
            raise UserError(
                f"{label or table.name}: key {dup[:-1]} appears {dup[-1]} times in one load; "
                f"fix: make {', '.join(table.primary_key)} unique before loading"
            )

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection inside one transaction: committed when the block ends, rolled back
        if it raises (for loads spanning several tables, e.g. replacing a whole domain)."""
        self._con.execute("BEGIN TRANSACTION")
        try:
            yield self._con
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    # -- reading ----------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        return self._con.execute(sql, params or []).to_arrow_table()

    def render(self, sql: str) -> list[str]:
        names = CATALOGUE_NAMES | {n for lay in LONG_LAYOUTS.values() for n in
                                   (lay.parent, lay.child)}
        return translate(sql, self.dialect, self.table_ref, names,
                         {**self._long, **self._staged_long})

    def stage_parquet(
        self, store: ObjectStore, key: str, name: str, like: Table, job_tag: str
    ) -> None:
        # Read through the store's decrypting reader: no plaintext copy is ever written.
        if like.name in self._long:
            self._staged_long[name] = self._long[like.name].staged(name)
            try:
                self._stage_long(store, key, self._staged_long[name])
            except BaseException:
                self.unstage(name)  # its calls so far go at once, not at the next load
                raise
            return
        # A dataset (unlike a stream) can be scanned by several statements, with projection.
        import pyarrow.dataset as ds  # here: it imports pandas (~0.2 s a process)

        parquet = ds.ParquetFileFormat()
        fragment = parquet.make_fragment(pa.PythonFile(store.open_read(key), mode="r"))
        self._con.register(name, ds.FileSystemDataset(
            [fragment], fragment.physical_schema, parquet))

    def _stage_long(self, store: ObjectStore, key: str, staged: LongLayout) -> None:
        """Stream a staged file like a long-stored table into that layout: its rows into a
        temporary table `<name>__rows`, its elements straight into the element table,
        committed a few million at a time (flat memory). No `__rows` row of the table joins
        them until the load commits; a load that never does leaves rows numbered past the
        table's last, which the next staging (or `unstage`) deletes."""
        self.ensure_tables([staged.table])
        base = self._discard_uncommitted(staged)
        column = staged.column.name
        parent = f'temp.main."{staged.parent}"'
        self._con.execute(f"CREATE OR REPLACE TEMP TABLE \"{staged.parent}\" AS "
                          f"SELECT * FROM {self.table_ref(self._long[staged.table.name].parent)} "
                          "LIMIT 0")
        reader = pq.ParquetFile(store.open_read(key))
        rows: list[pa.RecordBatch] = []

        def elements() -> Iterator[pa.RecordBatch]:
            start = base
            # Row group by row group (the pipeline writes ~1M calls each): iter_batches
            # counts rows, and 64K variants of 2,000 samples would be 131M calls at once.
            groups = (reader.read_row_group(g).combine_chunks().to_batches()
                      for g in range(reader.num_row_groups))
            for batch in itertools.chain.from_iterable(groups):
                numbers = pa.array(range(start, start + batch.num_rows), pa.int64())
                nested = batch.column(column)
                rows.append(batch.drop_columns([column]).append_column(ROW, numbers))
                items = nested.flatten()  # ListArray.flatten honours offsets and slices
                owner = pc.add(pc.list_parent_indices(nested), start)
                yield pa.RecordBatch.from_arrays(
                    [owner.cast(pa.int64()), *items.flatten()],
                    [ROW, *(f.name for f in items.type)])
                start += batch.num_rows

        stream = elements()
        # A smaller buffer pool while calls stream in: DuckDB would otherwise keep up to
        # its memory_limit of written blocks cached on top of the uncommitted rows.
        self._con.execute(f"SET memory_limit = '{STREAM_MEMORY_LIMIT}'")
        try:
            while (first := next(stream, None)) is not None:
                self._insert(self.table_ref(staged.child),
                             _upto(first, stream, ELEMENTS_PER_COMMIT))
                self._insert(parent, iter(rows))  # the rows whose calls just went in
                rows.clear()
        finally:
            self._con.execute(f"SET memory_limit = '{self._memory_limit}'")

    def _insert(self, target: str, batches: Iterator[pa.RecordBatch]) -> None:
        first = next(batches)
        source = pa.RecordBatchReader.from_batches(
            first.schema, itertools.chain([first], batches))
        self._con.register("_incoming", source)
        try:
            self._con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _incoming")
        finally:
            self._con.unregister("_incoming")

    def _discard_uncommitted(self, layout: LongLayout) -> int:
        """Delete element rows no committed row owns (a crashed or refused load's); the
        next free row number."""
        parent = self.table_ref(self._long[layout.table.name].parent)
        found = self._con.execute(f'SELECT max("{ROW}") FROM {parent}').fetchone()
        base = 0 if not found or found[0] is None else int(found[0]) + 1
        self._con.execute(f'DELETE FROM {self.table_ref(layout.child)} WHERE "{ROW}" >= ?',
                          [base])
        return base

    def unstage(self, name: str) -> None:
        staged = self._staged_long.pop(name, None)
        if staged is None:
            self._con.unregister(name)
            return
        self._con.execute(f'DROP TABLE IF EXISTS temp.main."{staged.parent}"')
        self._discard_uncommitted(staged)  # a refused or failed load's elements

    def run_atomic(self, sql: str, *, job_id: str) -> None:
        self._con.execute("BEGIN TRANSACTION")
        try:
            for statement in self.render(sql):
                self._con.execute(statement)
            self._con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):  # e.g. the transaction already aborted
                self._con.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> DuckDBWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _upto(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch], rows: int
          ) -> Iterator[pa.RecordBatch]:
    """`first`, then batches of `rest` until about `rows` rows have been given."""
    given = 0
    batch: pa.RecordBatch | None = first
    while batch is not None:
        yield batch
        given += batch.num_rows
        if given >= rows:
            return
        batch = next(rest, None)
