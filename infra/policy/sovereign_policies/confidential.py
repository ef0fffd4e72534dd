"""Confidential compute: node data is only ever processed in AMD SEV memory-encrypted VMs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .model import Finding, Policy, PolicyConfig, Resource, Severity
from .props import (
    VM_TYPES,
    batch_job,
    get,
    is_true,
    items,
    known,
    last_segment,
    org_policies,
    org_policy_rules,
)

SEV_TYPES = ("SEV", "SEV_SNP")
CONFIDENTIAL_MACHINE_FAMILIES = ("n2d-", "c2d-")  # AMD EPYC families that run SEV


INSTANCE_GROUP_MANAGERS = (
    "gcp:compute/instanceGroupManager:InstanceGroupManager",
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager",
)


def _group_templates(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    """A managed instance group runs only templates of this project (which this pack checks
    when the stack declares them, and the org policy refuses to be non-confidential)."""
    for i, version in enumerate(items(resource.props.get("versions"), "versions")):
        template = str(known(get(version, "instanceTemplate"), "versions.instanceTemplate") or "")
        path = template.split("/compute/v1/", 1)[-1]
        if not config.project or not path.startswith(f"projects/{config.project}/"):
            yield (
                f"versions[{i}] runs instance template {template or '(unset)'}, not one of "
                f"this project's ({config.project}), which nothing here checks is confidential; "
                "fix: point it at the stack's own Confidential VM template"
            )


def _confidential_vm(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    if resource.type in INSTANCE_GROUP_MANAGERS:
        yield from _group_templates(resource, config)
        return
    if resource.type not in VM_TYPES:
        return
    cic = known(resource.props.get("confidentialInstanceConfig"), "confidentialInstanceConfig")
    cic = cic or {}
    sev = (
        cic.get("enableConfidentialCompute") is True
        or cic.get("confidentialInstanceType") in SEV_TYPES
    )
    if not sev:
        yield (
            "is not a Confidential VM (confidentialInstanceConfig has neither "
            "enableConfidentialCompute nor confidentialInstanceType SEV), so data in memory is "
            "readable by the host; fix: set confidential_instance_config "
            'confidential_instance_type="SEV"'
        )
    machine = last_segment(known(resource.props.get("machineType"), "machineType") or "")
    if not machine.startswith(CONFIDENTIAL_MACHINE_FAMILIES):
        yield (
            f"machine type {machine or '(unset)'} cannot run AMD SEV; fix: use an N2D or C2D "
            "machine type such as n2d-standard-4"
        )


def _shielded_vm(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if resource.type not in VM_TYPES:
        return
    shielded = known(resource.props.get("shieldedInstanceConfig"), "shieldedInstanceConfig") or {}
    off = [
        label
        for key, label in (
            ("enableSecureBoot", "secure boot"),
            ("enableVtpm", "vTPM"),
            ("enableIntegrityMonitoring", "integrity monitoring"),
        )
        if shielded.get(key) is not True
    ]
    if off:
        yield (
            f"shielded VM {', '.join(off)} not enabled; fix: set shielded_instance_config "
            "enable_secure_boot, enable_vtpm and enable_integrity_monitoring to True"
        )


def _batch_job(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    job = batch_job(resource)
    if job is None:
        return
    instances = items(get(job, "allocationPolicy.instances"), "jobJson.allocationPolicy.instances")
    if not instances:
        yield (
            "the Batch job declares no allocationPolicy.instances, so Batch picks ordinary VMs; "
            "fix: give it one instance policy with instanceTemplate set to the node's "
            "Confidential VM template"
        )
    for i, instance in enumerate(instances):
        if not get(instance, "instanceTemplate"):
            yield (
                f"allocationPolicy.instances[{i}] has no instanceTemplate, and Batch has no "
                "confidential-computing field of its own, so its VMs would not be confidential; "
                "fix: set instanceTemplate to the node's Confidential VM template"
            )


RESTRICT_NON_CONFIDENTIAL = "compute.restrictNonConfidentialComputing"
COMPUTE_API = "compute.googleapis.com"


def _confidential_org_policy(
    resources: Sequence[Resource], config: PolicyConfig
) -> Iterator[Finding]:
    policies = org_policies(resources, RESTRICT_NON_CONFIDENTIAL)
    denies = any(
        COMPUTE_API in (known(get(rule, "values.deniedValues"), "spec.rules.values") or [])
        or is_true(rule.get("denyAll"), "spec.rules.denyAll")
        for policy in policies
        for rule in org_policy_rules(policy)
    )
    if not denies:
        yield Finding(
            f"the stack has no {RESTRICT_NON_CONFIDENTIAL} org policy denying {COMPUTE_API}, so "
            "a VM created outside this stack could be non-confidential; fix: declare "
            f"gcp.orgpolicy.Policy .../policies/{RESTRICT_NON_CONFIDENTIAL} with "
            f'values.denied_values=["{COMPUTE_API}"]'
        )


# Metadata keys that open a way in; (key, value that must be set, what it means).
_METADATA = (
    ("serial-port-enable", "FALSE", "opens the interactive serial console"),
    ("enable-oslogin", "TRUE", "lets project-wide SSH keys in instead of OS Login"),
    ("block-project-ssh-keys", "TRUE", "accepts project-wide SSH keys"),
)


def _vm_metadata(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if resource.type not in VM_TYPES:
        return
    metadata = known(resource.props.get("metadata"), "metadata") or {}
    for key, want, risk in _METADATA:
        value = str(metadata.get(key, "")).upper()
        truthy = value in ("TRUE", "1", "YES")
        ok = (not truthy) if want == "FALSE" else truthy
        if not ok:
            yield (
                f"metadata {key}={metadata.get(key, '(unset)')} {risk}; fix: set metadata "
                f'"{key}": "{want}"'
            )


POLICIES = [
    Policy(
        name="confidential-vm-metadata",
        pillar="Confidential compute",
        description=(
            "Every instance template and instance closes the ways into a VM: serial port "
            "off, OS Login on, project-wide SSH keys blocked (metadata)."
        ),
        severity=Severity.HIGH,
        checkov=("CKV_GCP_35", "CKV_GCP_34", "CKV_GCP_32"),
        config_keys=(),
        resource_check=_vm_metadata,
    ),
    Policy(
        name="confidential-vm",
        pillar="Confidential compute",
        description=(
            "Every instance template and instance is a Confidential VM: AMD SEV memory "
            "encryption on an N2D or C2D machine type; every managed instance group runs a "
            "template of this project. Checkov has no such rule."
        ),
        severity=Severity.CRITICAL,
        checkov=(),
        config_keys=("project",),
        resource_check=_confidential_vm,
    ),
    Policy(
        name="confidential-shielded-vm",
        pillar="Confidential compute",
        description=(
            "Every instance template and instance is a Shielded VM with secure boot, vTPM and "
            "integrity monitoring all on."
        ),
        severity=Severity.HIGH,
        checkov=("CKV_GCP_39",),
        config_keys=(),
        resource_check=_shielded_vm,
    ),
    Policy(
        name="confidential-batch-job",
        pillar="Confidential compute",
        description=(
            "Every Batch job runs its VMs from an instance template (the only way Batch can get "
            "Confidential VMs): each allocationPolicy.instances[] sets instanceTemplate."
        ),
        severity=Severity.CRITICAL,
        checkov=(),
        config_keys=(),
        resource_check=_batch_job,
    ),
    Policy(
        name="confidential-org-policy",
        pillar="Confidential compute",
        description=(
            "Every stack (node and hub) declares the compute.restrictNonConfidentialComputing "
            "org policy "
            "denying compute.googleapis.com, so no non-confidential VM can be created at all."
        ),
        severity=Severity.HIGH,
        checkov=(),
        config_keys=(),
        stack_check=_confidential_org_policy,
    ),
]
