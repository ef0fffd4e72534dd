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
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import duckdb_extension_httpfs
import pyarrow as pa
import pyarrow.dataset as ds

from workloads.contracts.catalogue import ALL_TABLES
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.objectstore.base import ObjectStore
from workloads.warehouse.base import LoadResult
from workloads.warehouse.dialect import translate

CATALOG = "node"
CATALOGUE_NAMES = frozenset(t.name for t in ALL_TABLES)


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

    def __init__(self, node: str, path: Path, key: str, *, memory_limit: str = "1GB") -> None:
        self.node = node
        self.dialect = "duckdb"
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(":memory:")
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
            self._con.execute(table.duckdb_ddl(self.table_ref(table)))

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
        return translate(sql, self.dialect, self.table_ref, CATALOGUE_NAMES)

    def stage_parquet(
        self, store: ObjectStore, key: str, name: str, like: Table, job_tag: str
    ) -> None:
        # Read through the store's decrypting reader: no plaintext copy is ever written.
        # A dataset (unlike a stream) can be scanned by several statements, with projection.
        parquet = ds.ParquetFileFormat()
        fragment = parquet.make_fragment(pa.PythonFile(store.open_read(key), mode="r"))
        self._con.register(name, ds.FileSystemDataset(
            [fragment], fragment.physical_schema, parquet))

    def unstage(self, name: str) -> None:
        self._con.unregister(name)

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
