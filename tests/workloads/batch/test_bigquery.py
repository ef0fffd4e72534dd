"""The BigQuery load: the request objects google-cloud-bigquery would send."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from google.api_core.exceptions import Conflict
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PROCESSED_VARIANTS, SAMPLE_APOE, VCF_LOADS
from workloads.warehouse.bigquery_warehouse import (
    BigQueryWarehouse,
    ledger_sql,
    load_job_id,
    parquet_load_config,
)

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


def test_job_id_is_deterministic_per_file_and_table() -> None:
    assert load_job_id(FP, PROCESSED_VARIANTS) == load_job_id(FP, "processed_variants")
    assert load_job_id(FP, PROCESSED_VARIANTS) != load_job_id(FP, SAMPLE_APOE)
    assert load_job_id(FP, PROCESSED_VARIANTS) != load_job_id("cd" * 32, PROCESSED_VARIANTS)
    assert len(load_job_id(FP, PROCESSED_VARIANTS)) <= 1024
    with pytest.raises(UserError):
        load_job_id("not-a-digest", PROCESSED_VARIANTS)


def _warehouse() -> tuple[BigQueryWarehouse, bigquery.Client]:
    client = bigquery.Client(project="sovereign-us", credentials=AnonymousCredentials())
    return BigQueryWarehouse(project="sovereign-us", dataset="hospital_data",
                             client=client, kms_key=KEY), client


def test_load_sends_the_job_id_and_a_retry_reattaches() -> None:
    warehouse, client = _warehouse()
    job = mock.Mock()
    with mock.patch.object(bigquery.Client, "load_table_from_uri", return_value=job) as load:
        warehouse.load_parquet("gs://b/x.parquet", PROCESSED_VARIANTS, FP)
    args, kwargs = load.call_args
    assert args == ("gs://b/x.parquet", "sovereign-us.hospital_data.processed_variants")
    assert kwargs["job_id"] == load_job_id(FP, PROCESSED_VARIANTS)
    assert kwargs["job_config"].to_api_repr() == parquet_load_config(
        PROCESSED_VARIANTS, KEY).to_api_repr()
    # The node's CMEK org policy refuses BigQuery jobs that name no key.
    assert kwargs["job_config"].to_api_repr()["load"]["destinationEncryptionConfiguration"] == {
        "kmsKeyName": KEY}
    job.result.assert_called_once()
    # The retried task: BigQuery answers 409 for the same job id; we wait for the first job.
    first = mock.Mock()
    with mock.patch.object(bigquery.Client, "load_table_from_uri",
                           side_effect=Conflict("Already Exists: Job")), \
            mock.patch.object(bigquery.Client, "get_job", return_value=first) as get:
        warehouse.load_parquet("gs://b/x.parquet", PROCESSED_VARIANTS, FP)
    get.assert_called_once_with(load_job_id(FP, PROCESSED_VARIANTS))
    first.result.assert_called_once()
    assert client is warehouse.client


def test_ledger_merge_only_inserts_unknown_fingerprints() -> None:
    warehouse, _ = _warehouse()
    sql = ledger_sql(warehouse)
    assert sql.startswith(f"MERGE `sovereign-us.hospital_data.{VCF_LOADS.name}`")
    assert "WHEN NOT MATCHED THEN INSERT" in sql and "WHEN MATCHED" not in sql
