"""The node's Confidential Batch job as a Pulumi dynamic resource.

Neither pulumi-gcp nor Terraform has a Batch job resource, so this provider submits the
job with google-cloud-batch on `pulumi up`, built by the same builder the CLI uses
(workloads/batch/job.py). Its props - project, location, jobId, jobJson (the Batch REST
spelling of the job) - are what the offline manifest shows and what the policy pack
checks (allocationPolicy.instances[].instanceTemplate, allocationPolicy.location.
allowedLocations). Batch jobs cannot be changed: any change replaces the job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic

PROPS = ("project", "location", "jobId", "jobJson")


def _default_client() -> Any:
    from google.cloud import batch_v1

    return batch_v1.BatchServiceClient()


def job_name(project: str, location: str, job_id: str) -> str:
    return f"projects/{project}/locations/{location}/jobs/{job_id}"


class BatchJobProvider(pulumi.dynamic.ResourceProvider):
    """create = CreateJob, delete = DeleteJob, any input change = replacement."""

    def __init__(self, client_factory: Callable[[], Any] = _default_client) -> None:
        self._client_factory = client_factory

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        from google.cloud import batch_v1

        from workloads.batch.job import job_from_json

        request = batch_v1.CreateJobRequest(
            parent=f"projects/{props['project']}/locations/{props['location']}",
            job_id=props["jobId"],
            job=job_from_json(props["jobJson"]),
        )
        created = self._client_factory().create_job(request=request)
        name = created.name or job_name(props["project"], props["location"], props["jobId"])
        return pulumi.dynamic.CreateResult(
            id_=name, outs={**{k: props[k] for k in PROPS}, "jobName": name, "uid": created.uid})

    def diff(
        self, _id: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> pulumi.dynamic.DiffResult:
        changed = [k for k in PROPS if olds.get(k) != news.get(k)]
        # The old job goes first: a re-used job id must be free before CreateJob.
        return pulumi.dynamic.DiffResult(
            changes=bool(changed), replaces=changed, stables=[], delete_before_replace=True)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        from google.api_core.exceptions import NotFound

        # Already gone is fine (finished jobs may be purged by retention). DeleteJob is a
        # long-running operation: wait, so that a replacement can reuse the job id.
        with contextlib.suppress(NotFound):
            self._client_factory().delete_job(name=_id).result()


class BatchJob(pulumi.dynamic.Resource):
    jobName: pulumi.Output[str]  # noqa: N815 - the prop's own (camelCase) name
    uid: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        project: pulumi.Input[str],
        location: pulumi.Input[str],
        job_id: pulumi.Input[str],
        job_json: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        provider: BatchJobProvider | None = None,
    ) -> None:
        super().__init__(
            provider or BatchJobProvider(),
            resource_name,
            {"project": project, "location": location, "jobId": job_id, "jobJson": job_json,
             "jobName": None, "uid": None},
            opts,
        )


@dataclass(frozen=True)
class BatchTargetInputs:
    """BatchTarget (workloads/batch/target.py) with the node stack's Outputs as fields."""

    project: pulumi.Input[str]
    region: pulumi.Input[str]
    instance_template: pulumi.Input[str]
    service_account: pulumi.Input[str]
    input_bucket: pulumi.Input[str]
    staging_bucket: pulumi.Input[str]
    dataset: pulumi.Input[str]
    image_uri: pulumi.Input[str]
    bigquery_kms_key: pulumi.Input[str]


def declare_batch_job(
    name: str,
    target: BatchTargetInputs,
    shards: Sequence[str],
    *,
    parallelism: int = 4,
    max_retry_count: int = 2,
    max_run_duration_s: int = 4 * 3600,
    opts: pulumi.ResourceOptions | None = None,
) -> BatchJob:
    """The VCF job over `shards` (object keys in the raw-input bucket), in the node region."""
    from workloads.batch.job import JobSettings, build_job, default_job_id, job_json
    from workloads.batch.target import BatchTarget

    settings = JobSettings(parallelism=parallelism, max_retry_count=max_retry_count,
                           max_run_duration_s=max_run_duration_s)

    def spec(values: list[Any]) -> dict[str, str]:
        resolved = BatchTarget(*[str(v) for v in values])
        return {
            "jobJson": job_json(build_job(resolved, shards, settings=settings)),
            "jobId": default_job_id(resolved, shards),
        }

    fields = pulumi.Output.all(
        target.project, target.region, target.instance_template, target.service_account,
        target.input_bucket, target.staging_bucket, target.dataset, target.image_uri,
        target.bigquery_kms_key,
    ).apply(spec)
    return BatchJob(
        name,
        project=target.project,
        location=target.region,
        job_id=fields.apply(lambda f: f["jobId"]),
        job_json=fields.apply(lambda f: f["jobJson"]),
        opts=opts,
    )
