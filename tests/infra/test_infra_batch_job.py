"""The optional VCF Batch job (infra/batch_job.py), declared by the node stack when enabled."""

from __future__ import annotations

import json

import pytest
from infra_testkit import of_type, one

from infra.capture import capture_stack
from infra.config import ConfigError
from infra.render import posture_markdown

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
    # A generated name (B7): the template's namePrefix plus the provider's suffix.
    assert (
        f"/global/instanceTemplates/{template.inputs['namePrefix']}" in instance["instanceTemplate"]
    )
    assert policy["serviceAccount"]["email"] == template.inputs["serviceAccount"]["email"]
    assert policy["location"]["allowedLocations"] == ["regions/us-central1"]
    (group,) = spec["taskGroups"]
    image = group["taskSpec"]["runnables"][0]["container"]["imageUri"]
    assert image == "us-central1-docker.pkg.dev/fed-node-us/workloads/vcf-processor:1.0.0"
    assert int(group["taskCount"]) == 2


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
    ],
)
def test_bad_job_config_fails_clearly(block: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match="fix:") as err:
        capture_stack("us", {"batchJob": block})
    assert key in str(err.value)
