"""The Confidential Batch job for the VCF pipeline, built from google-cloud-batch's types.

Batch's InstancePolicy has no confidential-computing field, so the job names the node's
Confidential VM instance template and nothing else about the machine (a template makes
Batch ignore the job's own network/policy block). Tasks find their shard through
BATCH_TASK_INDEX in the shard list the job carries. One builder serves the CLI
(dry run, submit) and the Pulumi dynamic resource in infra/batch_job.py.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.cloud import batch_v1

from workloads.batch.target import BatchTarget
from workloads.contracts.errors import UserError

TASK_MODULE = "workloads.batch.task"
JOB_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
ENV_INPUT, ENV_STAGING, ENV_SHARDS = "VCF_INPUT", "VCF_STAGING", "VCF_SHARDS"
ENV_PROJECT, ENV_DATASET, ENV_KMS_KEY = "VCF_BQ_PROJECT", "VCF_BQ_DATASET", "VCF_BQ_KMS_KEY"


@dataclass(frozen=True)
class JobSettings:
    parallelism: int = 4
    max_retry_count: int = 2
    max_run_duration_s: int = 4 * 3600
    cpu_milli: int = 2000
    memory_mib: int = 4096
    labels: Mapping[str, str] = field(default_factory=dict)


def check_location(target: BatchTarget, location: str | None) -> str:
    """The job's region; anything but the node's region is refused before any API call."""
    region = location or target.region
    if region != target.region:
        raise UserError(
            f"Batch location {region!r} is outside node region {target.region!r}: the job "
            f"would process the node's data outside its jurisdiction; fix: use "
            f"--location {target.region} (or omit it)"
        )
    return region


def default_job_id(target: BatchTarget, shards: Sequence[str]) -> str:
    """Same inputs, same id: a re-submitted job is rejected by Batch as already existing."""
    digest = hashlib.sha256(
        json.dumps([target.project, target.image_uri, list(shards)]).encode()
    ).hexdigest()
    return f"vcf-{digest[:20]}"


def build_job(
    target: BatchTarget,
    shards: Sequence[str],
    *,
    settings: JobSettings | None = None,
    location: str | None = None,
) -> batch_v1.Job:
    """A Job with one task per shard (object keys in the input bucket)."""
    settings = settings or JobSettings()
    region = check_location(target, location)
    if not shards:
        raise UserError(f"no VCF shards to process in gs://{target.input_bucket}; fix: upload "
                        f"them first or pass --shard")
    runnable = batch_v1.Runnable(
        container=batch_v1.Runnable.Container(
            image_uri=target.image_uri,
            entrypoint="python",
            commands=["-m", TASK_MODULE, "--load", "bigquery"],
        )
    )
    task_spec = batch_v1.TaskSpec(
        runnables=[runnable],
        compute_resource=batch_v1.ComputeResource(
            cpu_milli=settings.cpu_milli, memory_mib=settings.memory_mib
        ),
        max_retry_count=settings.max_retry_count,
        max_run_duration=datetime.timedelta(seconds=settings.max_run_duration_s),
        environment=batch_v1.Environment(variables={
            ENV_INPUT: f"gs://{target.input_bucket}",
            ENV_STAGING: f"gs://{target.staging_bucket}",
            ENV_SHARDS: json.dumps(list(shards)),
            ENV_PROJECT: target.project,
            ENV_DATASET: target.dataset,
            ENV_KMS_KEY: target.bigquery_kms_key,
        }),
    )
    group = batch_v1.TaskGroup(
        task_spec=task_spec,
        task_count=len(shards),
        parallelism=min(settings.parallelism, len(shards)),
    )
    allocation = batch_v1.AllocationPolicy(
        # The template carries SEV, shielded VM, no external IP and the CMEK boot disk.
        instances=[batch_v1.AllocationPolicy.InstancePolicyOrTemplate(
            instance_template=target.instance_template)],
        location=batch_v1.AllocationPolicy.LocationPolicy(
            allowed_locations=[f"regions/{region}"]),
        service_account=batch_v1.ServiceAccount(email=target.service_account),
    )
    labels = {"workload": "vcf-pipeline", "confidential": "sev", **settings.labels}
    return batch_v1.Job(
        task_groups=[group],
        allocation_policy=allocation,
        labels=labels,
        logs_policy=batch_v1.LogsPolicy(
            destination=batch_v1.LogsPolicy.Destination.CLOUD_LOGGING),
    )


def job_json(job: batch_v1.Job) -> str:
    """The job as the Batch REST API spells it (camelCase), stable for diffs and policies."""
    data = json.loads(batch_v1.Job.to_json(
        job, use_integers_for_enums=False, including_default_value_fields=False))
    return json.dumps(data, indent=2, sort_keys=True)


def job_from_json(text: str) -> batch_v1.Job:
    job: batch_v1.Job = batch_v1.Job.from_json(text)
    return job


def create_job_request(
    target: BatchTarget, job: batch_v1.Job, job_id: str, *, location: str | None = None
) -> batch_v1.CreateJobRequest:
    region = check_location(target, location)
    if not JOB_ID.match(job_id):
        raise UserError(f"job id {job_id!r} is not valid; fix: lowercase letters, digits and "
                        f"hyphens, starting with a letter, at most 63 characters")
    return batch_v1.CreateJobRequest(
        parent=f"projects/{target.project}/locations/{region}", job_id=job_id, job=job
    )


def submit(request: batch_v1.CreateJobRequest, client: Any = None) -> batch_v1.Job:
    """Create the job with BatchServiceClient (application default credentials)."""
    client = client or batch_v1.BatchServiceClient()
    job: batch_v1.Job = client.create_job(request=request)
    return job
