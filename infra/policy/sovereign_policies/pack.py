"""The policies as pulumi_policy objects: what __main__.py hands to PolicyPack.

Constructing pulumi_policy.PolicyPack starts the analyzer's gRPC server and blocks, so
everything up to that point lives here and is testable: `pulumi_policies()` builds the
ResourceValidationPolicy / StackValidationPolicy list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pulumi
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import Severity as PulumiSeverity
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

from .catalog import POLICIES
from .model import UNKNOWN, NotKnownYet, Policy, PolicyConfig, Resource

PACK_NAME = "sovereign-genomics-policies"
ENFORCEMENT = EnforcementLevel.MANDATORY

CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    "allowedLocations": {
        "type": "array",
        "items": {"type": "string"},
        "description": "gcp.resourceLocations values, e.g. in:us-central1-locations",
    },
    "role": {"type": "string", "enum": ["node", "hub"], "description": "the stack's role"},
    "hubProjectNumber": {
        "type": "string",
        "description": "project number of the federation hub (the only egress target)",
    },
    "project": {"type": "string", "description": "the stack's project id"},
    "projectNumber": {"type": "string", "description": "the stack's project number"},
    "perimeterMode": {"type": "string", "enum": ["enforced", "dryrun"]},
    "deployer": {"type": "string", "description": "IAM member that runs pulumi up"},
    "allowedMemberDomains": {"type": "array", "items": {"type": "string"}},
    "keyProject": {
        "type": "object",
        "properties": {"project": {"type": "string"}, "number": {"type": "string"}},
    },
    "federationIdentity": {"type": "string", "description": "the node's federation worker"},
    "nodeIdentities": {"type": "object", "description": "hub: node name -> worker e-mail"},
    "signingKeyName": {"type": "string"},
    "signingAlgorithm": {"type": "string"},
    "workerImageDigest": {"type": "string", "description": "node: the worker image digest"},
    "attestedWorker": {"type": "string", "description": "node: principalSet of that digest"},
    "confidentialSpaceImageProjectNumber": {"type": "string"},
    "researchersGroup": {"type": "string", "description": "hub: who runs the coordinator"},
    "coordinatorIdentity": {"type": "string", "description": "hub: the coordinator account"},
    "resultsBucket": {"type": "string", "description": "hub: the results bucket's name"},
    "specsBucket": {"type": "string", "description": "hub: the specs bucket's name"},
}

StackConfigReader = Callable[[str], Any]


def stack_config_reader() -> Any:
    """The stack's own config (the engine passes it to packs), under the project's namespace.

    Pulumi.<stack>.yaml keys are `<project>:<key>`; pulumi.Config() defaults to the project.
    """
    try:
        config = pulumi.Config()
    except Exception:
        return lambda _key: None

    def read(key: str) -> Any:
        value = config.get(key)
        if value is None:
            return None
        try:
            return config.get_object(key)
        except Exception:
            return value

    return read


def plain(value: Any) -> Any:
    """pulumi_policy's unknown-checking proxies as plain values, unknowns as UNKNOWN."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in value:
            try:
                out[str(key)] = plain(value[key])
            except UnknownValueError:
                out[str(key)] = UNKNOWN
        return out
    if isinstance(value, Sequence) and not isinstance(value, str):
        seq: list[Any] = []
        for i in range(len(value)):
            try:
                seq.append(plain(value[i]))
            except UnknownValueError:
                seq.append(UNKNOWN)
        return seq
    return value


def _resource(type_: str, name: str, urn: str, props: Mapping[str, Any], protect: Any) -> Resource:
    return Resource(type=type_, name=name, urn=urn, props=plain(props), protect=bool(protect))


def resource_from_args(args: ResourceValidationArgs) -> Resource:
    return _resource(args.resource_type, args.name, args.urn, args.props, args.opts.protect)


def resource_from_policy_resource(r: PolicyResource) -> Resource:
    return _resource(r.resource_type, r.name, r.urn, r.props, r.opts.protect)


def _config(policy_config: Mapping[str, Any], read_stack: StackConfigReader) -> PolicyConfig:
    return PolicyConfig.from_mapping(policy_config, fallback=read_stack)


def _preview_unknown(err: NotKnownYet) -> UnknownValueError:
    # The engine reports this as "can't run policy ... during preview" (advisory).
    return UnknownValueError(UNKNOWN_STRING_VALUE, err.path.split("."))


def _validate_resource(policy: Policy, read_stack: Callable[[], StackConfigReader]) -> Any:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        config = _config(args.get_config(), read_stack())
        try:
            messages = policy.check_resource(resource_from_args(args), config)
        except NotKnownYet as err:
            raise _preview_unknown(err) from err
        for message in messages:
            report_violation(message, None)

    return validate


def _validate_stack(policy: Policy, read_stack: Callable[[], StackConfigReader]) -> Any:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        config = _config(args.get_config(), read_stack())
        resources = [resource_from_policy_resource(r) for r in args.resources]
        try:
            findings = policy.check_stack(resources, config)
        except NotKnownYet as err:
            raise _preview_unknown(err) from err
        for finding in findings:
            report_violation(finding.message, finding.resource.urn if finding.resource else None)

    return validate


def _description(policy: Policy) -> str:
    checkov = ", ".join(policy.checkov) if policy.checkov else "none (no Checkov equivalent)"
    return f"[{policy.pillar}] {policy.description} Checkov: {checkov}."


def pulumi_policies(
    read_stack: Callable[[], StackConfigReader] = stack_config_reader,
) -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """One pulumi_policy object per policy; `read_stack` gives the stack-config fallback."""
    out: list[ResourceValidationPolicy | StackValidationPolicy] = []
    for policy in POLICIES:
        schema = (
            PolicyConfigSchema({k: CONFIG_SCHEMA[k] for k in policy.config_keys})
            if policy.config_keys
            else None
        )
        common: dict[str, Any] = {
            "name": policy.name,
            "description": _description(policy),
            "enforcement_level": ENFORCEMENT,
            "config_schema": schema,
            "severity": PulumiSeverity(policy.severity.value),
            "tags": [policy.pillar.lower().replace(" ", "-"), *policy.checkov],
        }
        if policy.resource_check is not None:
            out.append(
                ResourceValidationPolicy(validate=_validate_resource(policy, read_stack), **common)
            )
        else:
            out.append(
                StackValidationPolicy(validate=_validate_stack(policy, read_stack), **common)
            )
    return out
