"""The main-env entry points: evaluate/policies/verdicts_markdown and the pack config tool."""

from __future__ import annotations

import json

import pytest

from infra import config as infra_config
from infra.capture import REPO_ROOT, capture_stack, project_name, stack_config
from infra.policy.config import config_for_stack, main, pack_config
from infra.policy.evaluate import (
    as_policy_config,
    evaluate,
    policies,
    policy_table_markdown,
    verdicts_markdown,
)
from infra.policy.sovereign_policies import POLICIES, PolicyConfig
from tests.policy.mutations import MUTATIONS, captured


def test_policies_list_names_severity_checkov_and_config() -> None:
    listed = {p.name: p for p in policies()}
    assert list(listed) == [p.name for p in POLICIES]
    assert listed["encryption-key-rotation"].checkov == ("CKV_GCP_43",)
    assert listed["storage-public-access-prevention"].checkov == ("CKV_GCP_114",)
    assert listed["confidential-vm"].checkov == ()  # Checkov has no confidential-compute rule
    assert listed["sovereignty-resource-location"].config_keys == ("allowedLocations",)
    assert {p.kind for p in listed.values()} == {"resource", "stack"}


def test_verdicts_table_passes_the_clean_stack_and_counts_failures() -> None:
    resources, config = captured("us")
    table = verdicts_markdown(resources, config)
    assert table.count("| PASS |") == len(POLICIES)
    [drop_key] = [m for m in MUTATIONS if m.name == "drop a bucket's key"]
    broken, _ = drop_key.apply(list(resources))
    line = next(
        li
        for li in verdicts_markdown(broken, config).splitlines()
        if li.startswith("| encryption-cmek ")
    )
    assert line.endswith("| FAIL 1 |") and "CKV_GCP_81" in line


class _StackFileConfig:
    """pulumi.Config's get() over a stack file: strings as is, structures as JSON."""

    def __init__(self, stack: str) -> None:
        self.project, self.values = stack_config(stack)

    def get(self, key: str) -> str | None:
        value = self.values.get(f"{self.project}:{key}")
        return value if value is None or isinstance(value, str) else json.dumps(value)


@pytest.mark.parametrize("stack", ["us", "eu"])
def test_pack_config_agrees_with_the_programs_validated_config(stack: str) -> None:
    loaded = infra_config.load(_StackFileConfig(stack), stack)  # type: ignore[arg-type]
    assert as_policy_config(loaded) == config_for_stack(stack)
    assert evaluate(capture_stack(stack), loaded) == []
    assert as_policy_config({"role": "hub", "allowedLocations": ["x"]}).role == "hub"


@pytest.mark.parametrize("stack", ["us", "eu"])
def test_pack_config_comes_from_the_stack_file(stack: str) -> None:
    config = config_for_stack(stack)
    assert config.role == "node" and config.allowed_locations and config.hub_project_number
    generated = pack_config(config)
    assert generated["sovereignty-resource-location"] == {
        "allowedLocations": list(config.allowed_locations)
    }
    assert (
        generated["sovereignty-perimeter-egress"]["hubProjectNumber"] == config.hub_project_number
    )
    assert "encryption-cmek" not in generated  # reads no config


def test_pack_reads_stack_config_under_the_project_namespace() -> None:
    # The pack calls pulumi.Config() (the project's namespace) for its stack-config fallback.
    assert project_name(REPO_ROOT) == infra_config.NAMESPACE


def test_config_command_prints_json_and_rejects_unknown_stacks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["us"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert PolicyConfig.from_mapping(printed["sovereignty-location-org-policy"]).allowed_locations
    assert main(["atlantis"]) == 2
    assert "Pulumi.atlantis.yaml" in capsys.readouterr().err


def test_docs_carry_the_current_policy_table() -> None:
    assert policy_table_markdown() in (REPO_ROOT / "docs" / "policy.md").read_text()
