"""The BigQuery backend of the Warehouse protocol (google-cloud-bigquery).

It knows tables, load jobs and transactions, nothing of any domain. Every job names the
node's CMEK key. Jobs that must not run twice (staging a file, a transactional load
script) take a job id derived from their content: BigQuery refuses a second job with
the same id, so a retried Batch task re-attaches to the first one. Queries arrive in
DuckDB's dialect through `render` (workloads.warehouse.dialect).
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core.exceptions import Conflict
from google.cloud import bigquery

from workloads.contracts.catalogue import ALL_TABLES
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.objectstore.base import ObjectStore
from workloads.warehouse.base import LoadResult
from workloads.warehouse.dialect import translate

_JOB_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
CATALOGUE_NAMES = frozenset(t.name for t in ALL_TABLES)


def schema_fields(table: Table) -> list[bigquery.SchemaField]:
    return [bigquery.SchemaField.from_api_repr(c.bigquery_json()) for c in table.columns]


def _encryption(kms_key: str) -> Any:
    return bigquery.EncryptionConfiguration(kms_key_name=kms_key) if kms_key else None


def parquet_load_config(table: Table, kms_key: str = "") -> bigquery.LoadJobConfig:
    """`kms_key`: under the node's CMEK org policy every job that writes a table names it."""
    config = bigquery.LoadJobConfig(
        destination_encryption_configuration=_encryption(kms_key),
        source_format=bigquery.SourceFormat.PARQUET,
        schema=schema_fields(table),
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        create_disposition=bigquery.CreateDisposition.CREATE_NEVER,  # the stack declares it
    )
    options = bigquery.ParquetOptions()  # type: ignore[no-untyped-call]
    # Arrow list<...> columns become REPEATED fields instead of {list: [{element}]} records.
    options.enable_list_inference = True
    config.parquet_options = options
    return config


class BigQueryWarehouse:
    """A node's BigQuery dataset (the stack created it, its tables and its CMEK)."""

    def __init__(self, *, project: str, dataset: str, location: str | None = None,
                 client: Any = None, node: str = "", kms_key: str = "",
                 table_datasets: Mapping[str, str] | None = None) -> None:
        """`table_datasets`: table name -> 'project.dataset' for tables outside `dataset`
        (a node's domains each have their own dataset); jobs run in `project`."""
        if not project or not dataset:
            raise UserError("BigQuery needs a project and a dataset; fix: pass --project and "
                            "--dataset (the node stack's outputs)")
        self.project, self.dataset, self.location = project, dataset, location
        self.node = node or project
        self.kms_key = kms_key
        self.dialect = "bigquery"
        self._client = client
        self._staged: dict[str, str] = {}  # stage name -> scratch table
        self.table_datasets = dict(table_datasets or {})

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = bigquery.Client(project=self.project, location=self.location)
        return self._client

    def table_id(self, table: Table | str) -> str:
        name = table.name if isinstance(table, Table) else table
        return f"{self.table_datasets.get(name, f'{self.project}.{self.dataset}')}.{name}"

    def table_ref(self, table: Table | str) -> str:
        name = table.name if isinstance(table, Table) else table
        return f"`{self.table_id(self._staged.get(name, name))}`"

    def ensure_tables(self, tables: Iterable[Table]) -> None:
        for table in tables:
            bq_table = bigquery.Table(self.table_id(table), schema=schema_fields(table))
            if self.kms_key:  # the node's CMEK org policy refuses tables without a key
                bq_table.encryption_configuration = bigquery.EncryptionConfiguration(
                    kms_key_name=self.kms_key)
            if table.clustering:
                bq_table.clustering_fields = list(table.clustering)
            if table.partitioning is not None:  # the stack's partitioning, same source
                spec = table.partitioning.bigquery_json()
                if "rangePartitioning" in spec:
                    bq_table.range_partitioning = bigquery.RangePartitioning(
                        _properties=spec["rangePartitioning"])
                else:
                    bq_table.time_partitioning = bigquery.TimePartitioning.from_api_repr(
                        spec["timePartitioning"])
            self.client.create_table(bq_table, exists_ok=True)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter(None, _param_type(v), v) for v in (params or [])
            ],
            destination_encryption_configuration=_encryption(self.kms_key),  # result table
        )
        result: pa.Table = self.client.query(sql, job_config=config).to_arrow()
        return result

    def merge(
        self, table: Table, batches: pa.Table | Iterable[pa.RecordBatch], *, label: str = "",
        replace: bool = False,
    ) -> LoadResult:
        """Load into a scratch table, then one MERGE statement (atomic) on the primary key."""
        if not table.primary_key:
            raise ValueError(f"table {table.name} has no primary key to merge on")
        data = batches if isinstance(batches, pa.Table) else pa.Table.from_batches(
            list(batches), schema=table.arrow_schema())
        buffer = io.BytesIO()
        pq.write_table(data.select(table.column_names).cast(table.arrow_schema()), buffer)
        buffer.seek(0)
        scratch = self.table_id(f"_scratch_{table.name}_{uuid.uuid4().hex[:12]}")
        self.client.load_table_from_file(
            buffer, scratch, job_config=_scratch_config(table, self.kms_key)).result()
        try:
            job = self.client.query(merge_sql(self, table, f"`{scratch}`", replace=replace))
            job.result()
            stats = job.dml_stats
            inserted = int(stats.inserted_row_count) if stats else 0
            updated = int(stats.updated_row_count) if stats else 0
            deleted = int(stats.deleted_row_count) if stats else 0
        finally:
            self.client.delete_table(scratch, not_found_ok=True)
        return LoadResult(table.name, inserted, updated, data.num_rows - inserted - updated,
                          deleted)

    def render(self, sql: str) -> list[str]:
        return translate(sql, self.dialect, self.table_ref, CATALOGUE_NAMES | set(self._staged))

    def stage_parquet(
        self, store: ObjectStore, key: str, name: str, like: Table, job_tag: str
    ) -> None:
        """Load the object into a scratch table (CMEK, as every job) with a job id derived
        from job_tag: a retried task re-attaches to the first load."""
        scratch = f"{name}_{job_tag}"
        job_id = _JOB_ID_UNSAFE.sub("_", f"stage_{scratch}")
        config = _scratch_config(like, self.kms_key)
        try:
            job = self.client.load_table_from_uri(
                store.uri(key), self.table_id(scratch), job_id=job_id, job_config=config)
        except Conflict:
            job = self.client.get_job(job_id)
        job.result()
        self._staged[name] = scratch

    def unstage(self, name: str) -> None:
        scratch = self._staged.pop(name, None)
        if scratch is not None:
            self.client.delete_table(self.table_id(scratch), not_found_ok=True)

    def run_atomic(self, sql: str, *, job_id: str) -> None:
        """One multi-statement transaction, as one job with a deterministic id."""
        script = "BEGIN TRANSACTION;\n" + ";\n".join(self.render(sql)) + ";\nCOMMIT TRANSACTION;"
        safe_id = _JOB_ID_UNSAFE.sub("_", job_id)
        try:
            job = self.client.query(script, job_id=safe_id)
        except Conflict:  # a previous attempt of this task sent it already
            job = self.client.get_job(safe_id)
        job.result()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _scratch_config(table: Table, kms_key: str) -> bigquery.LoadJobConfig:
    config = parquet_load_config(table, kms_key)
    config.create_disposition = bigquery.CreateDisposition.CREATE_IF_NEEDED
    config.write_disposition = bigquery.WriteDisposition.WRITE_TRUNCATE
    return config


def _param_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    return "STRING"


def merge_sql(
    warehouse: BigQueryWarehouse, table: Table, source: str, *, replace: bool = False
) -> str:
    cols = table.column_names
    keys = table.primary_key
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    rest = [c for c in cols if c not in keys]
    changed = " OR ".join(
        f"TO_JSON_STRING(t.`{c}`) != TO_JSON_STRING(s.`{c}`)" for c in rest) or "FALSE"
    return (
        f"MERGE {warehouse.table_ref(table)} AS t USING {source} AS s ON {on} "
        f"WHEN MATCHED AND ({changed}) THEN UPDATE SET "
        + ", ".join(f"`{c}` = s.`{c}`" for c in rest)
        + " WHEN NOT MATCHED THEN INSERT (" + ", ".join(f"`{c}`" for c in cols)
        + ") VALUES (" + ", ".join(f"s.`{c}`" for c in cols) + ")"
        + (" WHEN NOT MATCHED BY SOURCE THEN DELETE" if replace else "")
    )
