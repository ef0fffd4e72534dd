"""The Batch job: one spec (contracts), google-cloud-batch's types, the node region only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import google.auth
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import batch_v1
from google.protobuf import json_format

from workloads.batch.job import build_job, create_job_request, job_from_json, job_json, submit
from workloads.cli import main
from workloads.contracts.batch import (
    IMAGE_NAME,
    TASK_MODULE,
    BatchTarget,
    JobSettings,
    TaskContext,
    TaskEnv,
    TaskRequest,
    default_job_id,
    job_spec,
    spec_json,
)
from workloads.contracts.errors import UserError
from workloads.contracts.stack_outputs import NodeOutputs

SHARDS = ("vcf/a-0000-of-0003.vcf.gz", "vcf/a-0001-of-0003.vcf.gz", "vcf/a-0002-of-0003.vcf.gz")
REQUEST = TaskRequest("vcf", SHARDS)


def test_the_real_stack_outputs_make_the_target(
    stack_outputs: dict[str, Any], target: BatchTarget[str]
) -> None:
    assert set(stack_outputs) == set(NodeOutputs.names())  # exports == the contract
    assert target.project == stack_outputs["project"] == "fed-node-us"
    assert target.instance_template == stack_outputs["batch_template"]
    assert target.instance_template.endswith("/global/instanceTemplates/confidential-batch-us")
    assert target.input_bucket == stack_outputs["buckets"]["raw-input"]
    assert target.bigquery_kms_key == stack_outputs["keys"]["bigquery"]
    assert target.image_uri == f"{stack_outputs['repository_url']}/{IMAGE_NAME}:v1"


def test_job_runs_on_the_confidential_template_in_the_node_region(
    stack_outputs: dict[str, Any], target: BatchTarget[str]
) -> None:
    job = build_job(target, REQUEST, settings=JobSettings(parallelism=2, labels={"run": "t"}))
    [instances] = job.allocation_policy.instances
    assert instances.instance_template == stack_outputs["batch_template"]
    assert not instances.policy.machine_type  # the template is the only machine definition
    assert list(job.allocation_policy.location.allowed_locations) == ["regions/us-central1"]
    assert job.allocation_policy.service_account.email == stack_outputs["batch_service_account"]
    [group] = job.task_groups
    assert (group.task_count, group.parallelism) == (3, 2)
    spec = group.task_spec
    assert spec.max_retry_count == 2 and spec.max_run_duration.total_seconds() == 4 * 3600
    env = dict(spec.environment.variables)
    assert env[TaskEnv.KIND] == "vcf" and json.loads(env[TaskEnv.ITEMS]) == list(SHARDS)
    # Every BigQuery job the task runs names the dataset's key (CMEK org policy).
    assert env[TaskEnv.KMS_KEY] == stack_outputs["keys"]["bigquery"]
    assert env[TaskEnv.WAREHOUSE] == "bigquery"
    container = spec.runnables[0].container
    assert container.image_uri == f"{stack_outputs['repository_url']}/{IMAGE_NAME}:v1"
    assert list(container.commands) == ["-m", TASK_MODULE]
    assert job.logs_policy.destination == batch_v1.LogsPolicy.Destination.CLOUD_LOGGING
    assert job.labels["run"] == "t" and job.labels["task"] == "vcf"


def test_the_spec_is_exactly_what_batch_v1_accepts_and_writes(target: BatchTarget[str]) -> None:
    text = spec_json(job_spec(target, REQUEST))
    # Parsing refuses unknown fields; writing back gives the same text: the spec is in
    # Batch's canonical REST spelling, so the stack's prop and the CLI's job are one.
    assert job_json(job_from_json(text)) == text
    data = json.loads(text)
    assert data["allocationPolicy"]["location"]["allowedLocations"] == ["regions/us-central1"]
    assert "confidentialInstanceConfig" not in text  # Batch would reject it in a policy
    with pytest.raises(json_format.ParseError, match="no field named"):
        job_from_json(json.dumps({**data, "confidential": True}))


def test_the_task_environment_round_trips(target: BatchTarget[str]) -> None:
    env = job_from_json(spec_json(job_spec(target, REQUEST))).task_groups[0].task_spec
    variables = {**env.environment.variables, TaskEnv.INDEX: "2"}
    context = TaskContext.from_environment(variables)
    assert context.item == SHARDS[2] and context.kind == "vcf"
    assert context.input_location == f"gs://{target.input_bucket}"
    assert context.project == target.project and context.warehouse == "bigquery"
    with pytest.raises(UserError, match="outside the 3 items"):
        TaskContext.from_environment({**variables, TaskEnv.INDEX: "3"})
    with pytest.raises(UserError, match=TaskEnv.ITEMS):
        TaskContext.from_environment({k: v for k, v in variables.items() if k != TaskEnv.ITEMS})


def test_location_outside_the_node_region_is_refused_before_any_call(
    target: BatchTarget[str],
) -> None:
    with mock.patch.object(batch_v1.BatchServiceClient, "create_job") as create:
        with pytest.raises(UserError, match="outside node region 'us-central1'"):
            build_job(target, REQUEST, location="europe-west4")
        with pytest.raises(UserError, match="outside node region"):
            create_job_request(target, batch_v1.Job(), "vcf-x", location="us-east1")
        create.assert_not_called()


def test_job_id_is_deterministic_and_valid(target: BatchTarget[str]) -> None:
    a, b = default_job_id(target, REQUEST), default_job_id(target, REQUEST)
    assert a == b and a.startswith("vcf-") and len(a) <= 63
    assert default_job_id(target, TaskRequest("vcf", SHARDS[:2])) != a
    assert default_job_id(target, TaskRequest("other", SHARDS)) != a
    with pytest.raises(UserError, match="job id"):
        create_job_request(target, batch_v1.Job(), "Bad_ID")
    with pytest.raises(UserError, match="task kind"):
        TaskRequest("VCF!", SHARDS)


def test_submit_sends_create_job_request_with_the_real_client(target: BatchTarget[str]) -> None:
    request = create_job_request(target, build_job(target, REQUEST), "vcf-123")
    client = batch_v1.BatchServiceClient(credentials=AnonymousCredentials())
    created = batch_v1.Job(name="projects/fed-node-us/locations/us-central1/jobs/vcf-123")
    with mock.patch.object(type(client), "create_job", return_value=created) as create:
        assert submit(request, client) == created
    sent = create.call_args.kwargs["request"]
    assert isinstance(sent, batch_v1.CreateJobRequest)
    assert sent.parent == "projects/fed-node-us/locations/us-central1"
    assert sent.job_id == "vcf-123" and sent.job.task_groups[0].task_count == 3


def test_cli_dry_run_prints_the_job(
    outputs_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["vcf", "batch", "dry-run", "--stack-outputs", str(outputs_file)]
    assert main([*args, "--shard", SHARDS[0], "--shard", SHARDS[1]]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["parent"] == "projects/fed-node-us/locations/us-central1"
    assert printed["job"]["taskGroups"][0]["taskCount"] == "2"


def test_cli_submit_calls_batch_and_refuses_other_regions(
    outputs_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["vcf", "batch", "submit", "--stack-outputs", str(outputs_file), "--shard", SHARDS[0]]
    created = batch_v1.Job(name="projects/fed-node-us/locations/us-central1/jobs/j", uid="u1")
    with mock.patch.object(google.auth, "default",
                           return_value=(AnonymousCredentials(), "fed-node-us")), \
            mock.patch.object(batch_v1.BatchServiceClient, "create_job",
                              return_value=created) as create:
        assert main([*args, "--location", "europe-west4"]) == 2
        assert "outside node region" in capsys.readouterr().err
        create.assert_not_called()
        assert main(args) == 0
    assert create.call_args.kwargs["request"].job.task_groups[0].task_count == 1
    assert "u1" in capsys.readouterr().out


def test_stack_outputs_missing_a_name_is_a_user_error(stack_outputs: dict[str, Any]) -> None:
    broken = {k: v for k, v in stack_outputs.items() if k != "batch_template"}
    with pytest.raises(UserError, match="batch_template"):
        BatchTarget.from_stack_outputs(broken)
    no_staging = {**stack_outputs, "buckets": {"raw-input": "b"}}
    with pytest.raises(UserError, match="staging"):
        BatchTarget.from_stack_outputs(no_staging)
