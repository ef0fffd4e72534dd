"""The BigQuery load: the request objects google-cloud-bigquery would send."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pyarrow as pa
import sqlglot
from google.api_core.exceptions import Conflict
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from workloads.contracts.tables.genomics import PROCESSED_VARIANTS, VARIANT_FEATURES
from workloads.objectstore.folder import FolderStore
from workloads.vcf.features import derive_features, feature_mismatches
from workloads.vcf.load import load_staged
from workloads.vcf.pipeline import staged_keys
from workloads.vcf.synth import PatientGenotypes
from workloads.warehouse.bigquery_warehouse import BigQueryWarehouse, parquet_load_config

FP = "ab" * 32
KEY = "projects/sovereign-us/locations/us-central1/keyRings/sovereign-us/cryptoKeys/bigquery"


def test_load_config_carries_the_explicit_schema_and_parquet_options() -> None:
    api = parquet_load_config(PROCESSED_VARIANTS).to_api_repr()["load"]
    assert api["sourceFormat"] == "PARQUET"
    assert api["parquetOptions"]["enableListInference"] is True
    assert api["writeDisposition"] == "WRITE_APPEND"
    assert api["createDisposition"] == "CREATE_NEVER"
    fields = api["schema"]["fields"]
    assert fields == json.loads(PROCESSED_VARIANTS.bigquery_json())  # one definition
    call = next(f for f in fields if f["name"] == "call")
    assert call["mode"] == "REPEATED" and call["type"] == "RECORD"
    genotype = next(f for f in call["fields"] if f["name"] == "genotype")
    assert (genotype["type"], genotype["mode"]) == ("INTEGER", "REPEATED")


def test_queries_name_the_node_key_and_no_key_means_none() -> None:
    warehouse, _ = _warehouse()
    job = mock.Mock()
    with mock.patch.object(bigquery.Client, "query", return_value=job) as query:
        warehouse.query("SELECT 1")
    api = query.call_args.kwargs["job_config"].to_api_repr()["query"]
    assert api["destinationEncryptionConfiguration"] == {"kmsKeyName": KEY}
    assert "destinationEncryptionConfiguration" not in parquet_load_config(
        PROCESSED_VARIANTS).to_api_repr()["load"]


def _warehouse() -> tuple[BigQueryWarehouse, bigquery.Client]:
    client = bigquery.Client(project="sovereign-us", credentials=AnonymousCredentials())
    return BigQueryWarehouse(project="sovereign-us", dataset="hospital_data",
                             client=client, kms_key=KEY), client


def _bigquery_statements(sql: str) -> list[sqlglot.exp.Expression]:
    """Parse as BigQuery SQL, failing on anything the parser does not accept."""
    trees = sqlglot.parse(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)
    assert trees and all(t is not None for t in trees)
    return [t for t in trees if t is not None]


def test_every_statement_of_a_vcf_load_and_derive_parses_as_bigquery(tmp_path: Path) -> None:
    """The VCF load, its overlap check and the features, as the BigQuery backend sends them:
    each statement is parsed as BigQuery SQL, names only the node's dataset and runs
    under deterministic job ids (a retried task re-attaches instead of loading twice)."""
    warehouse, _ = _warehouse()
    staging = FolderStore(tmp_path)  # only the manifest is read; BigQuery reads gs:// URIs
    staging.write_bytes(staged_keys("f" * 64)["manifest"], json.dumps(
        {"fingerprint": FP, "source": "gs://in/it's.vcf.gz", "variant_rows": 3}).encode())
    sent: list[tuple[str, str | None]] = []

    def query(sql: str, job_config: object = None, job_id: str | None = None) -> mock.Mock:
        sent.append((sql, job_id))
        job = mock.Mock()
        job.dml_stats = None
        if sql.startswith("SELECT COUNT(*) AS n"):
            job.to_arrow.return_value = pa.table({"n": [0]})
        elif "SELECT patient_id, variant_brca1" in sql:
            job.to_arrow.return_value = pa.table({
                "patient_id": ["US-0001"], "variant_brca1": [0], "variant_tp53": [1],
                "variant_apoe4": [2]})
        elif "AS variant_brca1" in sql:
            job.to_arrow.return_value = VARIANT_FEATURES.arrow_schema().empty_table()
        else:
            job.to_arrow.return_value = pa.table({"x": pa.array([], pa.int64())})
        return job

    with mock.patch.object(bigquery.Client, "query", side_effect=query), \
            mock.patch.object(bigquery.Client, "create_table"), \
            mock.patch.object(bigquery.Client, "load_table_from_uri") as load, \
            mock.patch.object(bigquery.Client, "delete_table") as delete, \
            mock.patch.object(bigquery.Client, "load_table_from_file"):
        assert PatientGenotypes.from_warehouse(warehouse).ids == ["US-0001"]  # the task's
        outcome = load_staged(warehouse, staging, "f" * 64)
        derive_features(warehouse)
        feature_mismatches(warehouse)
    assert outcome.status == "loaded"
    staged = [c.args[1] for c in load.call_args_list]
    assert staged == [f"sovereign-us.hospital_data._staged_variants_{FP}",
                      f"sovereign-us.hospital_data._staged_apoe_{FP}"]
    assert all(c.kwargs["job_id"].startswith("stage__staged_") for c in load.call_args_list)
    dropped = [c.args[0] for c in delete.call_args_list]
    assert sorted(t for t in dropped if "_staged_" in t) == sorted(staged)  # dropped
    assert len(sent) >= 5
    for sql, _ in sent:
        for tree in _bigquery_statements(sql):
            ctes = {cte.alias for cte in tree.find_all(sqlglot.exp.CTE)}
            for table in tree.find_all(sqlglot.exp.Table):
                if table.name not in ctes:
                    assert (table.catalog, table.db) == ("sovereign-us", "hospital_data"), sql
    script, job_id = next((q, j) for q, j in sent if q.startswith("BEGIN TRANSACTION"))
    assert job_id == f"vcf_load_{FP}" and script.rstrip().endswith("COMMIT TRANSACTION;")
    assert "/it\\'s.vcf.gz'" in script  # BigQuery quoting of the source name
    # A retried task: BigQuery answers 409 for the same job id; we wait for the first job.
    first = mock.Mock()
    with mock.patch.object(bigquery.Client, "query", side_effect=Conflict("Already Exists")), \
            mock.patch.object(bigquery.Client, "get_job", return_value=first) as get:
        warehouse.run_atomic("SELECT 1", job_id=f"vcf_load_{FP}")
    get.assert_called_once_with(f"vcf_load_{FP}")
    first.result.assert_called_once()


def test_stage_load_names_the_key_and_a_retry_reattaches(tmp_path: Path) -> None:
    warehouse, client = _warehouse()
    store = FolderStore(tmp_path)
    job = mock.Mock()
    with mock.patch.object(bigquery.Client, "load_table_from_uri", return_value=job) as load:
        warehouse.stage_parquet(store, "x.parquet", "_staged_variants", PROCESSED_VARIANTS, FP)
    args, kwargs = load.call_args
    assert args == (str(tmp_path / "x.parquet"),
                    f"sovereign-us.hospital_data._staged_variants_{FP}")
    # The node's CMEK org policy refuses BigQuery jobs that name no key.
    assert kwargs["job_config"].to_api_repr()["load"]["destinationEncryptionConfiguration"] == {
        "kmsKeyName": KEY}
    job.result.assert_called_once()
    first = mock.Mock()
    with mock.patch.object(bigquery.Client, "load_table_from_uri",
                           side_effect=Conflict("Already Exists: Job")), \
            mock.patch.object(bigquery.Client, "get_job", return_value=first) as get:
        warehouse.stage_parquet(store, "x.parquet", "_staged_variants", PROCESSED_VARIANTS, FP)
    get.assert_called_once_with(kwargs["job_id"])
    first.result.assert_called_once()
    assert client is warehouse.client
