"""A node's Batch work, as data: where it runs, what each task receives, the job spec.

Defined once for the node stack (infra/batch_job.py submits the spec as a dynamic
resource), the CLI (workloads/batch/job.py turns it into google-cloud-batch's typed Job to
dry-run or submit it) and the task runner (workloads/batch/task.py reads the environment).

A job runs one registered task kind (workloads/batch/registry.py: `vcf` today) over a list
of items (object keys in the node's raw-input bucket), one Batch task per item. Nothing here
knows what a kind does: the kind's own module does.

The spec is Batch's REST JSON (camelCase, proto3 JSON: int64 as strings), built from plain
values so that the stack needs no client library to build it; a test proves it is exactly
what `batch_v1.Job.from_json` accepts and writes back.

Batch's InstancePolicy has no confidential-computing field, so the job names the node's
Confidential VM instance template and nothing else about the machine (a template makes Batch
ignore the job's own network/policy block).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Generic, Literal, TypeVar

from workloads.contracts.errors import UserError
from workloads.contracts.stack_outputs import NodeOutputs

# The one image every task kind runs in (containers/tasks/), pushed to the node's registry.
IMAGE_NAME = "sovereign-tasks"
TASK_MODULE = "workloads.batch.task"  # the container's entrypoint module
JOB_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
TASK_KIND = re.compile(r"^[a-z][a-z0-9]{0,19}$")  # also the job id's prefix

T = TypeVar("T")


@dataclass(frozen=True)
class BatchTarget(Generic[T]):
    """Where a node's Batch job runs. `BatchTarget[str]` in the CLI (from the stack's
    outputs); `BatchTarget[pulumi.Input[str]]` in the node stack (its resources' outputs)."""

    project: T
    region: T
    instance_template: T  # self link of the node's global Confidential VM template
    service_account: T  # must be the template's service account
    input_bucket: T  # the raw-input bucket: the items are object keys in it
    staging_bucket: T  # files between the tasks and the load
    image_uri: T  # <region>-docker.pkg.dev/<project>/<repo>/sovereign-tasks:<tag>
    # The BigQuery CMEK key: the CMEK org policy refuses BigQuery jobs that name none.
    bigquery_kms_key: T

    @classmethod
    def from_stack_outputs(
        cls, outputs: Mapping[str, Any], *, image_tag: str = "latest"
    ) -> BatchTarget[str]:
        """From `pulumi stack output --json -s <node>` (names: stack_outputs.NodeOutputs)."""
        out = NodeOutputs.from_json(outputs)
        try:
            return BatchTarget(
                project=out.project,
                region=out.region,
                instance_template=out.batch_template,
                service_account=out.batch_service_account,
                input_bucket=out.buckets["raw-input"],
                staging_bucket=out.buckets["staging"],
                image_uri=image_uri(out.repository_url, image_tag),
                bigquery_kms_key=out.keys["bigquery"],
            )
        except KeyError as exc:
            raise UserError(
                f"stack outputs lack {exc} in buckets or keys; fix: pass `pulumi stack output "
                f"--json -s <node>` of a node stack"
            ) from exc

    def values(self) -> dict[str, T]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def image_uri(repository_url: str, tag: str) -> str:
    return f"{repository_url}/{IMAGE_NAME}:{tag}"


# -- the task environment: the only way a task learns what to do ------------------------------

Warehouse = Literal["none", "bigquery"]


class TaskEnv:
    """Names of the environment variables a Batch task receives (set by the job spec)."""

    KIND = "SOVEREIGN_TASK_KIND"  # which registered task kind runs
    ITEMS = "SOVEREIGN_TASK_ITEMS"  # JSON list; task i takes item i
    INPUTS = "SOVEREIGN_TASK_INPUTS"  # JSON object: the kind's own inputs
    INPUT = "SOVEREIGN_INPUT"  # gs://<raw-input bucket> (or a folder locally)
    STAGING = "SOVEREIGN_STAGING"  # gs://<staging bucket> (or a folder locally)
    WAREHOUSE = "SOVEREIGN_WAREHOUSE"  # "bigquery": the task loads; "none": the caller does
    PROJECT = "SOVEREIGN_PROJECT"  # the node's project (BigQuery jobs run there)
    KMS_KEY = "SOVEREIGN_BQ_KMS_KEY"  # named on every BigQuery job (CMEK org policy)
    INDEX = "BATCH_TASK_INDEX"  # set by Cloud Batch itself


@dataclass(frozen=True)
class TaskContext:
    """What one task receives: its kind, every item of the job and its own index."""

    kind: str
    items: tuple[str, ...]
    index: int
    input_location: str
    staging_location: str
    warehouse: Warehouse = "none"
    project: str = ""
    kms_key: str = ""
    inputs: Mapping[str, Any] = field(default_factory=dict)
    # A local node's bucket is a folder sealed with the node's key: the local runner hands
    # the key to its tasks in-process. Never part of the environment (cloud buckets are
    # CMEK: Cloud Storage holds the key).
    store_key: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.index < len(self.items):
            raise UserError(
                f"task index {self.index} is outside the {len(self.items)} items; fix: "
                f"task_count must equal the number of items"
            )

    @property
    def item(self) -> str:
        return self.items[self.index]

    def environment(self) -> dict[str, str]:
        """The job-wide variables (Cloud Batch adds BATCH_TASK_INDEX per task)."""
        return {
            TaskEnv.KIND: self.kind,
            TaskEnv.ITEMS: json.dumps(list(self.items)),
            TaskEnv.INPUTS: json.dumps(dict(self.inputs), sort_keys=True),
            TaskEnv.INPUT: self.input_location,
            TaskEnv.STAGING: self.staging_location,
            TaskEnv.WAREHOUSE: self.warehouse,
            TaskEnv.PROJECT: self.project,
            TaskEnv.KMS_KEY: self.kms_key,
        }

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> TaskContext:
        env = os.environ if env is None else env
        missing = [n for n in (TaskEnv.KIND, TaskEnv.ITEMS, TaskEnv.INPUT, TaskEnv.STAGING)
                   if not env.get(n)]
        if missing:
            raise UserError(f"the task environment lacks {', '.join(missing)}; fix: run the "
                            f"task from its Batch job (or set them, see {TaskEnv.__module__})")
        try:
            items = json.loads(env[TaskEnv.ITEMS])
            inputs = json.loads(env.get(TaskEnv.INPUTS) or "{}")
            index = int(env.get(TaskEnv.INDEX, "0"))
        except ValueError as exc:
            raise UserError(f"the task environment is malformed ({exc}); fix: "
                            f"{TaskEnv.ITEMS} and {TaskEnv.INPUTS} are JSON") from exc
        if not isinstance(items, list) or not isinstance(inputs, dict):
            raise UserError(f"{TaskEnv.ITEMS} must be a JSON list and {TaskEnv.INPUTS} a JSON "
                            f"object; fix: build the job with workloads.contracts.batch")
        warehouse = env.get(TaskEnv.WAREHOUSE) or "none"
        if warehouse not in ("none", "bigquery"):
            raise UserError(f"{TaskEnv.WAREHOUSE} is {warehouse!r}; fix: none or bigquery")
        return cls(
            kind=env[TaskEnv.KIND],
            items=tuple(str(i) for i in items),
            index=index,
            input_location=env[TaskEnv.INPUT],
            staging_location=env[TaskEnv.STAGING],
            warehouse="bigquery" if warehouse == "bigquery" else "none",
            project=env.get(TaskEnv.PROJECT, ""),
            kms_key=env.get(TaskEnv.KMS_KEY, ""),
            inputs=inputs,
        )


# -- the job -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSettings:
    parallelism: int = 4
    max_retry_count: int = 2
    max_run_duration_s: int = 4 * 3600
    cpu_milli: int = 2000
    memory_mib: int = 4096
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskRequest:
    """A job's work: a registered task kind, its items (one task each) and its inputs."""

    kind: str
    items: tuple[str, ...]
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not TASK_KIND.match(self.kind):
            raise UserError(f"task kind {self.kind!r} is not a valid name; fix: lowercase "
                            f"letters and digits, starting with a letter, at most 20")


def check_location(target: BatchTarget[str], location: str | None) -> str:
    """The job's region; anything but the node's region is refused before any API call."""
    region = location or target.region
    if region != target.region:
        raise UserError(
            f"Batch location {region!r} is outside node region {target.region!r}: the job "
            f"would process the node's data outside its jurisdiction; fix: use "
            f"--location {target.region} (or omit it)"
        )
    return region


def default_job_id(target: BatchTarget[str], request: TaskRequest) -> str:
    """Same inputs, same id: a re-submitted job is rejected by Batch as already existing."""
    digest = hashlib.sha256(
        json.dumps([target.project, target.image_uri, request.kind, list(request.items),
                    dict(request.inputs)], sort_keys=True).encode()
    ).hexdigest()
    return f"{request.kind}-{digest[:20]}"


def job_spec(
    target: BatchTarget[str],
    request: TaskRequest,
    *,
    settings: JobSettings | None = None,
    location: str | None = None,
) -> dict[str, Any]:
    """The Batch Job (REST JSON) running one task per item on the node's template."""
    settings = settings or JobSettings()
    region = check_location(target, location)
    if not request.items:
        raise UserError(f"no items for the {request.kind} job in gs://{target.input_bucket}; "
                        f"fix: upload them first or name them (--shard)")
    context = TaskContext(
        kind=request.kind,
        items=request.items,
        index=0,
        input_location=f"gs://{target.input_bucket}",
        staging_location=f"gs://{target.staging_bucket}",
        warehouse="bigquery",
        project=target.project,
        kms_key=target.bigquery_kms_key,
        inputs=request.inputs,
    )
    task_spec = {
        "runnables": [{"container": {
            "imageUri": target.image_uri, "entrypoint": "python", "commands": ["-m", TASK_MODULE],
        }}],
        "computeResource": {"cpuMilli": str(settings.cpu_milli),
                            "memoryMib": str(settings.memory_mib)},
        "maxRetryCount": settings.max_retry_count,
        "maxRunDuration": f"{settings.max_run_duration_s}s",
        "environment": {"variables": context.environment()},
    }
    return {
        "taskGroups": [{
            "taskSpec": task_spec,
            "taskCount": str(len(request.items)),
            "parallelism": str(min(settings.parallelism, len(request.items))),
        }],
        "allocationPolicy": {
            # The template carries SEV, shielded VM, no external IP and the CMEK boot disk.
            "instances": [{"instanceTemplate": target.instance_template}],
            "location": {"allowedLocations": [f"regions/{region}"]},
            "serviceAccount": {"email": target.service_account},
        },
        "labels": {"task": request.kind, "confidential": "sev", **settings.labels},
        "logsPolicy": {"destination": "CLOUD_LOGGING"},
    }


def spec_json(spec: Mapping[str, Any]) -> str:
    """The spec as stable text: what the stack's dynamic resource carries and diffs."""
    return json.dumps(spec, indent=2, sort_keys=True)
