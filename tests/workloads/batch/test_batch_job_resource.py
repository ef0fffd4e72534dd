"""infra/batch_job.py: the dynamic provider's create/diff/delete against the real client."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pulumi
import pytest
from batch_helpers import target
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import batch_v1

from infra.batch_job import PROPS, BatchJobProvider, BatchTargetInputs, declare_batch_job
from workloads.batch.job import build_job, default_job_id, job_json

SHARDS = ["vcf/a.vcf.gz", "vcf/b.vcf.gz"]


def _client() -> batch_v1.BatchServiceClient:
    return batch_v1.BatchServiceClient(credentials=AnonymousCredentials())


def _props() -> dict[str, Any]:
    t = target()
    return {"project": t.project, "location": t.region,
            "jobId": default_job_id(t, SHARDS), "jobJson": job_json(build_job(t, SHARDS))}


def test_create_submits_the_job_from_its_props() -> None:
    props = _props()
    created = batch_v1.Job(name=f"projects/sovereign-us/locations/us-central1/jobs/"
                                f"{props['jobId']}", uid="uid-1")
    with mock.patch.object(batch_v1.BatchServiceClient, "create_job",
                           return_value=created) as create:
        result = BatchJobProvider(_client).create(props)
    request = create.call_args.kwargs["request"]
    assert request.parent == "projects/sovereign-us/locations/us-central1"
    assert request.job_id == props["jobId"]
    assert job_json(request.job) == props["jobJson"]
    assert result.id == created.name
    assert result.outs is not None and result.outs["uid"] == "uid-1"
    assert {k: result.outs[k] for k in PROPS} == props


def test_diff_replaces_on_any_change_and_is_quiet_otherwise() -> None:
    provider = BatchJobProvider(_client)
    props = _props()
    assert provider.diff("id", props, dict(props)).changes is False
    moved = {**props, "jobJson": json.dumps({**json.loads(props["jobJson"]), "labels": {}})}
    diff = provider.diff("id", props, moved)
    assert diff.changes and diff.replaces == ["jobJson"] and diff.delete_before_replace


def test_delete_deletes_the_job_and_tolerates_a_purged_one() -> None:
    provider = BatchJobProvider(_client)
    name = "projects/sovereign-us/locations/us-central1/jobs/vcf-1"
    with mock.patch.object(batch_v1.BatchServiceClient, "delete_job") as delete:
        provider.delete(name, _props())
    delete.assert_called_once_with(name=name)
    delete.return_value.result.assert_called_once()
    with mock.patch.object(batch_v1.BatchServiceClient, "delete_job",
                           side_effect=NotFound("gone")):
        provider.delete(name, _props())


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.inputs: dict[str, Any] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.inputs[args.name] = args.inputs
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


@pytest.fixture
def mocks() -> _Mocks:
    m = _Mocks()
    pulumi.runtime.set_mocks(m, preview=False)
    return m


@pulumi.runtime.test
def test_declare_batch_job_props_come_from_the_same_builder(mocks: _Mocks) -> Any:
    t = target()
    inputs = BatchTargetInputs(
        project=pulumi.Output.from_input(t.project), region=t.region,
        instance_template=pulumi.Output.from_input(t.instance_template),
        service_account=t.service_account, input_bucket=t.input_bucket,
        staging_bucket=t.staging_bucket, dataset=t.dataset, image_uri=t.image_uri,
        bigquery_kms_key=t.bigquery_kms_key)
    job = declare_batch_job("vcf-job", inputs, SHARDS)

    def check(values: list[Any]) -> None:
        props = mocks.inputs["vcf-job"]
        assert props["jobJson"] == job_json(build_job(t, SHARDS))
        assert props["jobId"] == default_job_id(t, SHARDS)
        assert (props["project"], props["location"]) == ("sovereign-us", "us-central1")

    return pulumi.Output.all(job.urn, job.id).apply(check)
