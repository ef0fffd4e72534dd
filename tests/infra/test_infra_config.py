"""Stack configuration: typed, validated, one clear message naming the key and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from infra_testkit import of_type, one, walk

from infra.capture import REPO_ROOT, CapturedResource, capture_stack
from infra.config import ConfigError

BAD_VALUES = [
    ({"region": "europe-west2"}, "sovereign-genomics:region", "outside the jurisdiction"),
    ({"region": "Central US"}, "sovereign-genomics:region", "malformed"),
    ({"project": "Fed_Node_US"}, "sovereign-genomics:project", "malformed"),
    ({"project": "abc"}, "sovereign-genomics:project", "malformed"),
    ({"project": "fed-node-us-"}, "sovereign-genomics:project", "malformed"),
    ({"projectNumber": "12ab"}, "sovereign-genomics:projectNumber", "malformed"),
    ({"role": "spoke"}, "sovereign-genomics:role", "node, hub"),
    ({"perimeterMode": "audit"}, "sovereign-genomics:perimeterMode", "dryrun, enforced"),
    (
        {"batch": {"provisioningModel": "PREEMPTIBLE"}},
        "sovereign-genomics:batch.provisioningModel",
        "SPOT, STANDARD",
    ),
    ({"batch": {"machineType": "e2-standard-4"}}, "batch.machineType", "N2D"),
    ({"batch": {"machine": "n2d-standard-4"}}, "sovereign-genomics:batch", "unknown keys"),
    ({"allowedLocations": "us-central1"}, "allowedLocations", "not structured YAML"),
    ({"allowedLocations": ["in:us-locations"]}, "allowedLocations", "neither a region"),
    ({"allowedLocations": []}, "allowedLocations", "non-empty list"),
    ({"hubProject": "fed-node-us"}, "hubProject", "the node's own project"),
    ({"accessPolicy": "policies/1"}, "accessPolicy", "malformed"),
    ({"node": None}, "sovereign-genomics:node", "is missing"),
    ({"hubProjectNumber": None}, "hubProjectNumber", "is missing"),
    ({"quotaProject": None}, "quotaProject", "is missing"),
    ({"deployer": "alice@example.com"}, "deployer", "malformed"),
    ({"allowedMemberDomains": ["example.com"]}, "allowedMemberDomains", "customer id"),
    ({"keyProject": {"project": "k"}}, "keyProject", "write it as"),
    ({"batchImageProjectNumber": None}, "batchImageProjectNumber", "is missing"),
]


@pytest.mark.parametrize(("override", "key", "problem"), BAD_VALUES)
def test_bad_config_fails_with_one_message_naming_the_key_and_fix(
    override: dict[str, object], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        capture_stack("us", override)
    message = str(err.value)
    assert key in message and problem in message, message
    assert "fix:" in message and "Pulumi.us.yaml" in message
    assert "\n" not in message


def test_config_errors_stop_before_any_resource_is_declared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from infra import capture

    declared: list[str] = []

    class Spy(capture._Mocks):
        def new_resource(self, args):  # type: ignore[no-untyped-def]
            declared.append(args.name)
            return super().new_resource(args)

    monkeypatch.setattr(capture, "_Mocks", Spy)
    capture_stack("us")
    assert len(declared) > 50  # the spy sees a good run's resources...
    declared.clear()
    with pytest.raises(ConfigError):
        capture_stack("us", {"region": "asia-southeast1"})
    assert declared == []  # ...and none from a run whose config is wrong


def test_perimeter_defaults_to_enforced_and_batch_to_spot_n2d() -> None:
    resources = capture_stack("us", {"perimeterMode": None, "batch": None})
    perimeter = one(resources, ":ServicePerimeter").inputs
    assert "status" in perimeter and "spec" not in perimeter
    template = one(resources, ":InstanceTemplate").inputs
    assert template["scheduling"]["provisioningModel"] == "SPOT"
    assert template["machineType"] == "n2d-standard-4"


def test_a_new_node_is_a_new_stack_file_and_nothing_else(
    tmp_path: Path, captured: dict[str, list[CapturedResource]]
) -> None:
    shutil.copy(REPO_ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    config = {
        "role": "node",
        "node": "sg",
        "jurisdiction": "PDPA",
        "project": "fed-node-sg",
        "projectNumber": "100000000003",
        "region": "asia-southeast1",
        "allowedLocations": ["in:asia-southeast1-locations"],
        "hubProject": "fed-hub",
        "hubProjectNumber": "100000000009",
        "accessPolicy": "555000111",
        "batchImageProjectNumber": "100000000077",
        "deployer": "serviceAccount:pulumi-deployer@sg-admin.iam.gserviceaccount.com",
        "quotaProject": "sg-admin",
        "allowedMemberDomains": ["C0100abcd"],
        "batch": {"provisioningModel": "STANDARD", "machineType": "n2d-standard-8"},
    }
    stack_yaml = {"config": {f"sovereign-genomics:{k}": v for k, v in config.items()}}
    (tmp_path / "Pulumi.sg.yaml").write_text(yaml.safe_dump(stack_yaml))

    resources = capture_stack("sg", stack_dir=tmp_path)

    locations = {
        v for r in resources for p, v in walk(r.inputs) if p.endswith(("location", "region"))
    }
    assert locations == {"asia-southeast1"}
    projects = {r.inputs["project"] for r in resources if "project" in r.inputs}
    assert projects == {"fed-node-sg"}
    assert len(of_type(resources, ":Bucket")) == 3
    template = one(resources, ":InstanceTemplate").inputs
    assert template["scheduling"]["provisioningModel"] == "STANDARD"
    assert template["scheduling"]["preemptible"] is False
    assert one(resources, ":ServicePerimeter").inputs["name"].endswith("sovereign_node_sg")
    assert len(resources) == len(captured["us"])

    # ...and renders clean: every policy of the pack passes on it.
    from infra.render import render

    rendered = render("sg", stack_dir=tmp_path, resources=resources)
    assert "region `asia-southeast1`; jurisdiction PDPA" in rendered.posture
    verdicts = rendered.posture.split("## Policy verdicts", 1)[1]
    assert "| PASS |" in verdicts and "FAIL" not in verdicts
