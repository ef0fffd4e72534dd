"""The BigQuery backend of the Warehouse protocol (google-cloud-bigquery).

Loads go through load jobs with the explicit schema from workloads.schema and a job id
derived from the content: BigQuery refuses a second job with the same id, so a retried
Batch task re-attaches to the first load instead of loading the file twice. The
fingerprint ledger (vcf_loads) is written last, by a MERGE with its own deterministic
job id, and checked first.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core.exceptions import Conflict
from google.cloud import bigquery

from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.contracts.tables.genomics import (
    PATIENT_GENOMIC_DATA,
    PROCESSED_VARIANTS,
    SAMPLE_APOE,
    VCF_LOADS,
)
from workloads.objectstore.base import ObjectStore
from workloads.warehouse.base import LoadResult

_JOB_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def schema_fields(table: Table) -> list[bigquery.SchemaField]:
    return [bigquery.SchemaField.from_api_repr(c.bigquery_json()) for c in table.columns]


def load_job_id(fingerprint: str, table: Table | str) -> str:
    """One id per (file content, table): the same file can never be loaded twice."""
    name = table.name if isinstance(table, Table) else table
    if not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
        raise UserError(f"fingerprint {fingerprint!r} is not a sha256 hex digest")
    return _JOB_ID_UNSAFE.sub("_", f"vcf_load_{name}_{fingerprint}")


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
                 client: Any = None, node: str = "", kms_key: str = "") -> None:
        if not project or not dataset:
            raise UserError("BigQuery needs a project and a dataset; fix: pass --project and "
                            "--dataset (the node stack's outputs)")
        self.project, self.dataset, self.location = project, dataset, location
        self.node = node or project
        self.kms_key = kms_key
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = bigquery.Client(project=self.project, location=self.location)
        return self._client

    def table_id(self, table: Table | str) -> str:
        name = table.name if isinstance(table, Table) else table
        return f"{self.project}.{self.dataset}.{name}"

    def table_ref(self, table: Table | str) -> str:
        return f"`{self.table_id(table)}`"

    def ensure_tables(self, tables: Iterable[Table]) -> None:
        for table in tables:
            bq_table = bigquery.Table(self.table_id(table), schema=schema_fields(table))
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
        self, table: Table, batches: pa.Table | Iterable[pa.RecordBatch], *, label: str = ""
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
            job = self.client.query(merge_sql(self, table, f"`{scratch}`"))
            job.result()
            stats = job.dml_stats
            inserted = int(stats.inserted_row_count) if stats else 0
            updated = int(stats.updated_row_count) if stats else 0
        finally:
            self.client.delete_table(scratch, not_found_ok=True)
        return LoadResult(table.name, inserted, updated, data.num_rows - inserted - updated)

    def patient_ids(self) -> list[str]:
        rows = self.query(f"SELECT patient_id FROM {self.table_ref(PATIENT_GENOMIC_DATA)}")
        return [str(v) for v in rows.column("patient_id").to_pylist()]

    def is_loaded(self, fingerprint: str) -> bool:
        found = self.query(
            f"SELECT count(*) AS n FROM {self.table_ref(VCF_LOADS)} WHERE fingerprint = ?",
            [fingerprint])
        return bool(found.column("n")[0].as_py())

    def load_parquet(self, uri: str, table: Table, fingerprint: str) -> Any:
        """Start (or re-attach to) the one load job of this file into this table."""
        job_id = load_job_id(fingerprint, table)
        try:
            job = self.client.load_table_from_uri(
                uri, self.table_id(table), job_id=job_id,
                job_config=parquet_load_config(table, self.kms_key))
        except Conflict:  # a previous attempt of this task already created the job
            job = self.client.get_job(job_id)
        job.result()
        return job

    def load_staged_vcf(self, staging: ObjectStore, fingerprint: str) -> bool:
        """Load a staged shard; False if the ledger says it is already in."""
        from workloads.vcf.pipeline import read_manifest, staged_keys

        if self.is_loaded(fingerprint):
            return False
        manifest = read_manifest(staging, fingerprint)
        keys = staged_keys(fingerprint)
        self.load_parquet(staging.uri(keys["variants"]), PROCESSED_VARIANTS, fingerprint)
        self.load_parquet(staging.uri(keys["apoe"]), SAMPLE_APOE, fingerprint)
        ledger_job_id = load_job_id(fingerprint, VCF_LOADS)
        config = bigquery.QueryJobConfig(query_parameters=[
            bigquery.ScalarQueryParameter("fp", "STRING", fingerprint),
            bigquery.ScalarQueryParameter("source", "STRING", str(manifest["source"])),
            bigquery.ScalarQueryParameter("rows", "INT64", int(str(manifest["variant_rows"]))),
        ])
        try:
            job = self.client.query(ledger_sql(self), job_config=config, job_id=ledger_job_id)
        except Conflict:
            job = self.client.get_job(ledger_job_id)
        job.result()
        return True

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


def merge_sql(warehouse: BigQueryWarehouse, table: Table, source: str) -> str:
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
    )


def ledger_sql(warehouse: BigQueryWarehouse) -> str:
    return (
        f"MERGE {warehouse.table_ref(VCF_LOADS)} AS t "
        f"USING (SELECT @fp AS fingerprint) AS s ON t.fingerprint = s.fingerprint "
        f"WHEN NOT MATCHED THEN INSERT (fingerprint, source, variant_rows, loaded_at) "
        f"VALUES (@fp, @source, @rows, CURRENT_TIMESTAMP())"
    )
