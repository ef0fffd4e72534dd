"""A node's Confidential Batch job as a Pulumi dynamic resource.

Neither pulumi-gcp nor Terraform has a Batch job resource, so this provider submits the
job with google-cloud-batch on `pulumi up`. The program builds the job spec beforehand with
the contracts' builder (workloads.contracts.batch.job_spec, the one the CLI uses) and passes
it in as the `jobJson` input; the provider only parses it and calls the Batch API. Its
props - project, location, jobId, jobJson (the Batch REST spelling of the job) - are what
the offline manifest shows and what the policy pack checks (allocationPolicy.instances[].
instanceTemplate, allocationPolicy.location.allowedLocations). Batch jobs cannot be
changed: any change replaces the job.

Pulumi stores the provider in the state, pickled with dill, and runs it in another process
from the program's directory (infra/), where neither `infra` nor `workloads` need be
importable (pulumi/pulumi#7453). dill pickles a class by reference when it can import it by
name, so the provider class is made in a function: dill cannot find it by name and pickles
it, its methods and what they use by value. Its methods use only the standard library,
pulumi and google-cloud-batch (tests/infra/test_infra_batch_job.py unpickles it from infra/
with both packages unimportable).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi.dynamic

from workloads.contracts.batch import (
    BatchTarget,
    JobSettings,
    TaskRequest,
    default_job_id,
    job_spec,
    spec_json,
)

PROPS = ("project", "location", "jobId", "jobJson")
ClientFactory = Callable[[], Any]


def _provider_class() -> type[pulumi.dynamic.ResourceProvider]:
    # Everything the methods need is inside this function: see the module's docstring.
    prop_names = PROPS

    class BatchJobProvider(pulumi.dynamic.ResourceProvider):
        """create = CreateJob, delete = DeleteJob, any input change = replacement."""

        def __init__(self, client_factory: ClientFactory | None = None) -> None:
            self._client_factory = client_factory  # None: Batch's client, default credentials

        def _client(self) -> Any:
            if self._client_factory is not None:
                return self._client_factory()
            from google.cloud import batch_v1

            return batch_v1.BatchServiceClient()

        def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
            from google.cloud import batch_v1

            parent = f"projects/{props['project']}/locations/{props['location']}"
            request = batch_v1.CreateJobRequest(
                parent=parent,
                job_id=props["jobId"],
                job=batch_v1.Job.from_json(props["jobJson"]),  # unknown fields refused
            )
            created = self._client().create_job(request=request)
            name = created.name or f"{parent}/jobs/{props['jobId']}"
            outs = {**{k: props[k] for k in prop_names}, "jobName": name, "uid": created.uid}
            return pulumi.dynamic.CreateResult(id_=name, outs=outs)

        def diff(
            self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]
        ) -> pulumi.dynamic.DiffResult:
            changed = [k for k in prop_names if _olds.get(k) != _news.get(k)]
            # The old job goes first: a re-used job id must be free before CreateJob.
            return pulumi.dynamic.DiffResult(
                changes=bool(changed), replaces=changed, stables=[], delete_before_replace=True
            )

        def delete(self, _id: str, _props: dict[str, Any]) -> None:
            import contextlib

            from google.api_core.exceptions import NotFound

            # Already gone is fine (finished jobs may be purged by retention). DeleteJob is
            # a long-running operation: wait, so that a replacement can reuse the job id.
            with contextlib.suppress(NotFound):
                self._client().delete_job(name=_id).result()

    return BatchJobProvider


BatchJobProvider = _provider_class()


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
        provider: pulumi.dynamic.ResourceProvider | None = None,
    ) -> None:
        super().__init__(
            provider or BatchJobProvider(),
            resource_name,
            {"project": project, "location": location, "jobId": job_id, "jobJson": job_json,
             "jobName": None, "uid": None},
            opts,
        )


def declare_batch_job(
    name: str,
    target: BatchTarget[pulumi.Input[str]],
    request: TaskRequest,
    *,
    settings: JobSettings | None = None,
    opts: pulumi.ResourceOptions | None = None,
) -> BatchJob:
    """The job of `request` (a task kind over items in the raw-input bucket), in region."""

    def spec(values: dict[str, Any]) -> dict[str, str]:
        resolved = BatchTarget[str](**{k: str(v) for k, v in values.items()})
        return {
            "jobJson": spec_json(job_spec(resolved, request, settings=settings)),
            "jobId": default_job_id(resolved, request),
        }

    built = pulumi.Output.all(**target.values()).apply(spec)
    return BatchJob(
        name,
        project=target.project,
        location=target.region,
        job_id=built.apply(lambda f: f["jobId"]),
        job_json=built.apply(lambda f: f["jobJson"]),
        opts=opts,
    )
