"""The Batch job as google-cloud-batch's typed Job: dry-run and submit from the CLI.

The job itself is built once, as data, by workloads.contracts.batch.job_spec (the node
stack's dynamic resource submits the same spec); here it is parsed into `batch_v1.Job`,
which refuses any field Batch does not know, and sent with BatchServiceClient.
"""

from __future__ import annotations

import json
from typing import Any

from google.cloud import batch_v1

from workloads.contracts.batch import (
    JOB_ID,
    BatchTarget,
    JobSettings,
    TaskRequest,
    check_location,
    job_spec,
    spec_json,
)
from workloads.contracts.errors import UserError


def build_job(
    target: BatchTarget[str],
    request: TaskRequest,
    *,
    settings: JobSettings | None = None,
    location: str | None = None,
) -> batch_v1.Job:
    """The job running one task of `request.kind` per item, on the node's template."""
    return job_from_json(spec_json(job_spec(target, request, settings=settings,
                                            location=location)))


def job_json(job: batch_v1.Job) -> str:
    """The job as the Batch REST API spells it (camelCase), stable for diffs and policies."""
    data = json.loads(batch_v1.Job.to_json(
        job, use_integers_for_enums=False, including_default_value_fields=False))
    return spec_json(data)


def job_from_json(text: str) -> batch_v1.Job:
    job: batch_v1.Job = batch_v1.Job.from_json(text)
    return job


def create_job_request(
    target: BatchTarget[str], job: batch_v1.Job, job_id: str, *, location: str | None = None
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
