"""Encryption: data under our own keys (CMEK), keys that rotate and cannot be deleted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .model import Policy, PolicyConfig, Resource, Severity
from .props import (
    AR_REPOSITORY,
    BQ_DATASET,
    BQ_TABLE,
    BUCKET,
    INSTANCE,
    KMS_CRYPTO_KEY,
    PUBSUB_TOPIC,
    TEMPLATE_TYPES,
    get,
    is_set,
    items,
    known,
)

# Where each data-bearing resource names its customer-managed key, and the SDK argument.
_CMEK_FIELD: dict[str, tuple[str, str]] = {
    BQ_DATASET: ("defaultEncryptionConfiguration.kmsKeyName", "default_encryption_configuration"),
    BQ_TABLE: ("encryptionConfiguration.kmsKeyName", "encryption_configuration"),
    BUCKET: ("encryption.defaultKmsKeyName", "encryption.default_kms_key_name"),
    AR_REPOSITORY: ("kmsKeyName", "kms_key_name"),
    PUBSUB_TOPIC: ("kmsKeyName", "kms_key_name"),
}


def _cmek(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    field = _CMEK_FIELD.get(resource.type)
    if field is not None:
        path, argument = field
        if not is_set(get(resource.props, path)):
            yield (
                f"data is not under a customer-managed key ({path} is not set); "
                f"fix: set {argument} to the node's Cloud KMS key for this service"
            )
    elif resource.type in TEMPLATE_TYPES:
        for i, disk in enumerate(items(resource.props.get("disks"), "disks")):
            if not is_set(get(disk, "diskEncryptionKey.kmsKeySelfLink")):
                yield (
                    f"disk {i} is not under a customer-managed key "
                    f"(disks[{i}].diskEncryptionKey.kmsKeySelfLink is not set); fix: set "
                    "disks[].disk_encryption_key.kms_key_self_link to the compute key"
                )
    elif resource.type == INSTANCE:
        if not is_set(get(resource.props, "bootDisk.kmsKeySelfLink")):
            yield (
                "boot disk is not under a customer-managed key (bootDisk.kmsKeySelfLink is not "
                "set); fix: set boot_disk.kms_key_self_link to the compute key"
            )
        for i, disk in enumerate(items(resource.props.get("attachedDisks"), "attachedDisks")):
            if not is_set(get(disk, "kmsKeySelfLink")):
                yield (
                    f"attached disk {i} is not under a customer-managed key; "
                    "fix: set attached_disks[].kms_key_self_link to the compute key"
                )


MIN_ROTATION_S = 86_400  # 1 day: the shortest rotation Cloud KMS accepts
MAX_ROTATION_S = 90 * 86_400  # 90 days (CIS GCP 1.10, Checkov CKV_GCP_43)
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)s$")


def _symmetric(resource: Resource) -> bool:
    purpose = known(resource.props.get("purpose"), "purpose")
    return purpose in (None, "", "ENCRYPT_DECRYPT")  # asymmetric keys cannot auto-rotate


def _rotation(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if resource.type != KMS_CRYPTO_KEY or not _symmetric(resource):
        return
    period: Any = known(resource.props.get("rotationPeriod"), "rotationPeriod")
    match = _DURATION.match(str(period)) if period else None
    if match is None:
        yield (
            f"rotation period is {period!r}, so the key never rotates automatically; "
            'fix: set rotation_period between "86400s" (1 day) and "7776000s" (90 days)'
        )
        return
    seconds = float(match.group(1))
    if not MIN_ROTATION_S <= seconds <= MAX_ROTATION_S:
        yield (
            f"rotation period {period} ({seconds / 86_400:g} days) is outside 1..90 days; "
            'fix: set rotation_period between "86400s" and "7776000s"'
        )


def _protected(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if resource.type != KMS_CRYPTO_KEY:
        return
    if not resource.protect:
        yield (
            "is not protected, so `pulumi destroy` or a replacement would delete it and make "
            "all data under it unreadable; fix: declare it with ResourceOptions(protect=True)"
        )
    policy = known(resource.props.get("deletionPolicy"), "deletionPolicy")
    if policy != "PREVENT":
        yield (
            f"deletion_policy is {policy or 'unset (DELETE)'}, so the provider would destroy "
            'its versions; fix: set deletion_policy="PREVENT"'
        )


POLICIES = [
    Policy(
        name="encryption-cmek",
        pillar="Encryption",
        description=(
            "Every BigQuery dataset and table, Cloud Storage bucket, Artifact Registry "
            "repository, Pub/Sub topic and VM disk (instance template or instance) names a "
            "customer-managed Cloud KMS key, so Google-managed keys never protect node data."
        ),
        severity=Severity.HIGH,
        checkov=("CKV_GCP_81", "CKV_GCP_80", "CKV_GCP_5", "CKV_GCP_84", "CKV_GCP_83", "CKV_GCP_38"),
        config_keys=(),
        resource_check=_cmek,
    ),
    Policy(
        name="encryption-key-rotation",
        pillar="Encryption",
        description=(
            "Every symmetric Cloud KMS key rotates automatically, at least every 90 days and "
            "at most every day."
        ),
        severity=Severity.MEDIUM,
        checkov=("CKV_GCP_43",),
        config_keys=(),
        resource_check=_rotation,
    ),
    Policy(
        name="encryption-key-protected",
        pillar="Encryption",
        description=(
            "Every Cloud KMS key is protected from deletion twice: the Pulumi protect option "
            "(the engine refuses to delete it) and deletion_policy PREVENT (the provider refuses)."
        ),
        severity=Severity.HIGH,
        checkov=("CKV_GCP_82",),
        config_keys=(),
        resource_check=_protected,
    ),
]
