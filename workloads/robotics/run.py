"""Generate a node's fleet into its encrypted warehouse (and, if asked, a Parquet lake).

Re-run semantics: a node holds one synthetic fleet. A run replaces the node's robotics
tables as a whole, in one transaction (a crash leaves the old fleet or the new one, never
half); a run whose fingerprint (profile file, settings, seed, the node's patients) equals
the stored one changes nothing and says so.

Locally, telemetry goes into a warehouse table with the external table's columns: the
warehouse is the node's encrypted store. The cloud's layout (date-partitioned Parquet under
robotics/telemetry/ of the results bucket, read by BigQuery as an external table) is written
through the ObjectStore interface when a lake is named (`--lake gs://<project>-results`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from workloads.contracts.errors import UserError
from workloads.contracts.schema import Column, Table
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.contracts.tables.robotics import (
    PROCEDURE_TELEMETRY,
    ROBOTICS,
    TELEMETRY_PREFIX,
    UNIQUE_COLUMNS,
)
from workloads.local_node import LocalNode
from workloads.objectstore.base import ObjectStore, open_store
from workloads.robotics.fleet import Fleet, Patients, build_fleet
from workloads.robotics.profile import FleetConfig, FleetProfile
from workloads.robotics.telemetry import DEFAULT_CHUNK_ROWS, telemetry_chunks, total_rows
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

# Local ledger of the fleet a node holds (one row): not part of the domain, never leaves.
FLEET_RUNS = Table(
    name="robotics_fleet_runs",
    description="The synthetic fleet this node's robotics tables hold: its fingerprint.",
    columns=(
        Column("fingerprint", "STRING", "REQUIRED", "sha256 of profile, settings, seed, patients"),
        Column("settings", "JSON", "REQUIRED", "The run's settings"),
        Column("row_counts", "JSON", "REQUIRED", "Rows per table"),
        Column("loaded_at", "TIMESTAMP", "REQUIRED", "When the load committed"),
    ),
    primary_key=("fingerprint",),
)


@dataclass(frozen=True)
class FleetResult:
    node: str
    changed: bool  # False: the same fleet was already loaded, nothing was written
    rows: dict[str, int]
    lake_objects: int
    exported: list[str]


def read_patients(warehouse: DuckDBWarehouse, node: str) -> Patients:
    """The node's own patients: procedures join the node's clinical and genomic data."""
    warehouse.ensure_tables([PATIENT_GENOMIC_DATA])
    rows = warehouse.query(
        f"SELECT patient_id, age FROM {warehouse.table_ref(PATIENT_GENOMIC_DATA)} "
        "ORDER BY patient_id")
    if rows.num_rows == 0:
        raise UserError(
            f"node {node!r} has no patients in patient_genomic_data, and procedures are "
            f"performed on the node's own patients; fix: generate them first "
            f"(python -m workloads generate --node {node})")
    return Patients(rows.column("patient_id").to_pylist(),
                    rows.column("age").to_numpy().astype(np.int64))


def local_ddl(table: Table, warehouse: DuckDBWarehouse, *, ref: str | None = None) -> str:
    """CREATE TABLE with the keys enforced: primary key, unique columns, foreign keys.
    Telemetry keeps its keys declared only (tests check them in SQL): an index over tens of
    millions of samples would cost more memory than the rest of the load."""
    ref = ref or warehouse.table_ref(table)
    if table.external is not None:
        return dataclasses.replace(table, primary_key=()).duckdb_ddl(ref)
    ddl = table.duckdb_ddl(ref)
    extra = [f'UNIQUE ("{c}")' for c in UNIQUE_COLUMNS.get(table.name, ())]
    extra += [
        "FOREIGN KEY (" + ", ".join(f'"{c}"' for c in fk.columns) + f') REFERENCES "{fk.table}" ('
        + ", ".join(f'"{c}"' for c in fk.referenced) + ")"
        for fk in table.foreign_keys
    ]
    assert ddl.endswith("\n)")
    return ddl[:-2] + "".join(f",\n  {e}" for e in extra) + "\n)"


def view_sql(sql: str, warehouse: DuckDBWarehouse) -> str:
    """A domain view's BigQuery SQL for the local warehouse: `{dataset}` is where the
    warehouse keeps the tables, and sqlglot turns BigQuery functions into DuckDB's."""
    import sqlglot

    ref = warehouse.table_ref("x")
    prefix = ref[: ref.rindex(".")]
    return str(sqlglot.transpile(sql.replace("{dataset}", prefix), read="bigquery",
                                 write="duckdb")[0])


def _insert(con: duckdb.DuckDBPyConnection, target: str, rows: pa.Table) -> None:
    con.register("_robotics_rows", rows)
    try:
        con.execute(f"INSERT INTO {target} SELECT * FROM _robotics_rows")
    finally:
        con.unregister("_robotics_rows")


# Dictionary pages only for the repetitive strings: trying them on float signals costs
# about a third of the encoding time for nothing.
PARQUET_OPTIONS: dict[str, object] = {
    "compression": "zstd", "use_dictionary": ["procedure_id", "tool_type"]}


def lake_key(node: str, date: dt.date, first_id: int) -> str:
    return f"{TELEMETRY_PREFIX}date={date.isoformat()}/{node}-{first_id:019d}.parquet"


def write_lake(store: ObjectStore, node: str, chunk: pa.Table) -> int:
    """Write one telemetry chunk as Parquet objects, one per day (Hive layout date=...;
    the partition key lives in the path, not in the file). Returns the objects written."""
    written = 0
    dates = chunk.column("date")
    for day in pc.unique(dates).to_pylist():
        part = chunk.filter(pc.equal(dates, pa.scalar(day, pa.date32())))
        sink = io.BytesIO()
        pq.write_table(part.drop_columns(["date"]), sink, **PARQUET_OPTIONS)
        store.write_bytes(lake_key(node, day, part.column("telemetry_id")[0].as_py()),
                          sink.getvalue())
        written += 1
    return written


def generate_fleet(
    profile: FleetProfile,
    config: FleetConfig,
    *,
    seed: int,
    root: Path,
    lake: str | None = None,
    export_dir: Path | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = True,
) -> FleetResult:
    if seed < 0:
        raise UserError(f"--seed {seed}: must be >= 0; fix: e.g. --seed 42")
    config = config.checked()
    node = LocalNode(profile.node, root)
    stores = [open_store(lake)] if lake else []
    exported: list[str] = []
    if export_dir is not None:
        export_dir.mkdir(parents=True, exist_ok=True)
        stores.append(open_store(str(export_dir)))
    with node.open_warehouse(create=False) as warehouse:
        patients = read_patients(warehouse, profile.node)
        patient_digest = str(warehouse.query(
            "SELECT md5(string_agg(patient_id || ':' || age, ',' ORDER BY patient_id)) "
            f"FROM {warehouse.table_ref(PATIENT_GENOMIC_DATA)}").column(0)[0].as_py())
        fingerprint = profile.fingerprint(config, seed, patient_digest)
        warehouse.query(f"DROP TABLE IF EXISTS {warehouse.table_ref(STAGING)}")  # a crash's
        if _already_loaded(warehouse, fingerprint) and not stores:
            rows = _row_counts(warehouse)
            return FleetResult(profile.node, False, rows, 0, [])
        fleet = build_fleet(profile, config, patients, seed)
        rows, objects = _replace(warehouse, fleet, config, seed, fingerprint, stores,
                                 chunk_rows, progress)
    if export_dir is not None:
        for name, table in fleet.tables():
            path = export_dir / f"{name}.parquet"
            pq.write_table(table, path)
            exported.append(str(path))
        exported.append(str(export_dir / TELEMETRY_PREFIX))
    return FleetResult(profile.node, True, rows, objects if lake else 0, exported)


def _already_loaded(warehouse: DuckDBWarehouse, fingerprint: str) -> bool:
    warehouse.ensure_tables([FLEET_RUNS])
    found = warehouse.query(f"SELECT count(*) FROM {warehouse.table_ref(FLEET_RUNS)} "
                            "WHERE fingerprint = ?", [fingerprint]).column(0)[0].as_py()
    return bool(found)


def _row_counts(warehouse: DuckDBWarehouse) -> dict[str, int]:
    return {t.name: int(warehouse.query(f"SELECT count(*) FROM {warehouse.table_ref(t)}")
                        .column(0)[0].as_py()) for t in ROBOTICS.tables}


STAGING = "_procedure_telemetry_next"  # telemetry of a run not yet swapped in


def _replace(warehouse: DuckDBWarehouse, fleet: Fleet, config: FleetConfig, seed: int,
             fingerprint: str, stores: list[ObjectStore], chunk_rows: int, progress: bool
             ) -> tuple[dict[str, int], int]:
    """Stage the telemetry in a side table, one committed transaction per chunk (a single
    transaction keeps every uncommitted row in memory: 7 GB for 34M rows), then swap the
    whole fleet in with one transaction. A crash before the swap leaves the old fleet and a
    staging table the next run drops."""
    rows = {name: table.num_rows for name, table in fleet.tables()}
    expected = total_rows(fleet.plans, config.hz)
    objects = 0
    staging = warehouse.table_ref(STAGING)
    with warehouse.transaction() as con:
        con.execute(f"DROP TABLE IF EXISTS {staging}")
        con.execute(local_ddl(PROCEDURE_TELEMETRY, warehouse, ref=staging))
    with tqdm(total=expected, unit="row", unit_scale=True, desc=f"telemetry {warehouse.node}",
              file=sys.stderr, disable=not progress) as bar:
        for chunk in _chunks(fleet, config, seed, warehouse.node, chunk_rows):
            with warehouse.transaction() as con:
                _insert(con, staging, chunk)
            for store in stores:
                objects += write_lake(store, warehouse.node, chunk)
            bar.update(chunk.num_rows)
    rows[PROCEDURE_TELEMETRY.name] = expected
    with warehouse.transaction() as con:
        for view in ROBOTICS.views:
            con.execute(f"DROP VIEW IF EXISTS {warehouse.table_ref(view.name)}")
        for table in reversed(ROBOTICS.tables):  # children before parents
            con.execute(f"DROP TABLE IF EXISTS {warehouse.table_ref(table)}")
        for table in ROBOTICS.tables:
            if table is not PROCEDURE_TELEMETRY:
                con.execute(local_ddl(table, warehouse))
        for name, table in fleet.tables():
            _insert(con, warehouse.table_ref(name), table)
        con.execute(f'ALTER TABLE {staging} RENAME TO "{PROCEDURE_TELEMETRY.name}"')
        for view in ROBOTICS.views:
            con.execute(f"CREATE VIEW {warehouse.table_ref(view.name)} AS "
                        f"{view_sql(view.sql, warehouse)}")
        runs = warehouse.table_ref(FLEET_RUNS)
        con.execute(f"DELETE FROM {runs}")
        settings = json.dumps({**dataclasses.asdict(config), "seed": seed}, default=str)
        con.execute(f"INSERT INTO {runs} VALUES (?, ?, ?, now())",
                    [fingerprint, settings, json.dumps(rows)])
    return rows, objects


def _chunks(fleet: Fleet, config: FleetConfig, seed: int, node: str, chunk_rows: int
            ) -> Iterator[pa.Table]:
    return telemetry_chunks(fleet.plans, config.hz, seed, node, chunk_rows=chunk_rows)
