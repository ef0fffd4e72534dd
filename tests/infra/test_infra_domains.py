"""Adding a domain edits no infra code: a fake domain added to the catalogue (only) gets its
own dataset with the node's defaults, its tables with their keys, its external Parquet
tables over the node bucket and its views, in the captured stack and in its outputs."""

from __future__ import annotations

import json

import pytest
from infra_testkit import HUB_ROSTER, WORKER_ON, of_type

from infra.capture import CapturedStack, capture
from workloads.contracts import catalogue
from workloads.contracts.federation_service import LEDGER_DATASET
from workloads.contracts.schema import (
    Column,
    Domain,
    ExternalParquet,
    ForeignKey,
    Partitioning,
    Table,
    View,
)

DEVICES = Table(
    "test_devices",
    "Robots of the node.",
    (Column("device_id", "STRING", "REQUIRED", role="identifier"),
     Column("model", "STRING")),
    primary_key=("device_id",),
)
SESSIONS = Table(
    "test_sessions",
    "Surgical sessions.",
    (Column("session_id", "STRING", "REQUIRED", role="identifier"),
     Column("device_id", "STRING", "REQUIRED"),
     Column("started_at", "TIMESTAMP", "REQUIRED", role="timestamp")),
    primary_key=("session_id",),
    foreign_keys=(ForeignKey(("device_id",), "test_devices", ("device_id",)),),
    partitioning=Partitioning("started_at", "DAY"),
)
TELEMETRY = Table(
    "test_telemetry",
    "Joint torques, as Parquet files in the results bucket.",
    (Column("session_id", "STRING", "REQUIRED"), Column("torque", "FLOAT", unit="N.m")),
    external=ExternalParquet("results", "robotics/telemetry/", ("session_id",)),
)
PER_DEVICE = View(
    "test_sessions_per_device",
    "Sessions per device.",
    "SELECT device_id, COUNT(*) AS n FROM {dataset}.test_sessions GROUP BY device_id",
)
FAKE = Domain(
    name="testrobotics",
    dataset="test_robotics",
    description="A domain that exists only in this test.",
    tables=(DEVICES, SESSIONS, TELEMETRY),
    views=(PER_DEVICE,),
)


@pytest.fixture(scope="module")
def stack() -> CapturedStack:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(catalogue, "DOMAINS", (*catalogue.DOMAINS, FAKE))
        # With the federation worker deployed, so the attested reader reaches the new domain.
        return capture("us", WORKER_ON, references=HUB_ROSTER)


def test_the_domain_gets_its_own_dataset_with_the_node_defaults(stack: CapturedStack) -> None:
    datasets = {d.inputs["datasetId"]: d for d in of_type(stack.resources, ":Dataset")}
    # The domains' datasets, and the federation guard's ledger (LEDGER_DATASET).
    assert set(datasets) == {d.dataset for d in (*catalogue.DOMAINS, FAKE)} | {LEDGER_DATASET}
    ours, genomics = datasets["test_robotics"], datasets["hospital_data"]
    for same in ("location", "defaultEncryptionConfiguration", "deleteContentsOnDestroy",
                 "project"):
        assert ours.inputs[same] == genomics.inputs[same], same
    assert ours.inputs["labels"] == {"domain": "testrobotics"}
    # The node's identities reach it as they reach every domain's dataset.
    policies = {m.inputs["datasetId"]: json.loads(m.inputs["policyData"])
                for m in of_type(stack.resources, ":DatasetIamPolicy")}
    roles = {b["role"] for b in policies["test_robotics"]["bindings"]}
    assert roles == {"roles/bigquery.dataEditor", "roles/bigquery.dataViewer"}
    assert policies["test_robotics"] == policies["hospital_data"]
    assert stack.outputs["datasets"] == {
        **{d.name: d.dataset for d in catalogue.DOMAINS}, "testrobotics": "test_robotics"
    }


def _tables(stack: CapturedStack) -> dict[str, dict[str, object]]:
    return {t.inputs["tableId"]: t.inputs for t in of_type(stack.resources, ":Table")
            if t.inputs["datasetId"] == "test_robotics"}


def test_tables_carry_their_keys_as_unenforced_constraints(stack: CapturedStack) -> None:
    tables = _tables(stack)
    devices, sessions = tables["test_devices"], tables["test_sessions"]
    assert devices["tableConstraints"] == {"primaryKey": {"columns": ["device_id"]}}
    (fk,) = sessions["tableConstraints"]["foreignKeys"]  # type: ignore[index]
    assert fk["referencedTable"] == {"projectId": "fed-node-us", "datasetId": "test_robotics",
                                     "tableId": "test_devices"}
    assert fk["columnReferences"] == {"referencingColumn": "device_id",
                                      "referencedColumn": "device_id"}
    assert sessions["timePartitioning"] == {"type": "DAY", "field": "started_at"}
    for table in (devices, sessions):
        assert table["deletionProtection"] is True
        assert table["encryptionConfiguration"] == {"kmsKeyName": stack.outputs["keys"]["bigquery"]}


def test_external_parquet_is_an_external_table_over_the_node_bucket(stack: CapturedStack) -> None:
    telemetry = _tables(stack)["test_telemetry"]
    # The Hive key is a directory, not a column of the files: out of the schema.
    assert [c["name"] for c in json.loads(telemetry["schema"])] == ["torque"]
    external = telemetry["externalDataConfiguration"]
    bucket = stack.outputs["buckets"]["results"]
    assert external == {
        "sourceFormat": "PARQUET",
        "sourceUris": [f"gs://{bucket}/robotics/telemetry/*"],
        "autodetect": False,
        "hivePartitioningOptions": {
            "mode": "CUSTOM",
            "sourceUriPrefix": f"gs://{bucket}/robotics/telemetry/{{session_id:STRING}}",
            "requirePartitionFilter": False,
        },
    }
    # BigQuery stores none of its bytes: they stay in the bucket, under the bucket's CMEK.
    assert "encryptionConfiguration" not in _tables(stack)["test_telemetry"]


def test_views_are_bigquery_views_of_the_domain_dataset(stack: CapturedStack) -> None:
    view = _tables(stack)["test_sessions_per_device"]["view"]
    assert view == {
        "query": "SELECT device_id, COUNT(*) AS n FROM `fed-node-us.test_robotics`."
                 "test_sessions GROUP BY device_id",
        "useLegacySql": False,
    }
    assert "test_sessions_per_device" in stack.outputs["tables"]


def test_the_committed_catalogue_is_untouched_by_the_test(stack: CapturedStack) -> None:
    assert FAKE not in catalogue.DOMAINS


def test_a_hive_key_must_be_a_column_of_the_table() -> None:
    with pytest.raises(ValueError, match="'day' is not a column"):
        Table("t", "", (Column("x", "FLOAT"),), external=ExternalParquet("results", "p/", ("day",)))
