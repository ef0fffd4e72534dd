"""infra/batch_job.py: the dynamic provider's create/diff/delete against the real client."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pulumi
import pytest
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import batch_v1

from infra.batch_job import PROPS, BatchJobProvider, declare_batch_job
from workloads.batch.job import job_json
from workloads.contracts.batch import (
    BatchTarget,
    TaskRequest,
    default_job_id,
    job_spec,
    spec_json,
)

REQUEST = TaskRequest("vcf", ("vcf/a.vcf.gz", "vcf/b.vcf.gz"))


def _client() -> batch_v1.BatchServiceClient:
    return batch_v1.BatchServiceClient(credentials=AnonymousCredentials())


def _props(t: BatchTarget[str]) -> dict[str, Any]:
    return {"project": t.project, "location": t.region,
            "jobId": default_job_id(t, REQUEST), "jobJson": spec_json(job_spec(t, REQUEST))}


def test_create_submits_the_job_from_its_props(target: BatchTarget[str]) -> None:
    props = _props(target)
    created = batch_v1.Job(name=f"projects/fed-node-us/locations/us-central1/jobs/"
                                f"{props['jobId']}", uid="uid-1")
    with mock.patch.object(batch_v1.BatchServiceClient, "create_job",
                           return_value=created) as create:
        result = BatchJobProvider(_client).create(props)
    request = create.call_args.kwargs["request"]
    assert request.parent == "projects/fed-node-us/locations/us-central1"
    assert request.job_id == props["jobId"]
    assert job_json(request.job) == props["jobJson"]
    assert result.id == created.name
    assert result.outs is not None and result.outs["uid"] == "uid-1"
    assert {k: result.outs[k] for k in PROPS} == props


def test_diff_replaces_on_any_change_and_is_quiet_otherwise(target: BatchTarget[str]) -> None:
    provider = BatchJobProvider(_client)
    props = _props(target)
    assert provider.diff("id", props, dict(props)).changes is False
    moved = {**props, "jobJson": json.dumps({**json.loads(props["jobJson"]), "labels": {}})}
    diff = provider.diff("id", props, moved)
    assert diff.changes and diff.replaces == ["jobJson"] and diff.delete_before_replace


def test_delete_deletes_the_job_and_tolerates_a_purged_one(target: BatchTarget[str]) -> None:
    provider = BatchJobProvider(_client)
    name = "projects/fed-node-us/locations/us-central1/jobs/vcf-1"
    with mock.patch.object(batch_v1.BatchServiceClient, "delete_job") as delete:
        provider.delete(name, _props(target))
    delete.assert_called_once_with(name=name)
    delete.return_value.result.assert_called_once()
    with mock.patch.object(batch_v1.BatchServiceClient, "delete_job",
                           side_effect=NotFound("gone")):
        provider.delete(name, _props(target))


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
def test_declare_batch_job_props_come_from_the_same_builder(
    target: BatchTarget[str], mocks: _Mocks  # target first: capturing it installs other mocks
) -> Any:
    # One type for both sides: here some fields are Outputs, as in the node stack.
    inputs = BatchTarget[pulumi.Input[str]](**{
        **target.values(),
        "project": pulumi.Output.from_input(target.project),
        "instance_template": pulumi.Output.from_input(target.instance_template),
    })
    job = declare_batch_job("vcf-job", inputs, REQUEST)

    def check(values: list[Any]) -> None:
        props = mocks.inputs["vcf-job"]
        assert props["jobJson"] == spec_json(job_spec(target, REQUEST))
        assert props["jobId"] == default_job_id(target, REQUEST)
        assert (props["project"], props["location"]) == ("fed-node-us", "us-central1")

    return pulumi.Output.all(job.urn, job.id).apply(check)
