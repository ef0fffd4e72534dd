"""Each stack as Terraform plan JSON, so Checkov (and any Terraform scanner) can judge it.

pulumi-gcp is bridged from terraform-provider-google: every `gcp:` resource is one
Terraform resource. The type token names it (`gcp:storage/bucket:Bucket` ->
`google_storage_bucket`), camelCase inputs become snake_case attributes, nested objects
become one-element block lists, and the few inputs Pulumi pluralises take back their
Terraform block name (`allows` -> `allow`). Maps (labels, metadata) keep their keys.
Resources that are not Terraform's (components, the stack, the dynamic Batch job, the
provider) are left out; the plan says how many.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from infra.capture import CapturedResource

FORMAT_VERSION = "1.2"
TERRAFORM_VERSION = "1.9.8"
PROVIDER = "registry.terraform.io/hashicorp/google"

# Pulumi module -> Terraform's resource prefix, where they differ.
_MODULES = {
    "projects": "project",
    "artifactregistry": "artifact_registry",
    "orgpolicy": "org_policy",
    "accesscontextmanager": "access_context_manager",
    "serviceaccount": "service_account",
    "cloudrunv2": "cloud_run_v2",
}
# Whole type tokens Terraform names differently from the rule.
_TYPES = {"gcp:serviceaccount/account:Account": "google_service_account"}
# Inputs Pulumi names in the plural (or otherwise) where Terraform has a block name.
_RENAMED = {
    "accesses": "access",
    "allows": "allow",
    "denies": "deny",
    "clusterings": "clustering",
    "auditLogConfigs": "audit_log_config",
    "networkInterfaces": "network_interface",
    "accessConfigs": "access_config",
    "ipv6AccessConfigs": "ipv6_access_config",
    "disks": "disk",
    "attachedDisks": "attached_disk",
    "scratchDisks": "scratch_disk",
    "guestAccelerators": "guest_accelerator",
    "envs": "env",  # Cloud Run v2 container env blocks
    "versions": "version",  # instance group manager versions
}
# Inputs that are maps in Terraform (their keys are data, not attribute names).
_MAPS = frozenset({"labels", "metadata", "resourceLabels", "userLabels", "params", "tags"})
# Inputs that are JSON strings in both (kept verbatim).
_STRINGS = frozenset({"schema", "policyData", "jobJson"})


def snake(name: str) -> str:
    name = name.replace("iAM", "Iam").replace("IAM", "Iam")
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def terraform_type(type_token: str) -> str | None:
    """`gcp:storage/bucket:Bucket` -> `google_storage_bucket`; None if not a gcp resource."""
    if type_token in _TYPES:
        return _TYPES[type_token]
    parts = type_token.split(":")
    if len(parts) != 3 or parts[0] != "gcp":
        return None
    module = parts[1].split("/")[0]
    return f"google_{_MODULES.get(module, module)}_{snake(parts[2])}"


def _attribute(key: str) -> str:
    return _RENAMED.get(key, snake(key))


def _value(key: str, value: Any) -> Any:
    if key in _MAPS or key in _STRINGS:
        return value
    if isinstance(value, Mapping):
        return [_attributes(value)]  # a nested block: a list of one
    if isinstance(value, list):
        return [_attributes(v) if isinstance(v, Mapping) else v for v in value]
    return value


def _attributes(inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        _attribute(k): _value(k, v) for k, v in sorted(inputs.items()) if not k.startswith("__")
    }


def _address_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _outputs_to_addresses(resources: Sequence[CapturedResource]) -> dict[str, str]:
    """Each computed id / self link / name a resource would have -> its plan address.

    Pulumi passes outputs between resources; Terraform's plan records those as references
    in its `configuration`, which is how Checkov's graph checks connect resources (a
    firewall to its network, a grant to its key)."""
    from infra import mock_outputs

    out: dict[str, str] = {}
    for r in resources:
        tf_type = terraform_type(r.type)
        if tf_type is None:
            continue
        _id, state = mock_outputs.for_resource(r.type, r.name, dict(r.inputs))
        for key in ("id", "selfLink", "name", "email"):
            value = state.get(key)
            if isinstance(value, str) and value:
                out.setdefault(value, f"{tf_type}.{_address_name(r.name)}")
    return out


def _references(inputs: Mapping[str, Any], targets: Mapping[str, str], own: str) -> dict[str, Any]:
    expressions: dict[str, Any] = {}
    for key, value in inputs.items():
        if isinstance(value, str) and targets.get(value) not in (None, own):
            target = targets[value]
            expressions[_attribute(key)] = {"references": [f"{target}.id", target]}
    return expressions


def plan(stack: str, resources: Sequence[CapturedResource]) -> dict[str, Any]:
    """`terraform show -json` shaped plan of every gcp resource of a captured stack, with
    the Checkov findings it accepts (infra/checkov_skips.py) listed for the reader."""
    from infra.checkov_skips import SKIPS, covers

    planned: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    configured: list[dict[str, Any]] = []
    targets = _outputs_to_addresses(resources)
    skipped = 0
    for r in resources:
        tf_type = terraform_type(r.type)
        if tf_type is None:
            skipped += 1
            continue
        values = _attributes(r.inputs)
        address = f"{tf_type}.{_address_name(r.name)}"
        configured.append(
            {
                "address": address,
                "mode": "managed",
                "type": tf_type,
                "name": _address_name(r.name),
                "provider_config_key": "google",
                "expressions": _references(r.inputs, targets, address),
            }
        )
        planned.append(
            {
                "address": address,
                "mode": "managed",
                "type": tf_type,
                "name": _address_name(r.name),
                "provider_name": PROVIDER,
                "schema_version": 0,
                "values": values,
            }
        )
        changes.append(
            {
                "address": address,
                "mode": "managed",
                "type": tf_type,
                "name": _address_name(r.name),
                "provider_name": PROVIDER,
                "change": {"actions": ["create"], "before": None, "after": values},
            }
        )
    return {
        "format_version": FORMAT_VERSION,
        "terraform_version": TERRAFORM_VERSION,
        "variables": {"pulumi_stack": {"value": stack}},
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {
            "provider_config": {"google": {"name": "google"}},
            "root_module": {"resources": configured},
        },
        # Not Terraform resources (components, the stack, providers, the dynamic Batch job).
        "pulumi_resources_not_in_plan": skipped,
        "checkov_skips": [
            {"address": c["address"], "check": check, "reason": reason}
            for c in changes
            for (target, check), reason in sorted(SKIPS.items())
            if covers((target, check), c["address"], check)
        ],
    }
