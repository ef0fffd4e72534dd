"""The Batch job built with google-cloud-batch's types; refused outside the node region."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import google.auth
import pytest
from batch_helpers import STACK_OUTPUTS, target
from google.auth.credentials import AnonymousCredentials
from google.cloud import batch_v1

from workloads.batch.job import (
    ENV_SHARDS,
    JobSettings,
    build_job,
    create_job_request,
    default_job_id,
    job_from_json,
    job_json,
    submit,
)
from workloads.batch.target import BatchTarget
from workloads.cli import main
from workloads.contracts.errors import UserError

SHARDS = ["vcf/a-0000-of-0003.vcf.gz", "vcf/a-0001-of-0003.vcf.gz", "vcf/a-0002-of-0003.vcf.gz"]


def test_job_runs_on_the_confidential_template_in_the_node_region() -> None:
    job = build_job(target(), SHARDS, settings=JobSettings(parallelism=2, labels={"run": "t"}))
    [instances] = job.allocation_policy.instances
    assert instances.instance_template == STACK_OUTPUTS["batch_template"]
    assert not instances.policy.machine_type  # the template is the only machine definition
    assert list(job.allocation_policy.location.allowed_locations) == ["regions/us-central1"]
    assert job.allocation_policy.service_account.email == STACK_OUTPUTS["batch_service_account"]
    [group] = job.task_groups
    assert (group.task_count, group.parallelism) == (3, 2)
    spec = group.task_spec
    assert spec.max_retry_count == 2 and spec.max_run_duration.total_seconds() == 4 * 3600
    assert json.loads(spec.environment.variables[ENV_SHARDS]) == SHARDS
    # Every BigQuery job the task runs names the dataset's key (CMEK org policy).
    assert spec.environment.variables["VCF_BQ_KMS_KEY"] == STACK_OUTPUTS["keys"]["bigquery"]
    container = spec.runnables[0].container
    assert container.image_uri == STACK_OUTPUTS["repository_url"] + "/vcf-processor:v1"
    assert list(container.commands)[:2] == ["-m", "workloads.batch.task"]
    assert job.logs_policy.destination == batch_v1.LogsPolicy.Destination.CLOUD_LOGGING
    assert job.labels["run"] == "t" and job.labels["workload"] == "vcf-pipeline"


def test_job_json_is_the_rest_spelling_and_round_trips() -> None:
    job = build_job(target(), SHARDS)
    text = job_json(job)
    data = json.loads(text)
    # The props the policy pack reads.
    assert data["allocationPolicy"]["instances"][0]["instanceTemplate"].endswith(
        "instanceTemplates/confidential-batch-us")
    assert data["allocationPolicy"]["location"]["allowedLocations"] == ["regions/us-central1"]
    assert data["logsPolicy"]["destination"] == "CLOUD_LOGGING"
    assert "confidentialInstanceConfig" not in text  # Batch would reject it in a policy
    assert job_from_json(text) == job


def test_location_outside_the_node_region_is_refused_before_any_call() -> None:
    with mock.patch.object(batch_v1.BatchServiceClient, "create_job") as create:
        with pytest.raises(UserError, match="outside node region 'us-central1'"):
            build_job(target(), SHARDS, location="europe-west4")
        with pytest.raises(UserError, match="outside node region"):
            create_job_request(target(), batch_v1.Job(), "vcf-x", location="us-east1")
        create.assert_not_called()


def test_job_id_is_deterministic_and_valid() -> None:
    a, b = default_job_id(target(), SHARDS), default_job_id(target(), SHARDS)
    assert a == b and a.startswith("vcf-") and len(a) <= 63
    assert default_job_id(target(), SHARDS[:2]) != a
    with pytest.raises(UserError, match="job id"):
        create_job_request(target(), batch_v1.Job(), "Bad_ID")


def test_submit_sends_create_job_request_with_the_real_client() -> None:
    request = create_job_request(target(), build_job(target(), SHARDS), "vcf-123")
    client = batch_v1.BatchServiceClient(credentials=AnonymousCredentials())
    created = batch_v1.Job(name="projects/sovereign-us/locations/us-central1/jobs/vcf-123")
    with mock.patch.object(type(client), "create_job", return_value=created) as create:
        assert submit(request, client) == created
    sent = create.call_args.kwargs["request"]
    assert isinstance(sent, batch_v1.CreateJobRequest)
    assert sent.parent == "projects/sovereign-us/locations/us-central1"
    assert sent.job_id == "vcf-123" and sent.job.task_groups[0].task_count == 3


def _outputs_file(tmp_path: Path) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(STACK_OUTPUTS))
    return path


def test_cli_dry_run_prints_the_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["vcf", "batch", "dry-run", "--stack-outputs", str(_outputs_file(tmp_path))]
    assert main([*args, "--shard", SHARDS[0], "--shard", SHARDS[1]]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["parent"] == "projects/sovereign-us/locations/us-central1"
    assert printed["job"]["taskGroups"][0]["taskCount"] == "2"


def test_cli_submit_calls_batch_and_refuses_other_regions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["vcf", "batch", "submit", "--stack-outputs", str(_outputs_file(tmp_path)),
            "--shard", SHARDS[0]]
    created = batch_v1.Job(name="projects/sovereign-us/locations/us-central1/jobs/j", uid="u1")
    with mock.patch.object(google.auth, "default",
                           return_value=(AnonymousCredentials(), "sovereign-us")), \
            mock.patch.object(batch_v1.BatchServiceClient, "create_job",
                              return_value=created) as create:
        assert main([*args, "--location", "europe-west4"]) == 2
        assert "outside node region" in capsys.readouterr().err
        create.assert_not_called()
        assert main(args) == 0
    assert create.call_args.kwargs["request"].job.task_groups[0].task_count == 1
    assert "u1" in capsys.readouterr().out


def test_stack_outputs_missing_a_name_is_a_user_error() -> None:
    broken = {k: v for k, v in STACK_OUTPUTS.items() if k != "batch_template"}
    with pytest.raises(UserError, match="batch_template"):
        BatchTarget.from_stack_outputs(broken)
