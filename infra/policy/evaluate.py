"""Run the policy pack's checks offline, from the project's environment (no Pulumi engine).

    from infra.capture import capture_stack
    from infra.policy.evaluate import evaluate, verdicts_markdown
    from infra.policy.config import config_for_stack
    violations = evaluate(capture_stack("us"), config_for_stack("us"))

`config` may be a PolicyConfig, the pack-config mapping (camelCase keys) or the program's
loaded stack config (infra.config.NodeConfig / HubConfig: anything with `role` and
`allowed_locations`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.policy.sovereign_policies import POLICIES, PolicyConfig, Severity, Violation
from infra.policy.sovereign_policies import evaluate as _evaluate
from infra.policy.sovereign_policies.model import CapturedLike, Resource

__all__ = [
    "PolicyInfo",
    "Violation",
    "as_policy_config",
    "evaluate",
    "policies",
    "verdicts_markdown",
]


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    pillar: str
    description: str
    severity: Severity
    checkov: tuple[str, ...]
    kind: str  # "resource" (each resource) or "stack" (the stack as a whole)
    config_keys: tuple[str, ...]


def policies() -> list[PolicyInfo]:
    """Every policy of the pack, in review order."""
    return [
        PolicyInfo(p.name, p.pillar, p.description, p.severity, p.checkov, p.kind, p.config_keys)
        for p in POLICIES
    ]


def as_policy_config(config: PolicyConfig | Mapping[str, Any] | Any) -> PolicyConfig:
    if isinstance(config, PolicyConfig):
        return config
    if isinstance(config, Mapping):
        return PolicyConfig.from_mapping(config)
    if hasattr(config, "allowed_locations") and hasattr(config, "role"):
        from infra.policy.config import derived

        key_project = getattr(config, "key_project", None)
        values: dict[str, Any] = {
            "role": str(config.role),
            "allowedLocations": list(config.allowed_locations),
            "hubProjectNumber": getattr(config, "hub_project_number", None),
            "project": getattr(config, "project", None),
            "projectNumber": getattr(config, "project_number", None),
            "perimeterMode": getattr(config, "perimeter_mode", None),
            "deployer": getattr(config, "deployer", None),
            "allowedMemberDomains": list(getattr(config, "allowed_member_domains", ())),
            "keyProject": (
                {"project": key_project.project, "number": key_project.number}
                if key_project
                else None
            ),
            "nodes": [{"name": n.name, "project": n.project} for n in getattr(config, "nodes", ())],
        }
        return PolicyConfig.from_mapping(derived(str(values["project"]), values))
    raise TypeError(f"cannot read a policy config from {type(config).__name__}")


def evaluate(
    resources: Iterable[CapturedLike | Resource], config: PolicyConfig | Mapping[str, Any] | Any
) -> list[Violation]:
    """Every violation of every policy over the resources (empty: the stack passes)."""
    return _evaluate(resources, as_policy_config(config))


def verdicts_markdown(
    resources: Iterable[CapturedLike | Resource], config: PolicyConfig | Mapping[str, Any] | Any
) -> str:
    """A Markdown table: policy, severity, Checkov ids, verdict (PASS or FAIL n)."""
    violations = evaluate(resources, config)
    counts: dict[str, int] = {}
    for v in violations:
        counts[v.policy] = counts.get(v.policy, 0) + 1
    lines = [
        "| policy | pillar | severity | checkov | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in POLICIES:
        n = counts.get(p.name, 0)
        verdict = f"FAIL {n}" if n else "PASS"
        checkov = ", ".join(p.checkov) if p.checkov else "-"
        lines.append(f"| {p.name} | {p.pillar} | {p.severity.value} | {checkov} | {verdict} |")
    return "\n".join(lines) + "\n"


def policy_table_markdown() -> str:
    """The reviewer's table of every policy (docs/policy.md carries this exact text)."""
    lines = [
        "| policy | pillar | severity | scope | Checkov | config | what it requires |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in POLICIES:
        checkov = ", ".join(p.checkov) if p.checkov else "none"
        config = ", ".join(p.config_keys) if p.config_keys else "-"
        lines.append(
            f"| {p.name} | {p.pillar} | {p.severity.value} | {p.kind} | {checkov} | {config} "
            f"| {p.description} |"
        )
    return "\n".join(lines) + "\n"
