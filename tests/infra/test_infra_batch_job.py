"""The optional VCF Batch job (infra/batch_job.py), declared by the node stack when enabled."""

from __future__ import annotations

import json

import pytest
from infra_testkit import of_type, one

from infra.capture import capture_stack
from infra.config import ConfigError
from infra.render import posture_markdown
from workloads.contracts.batch import IMAGE_NAME

JOB = {
    "enabled": True,
    "shards": ["incoming/a.vcf.gz", "incoming/b.vcf.gz"],
    "imageTag": "1.0.0",
    "parallelism": 2,
}


def test_job_is_off_in_the_committed_stacks(captured: dict[str, list]) -> None:
    for resources in captured.values():
        assert not of_type(resources, "dynamic:Resource")


def test_enabled_job_runs_on_the_confidential_template_in_region_as_the_batch_account() -> None:
    resources = capture_stack("us", {"batchJob": JOB})
    job = one(resources, "pulumi-python:dynamic:Resource")
    template = one(resources, ":InstanceTemplate")
    batch_component = one(resources, "sovereign:node:ConfidentialBatch")
    assert job.parent == batch_component.urn
    assert job.inputs["project"] == "fed-node-us" and job.inputs["location"] == "us-central1"
    spec = json.loads(job.inputs["jobJson"])
    policy = spec["allocationPolicy"]
    (instance,) = policy["instances"]
    assert instance["instanceTemplate"].endswith(
        f"/global/instanceTemplates/{template.inputs['name']}"
    )
    assert policy["serviceAccount"]["email"] == template.inputs["serviceAccount"]["email"]
    assert policy["location"]["allowedLocations"] == ["regions/us-central1"]
    (group,) = spec["taskGroups"]
    image = group["taskSpec"]["runnables"][0]["container"]["imageUri"]
    assert image == f"us-central1-docker.pkg.dev/fed-node-us/workloads/{IMAGE_NAME}:1.0.0"
    assert int(group["taskCount"]) == 2


def test_the_job_names_its_task_kind_and_nothing_in_infra_knows_what_it_does() -> None:
    resources = capture_stack("us", {"batchJob": {**JOB, "kind": "robotics"}})
    job = one(resources, "pulumi-python:dynamic:Resource")
    assert job.name == "robotics-job" and job.inputs["jobId"].startswith("robotics-")
    env = json.loads(job.inputs["jobJson"])["taskGroups"][0]["taskSpec"]["environment"]
    assert env["variables"]["SOVEREIGN_TASK_KIND"] == "robotics"
    assert json.loads(env["variables"]["SOVEREIGN_TASK_ITEMS"]) == JOB["shards"]


def test_enabled_job_passes_the_policy_pack_and_shows_in_the_posture() -> None:
    from infra.capture import stack_config
    from infra.policy.config import config_for_stack
    from infra.policy.evaluate import evaluate

    overrides = {"batchJob": JOB}
    resources = capture_stack("us", overrides)
    _project, values = stack_config("us", overrides)
    assert evaluate(resources, config_for_stack("us")) == []
    posture = posture_markdown("us", resources, values)
    assert "- Batch job `vcf-" in posture and "template confidential-batch-us" in posture


@pytest.mark.parametrize(
    ("block", "key"),
    [
        ({"enabled": "yes"}, "batchJob.enabled"),
        ({"enabled": True, "imageTag": "1"}, "batchJob.shards"),
        ({"enabled": True, "shards": ["a.vcf.gz"]}, "batchJob.imageTag"),
        ({**JOB, "parallelism": 0}, "batchJob.parallelism"),
        ({**JOB, "maxRetryCount": 11}, "batchJob.maxRetryCount"),
        ({**JOB, "image": "x"}, "unknown keys"),
        ({**JOB, "kind": "VCF!"}, "batchJob.kind"),
    ],
)
def test_bad_job_config_fails_clearly(block: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match="fix:") as err:
        capture_stack("us", {"batchJob": block})
    assert key in str(err.value)


# Deploy blocker B1 (issue 12): Pulumi stores the dynamic provider pickled (dill) and runs it
# in a separate process from the program's directory, infra/ (pulumi/pulumi#7453), where
# the repository is not on sys.path. This script is that process: it refuses every import
# of `infra` and `workloads`, unpickles the provider as pulumi's provider process does and
# drives it.
_PROVIDER_PROCESS = r'''
import importlib.abc, json, sys
from unittest import mock

repo = sys.argv[1]
sys.path[:] = [p for p in sys.path if p.rstrip("/") != repo.rstrip("/")]

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("infra", "workloads"):
            raise ModuleNotFoundError(f"No module named {name!r} (provider process)")
        return None

sys.meta_path.insert(0, Refuse())
props = json.loads(sys.stdin.read())
import base64
import dill
from google.cloud import batch_v1
from pulumi.dynamic import Config, ConfigureRequest
from pulumi.runtime._serialization import _deserialize

# What pulumi.dynamic.__main__.get_provider does (importing it would start its server).
serialized = base64.b64decode(props.pop("__provider"))
provider = _deserialize(lambda: dill.loads(serialized))
provider.configure(ConfigureRequest(Config(raw_config={}, project_name="p")))
created = batch_v1.Job(name="projects/p/locations/l/jobs/j", uid="u")
with mock.patch.object(batch_v1.BatchServiceClient, "__init__", return_value=None), \
        mock.patch.object(batch_v1.BatchServiceClient, "create_job", return_value=created) as c, \
        mock.patch.object(batch_v1.BatchServiceClient, "delete_job") as d:
    result = provider.create(props)
    provider.delete(result.id, result.outs)
sent = c.call_args.kwargs["request"]
print(json.dumps({
    "class": type(provider).__name__,
    "id": result.id,
    "task_count": sent.job.task_groups[0].task_count,
    "replaces": provider.diff(result.id, props, {**props, "jobId": "x"}).replaces,
    "deleted": d.call_args.kwargs["name"],
    "leaked": sorted(m for m in sys.modules if m.split(".")[0] in ("infra", "workloads")),
}))
'''


def test_the_provider_unpickles_and_runs_where_pulumi_runs_it() -> None:
    import subprocess
    import sys

    from pulumi.runtime import rpc

    from infra.capture import REPO_ROOT

    job = one(capture_stack("us", {"batchJob": JOB}), "pulumi-python:dynamic:Resource")
    serialized = job.inputs["__provider"]
    assert serialized[rpc._special_sig_key] == rpc._special_secret_sig  # kept as a secret
    props = {k: job.inputs[k] for k in ("project", "location", "jobId", "jobJson")}
    done = subprocess.run(
        [sys.executable, "-c", _PROVIDER_PROCESS, str(REPO_ROOT)],
        input=json.dumps({**props, "__provider": serialized["value"]}),
        cwd=REPO_ROOT / "infra",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["class"] == "BatchJobProvider"
    assert report["id"] == "projects/p/locations/l/jobs/j" == report["deleted"]
    assert report["task_count"] == len(JOB["shards"])
    assert report["replaces"] == ["jobId"]
    assert report["leaked"] == []
