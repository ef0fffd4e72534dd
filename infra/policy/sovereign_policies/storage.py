"""Storage: buckets governed by IAM alone, never public, and recoverable."""

from __future__ import annotations

from collections.abc import Iterator

from .model import Policy, PolicyConfig, Resource, Severity
from .props import BQ_DATASET, BQ_TABLE, BUCKET, get, known


def _uniform_access(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if (
        resource.type == BUCKET
        and known(resource.props.get("uniformBucketLevelAccess"), "uniformBucketLevelAccess")
        is not True
    ):
        yield (
            "uses per-object ACLs (uniform bucket-level access is off), which IAM reviews do "
            "not see; fix: set uniform_bucket_level_access=True"
        )


def _public_access_prevention(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if resource.type != BUCKET:
        return
    value = known(resource.props.get("publicAccessPrevention"), "publicAccessPrevention")
    if value != "enforced":
        yield (
            f"public access prevention is {value or 'inherited'}, so a later grant could make "
            'objects public; fix: set public_access_prevention="enforced"'
        )


def _versioning(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if (
        resource.type == BUCKET
        and known(get(resource.props, "versioning.enabled"), "versioning.enabled") is not True
    ):
        yield (
            "object versioning is off, so an overwrite or delete loses data for good; fix: set "
            "versioning.enabled=True"
        )


def _deletion_protection(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    props = resource.props
    if (
        resource.type == BQ_TABLE
        and known(props.get("deletionProtection"), "deletionProtection") is False
    ):
        yield (
            "has deletion protection off, so one `pulumi destroy` or replacement drops patient "
            "data; fix: set deletion_protection=True"
        )
    if resource.type == BUCKET and known(props.get("forceDestroy"), "forceDestroy") is True:
        yield (
            "is force_destroy, so deleting it deletes every object (and version) in it; fix: "
            "set force_destroy=False"
        )
    if (
        resource.type == BQ_DATASET
        and known(props.get("deleteContentsOnDestroy"), "deleteContentsOnDestroy") is True
    ):
        yield (
            "deletes its tables with it (delete_contents_on_destroy); fix: set "
            "delete_contents_on_destroy=False"
        )


POLICIES = [
    Policy(
        name="storage-deletion-protection",
        pillar="Storage",
        description=(
            "No deletion protection is switched off: tables keep deletion_protection, buckets "
            "are not force_destroy, datasets do not delete their contents on destroy."
        ),
        severity=Severity.HIGH,
        checkov=(),
        config_keys=(),
        resource_check=_deletion_protection,
    ),
    Policy(
        name="storage-uniform-access",
        pillar="Storage",
        description="Every bucket has uniform bucket-level access (IAM only, no object ACLs).",
        severity=Severity.HIGH,
        checkov=("CKV_GCP_29",),
        config_keys=(),
        resource_check=_uniform_access,
    ),
    Policy(
        name="storage-public-access-prevention",
        pillar="Storage",
        description="Every bucket enforces public access prevention.",
        severity=Severity.HIGH,
        checkov=("CKV_GCP_114",),
        config_keys=(),
        resource_check=_public_access_prevention,
    ),
    Policy(
        name="storage-versioning",
        pillar="Storage",
        description="Every bucket keeps object versions, so overwrites and deletes can be undone.",
        severity=Severity.MEDIUM,
        checkov=("CKV_GCP_78",),
        config_keys=(),
        resource_check=_versioning,
    ),
]
