"""Encryption: data under our own keys (CMEK), keys that rotate and cannot be deleted."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from .locations import location_allowed
from .model import Finding, Policy, PolicyConfig, Resource, Severity
from .props import (
    AR_REPOSITORY,
    BQ_DATASET,
    BQ_TABLE,
    BUCKET,
    INSTANCE,
    KMS_CRYPTO_KEY,
    LOG_BUCKET,
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


def _external_sources_outside_node(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    """An external table stores no bytes in BigQuery: its rows are the files it reads, so
    those must be the node's own (CMEK, in-region) buckets, `gs://<project>-<purpose>/`."""
    project = config.project or known(resource.props.get("project"), "project")
    external = resource.props.get("externalDataConfiguration") or {}
    for i, uri in enumerate(items(get(external, "sourceUris"), "sourceUris")):
        if not isinstance(uri, str):
            continue  # unknown at preview
        bucket = uri.removeprefix("gs://").split("/", 1)[0] if uri.startswith("gs://") else ""
        if not project or not bucket.startswith(f"{project}-"):
            yield (
                f"external table reads {uri!r} (sourceUris[{i}]), outside the node's own "
                "CMEK buckets; fix: point source_uris at gs://<node project>-<purpose>/..."
            )


def _cmek(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    if resource.type == BQ_TABLE and is_set(resource.props.get("view")):
        return  # a view stores nothing: it reads tables that carry their own keys
    if resource.type == BQ_TABLE and is_set(resource.props.get("externalDataConfiguration")):
        yield from _external_sources_outside_node(resource, config)
        return
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


_KEY_ID = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/keyRings/[^/]+/cryptoKeys/[^/]+$"
)
_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    BQ_DATASET: ("defaultEncryptionConfiguration.kmsKeyName",),
    BQ_TABLE: ("encryptionConfiguration.kmsKeyName",),
    BUCKET: ("encryption.defaultKmsKeyName",),
    AR_REPOSITORY: ("kmsKeyName",),
    PUBSUB_TOPIC: ("kmsKeyName",),
    LOG_BUCKET: ("cmekSettings.kmsKeyName",),
}


def _key_refs(resource: Resource) -> Iterator[tuple[str, Any]]:
    for path in _KEY_FIELDS.get(resource.type, ()):
        yield path, get(resource.props, path)
    if resource.type in TEMPLATE_TYPES:
        for i, disk in enumerate(items(resource.props.get("disks"), "disks")):
            yield (
                f"disks[{i}].diskEncryptionKey.kmsKeySelfLink",
                get(disk, "diskEncryptionKey.kmsKeySelfLink"),
            )


def _resource_locations(resource: Resource) -> list[str]:
    if resource.type == PUBSUB_TOPIC:
        regions = get(resource.props, "messageStoragePolicy.allowedPersistenceRegions")
        return [str(r) for r in items(regions, "messageStoragePolicy")]
    location = resource.props.get("location")
    return [str(known(location, "location"))] if location else []


def _key_placement(resources: Sequence[Resource], config: PolicyConfig) -> Iterator[Finding]:
    """Each CMEK reference names a key of this project (or its key project) in the data's
    own region; global resources (templates) need a key inside the jurisdiction."""
    for resource in resources:
        for path, ref in _key_refs(resource):
            if ref is None:
                continue  # encryption-cmek reports a missing key
            key = str(known(ref, path))
            match = _KEY_ID.match(key)
            if match is None:
                yield Finding(
                    f"{path} is {key!r}, not a Cloud KMS key name; fix: use the key's id "
                    "projects/P/locations/L/keyRings/R/cryptoKeys/K",
                    resource,
                )
                continue
            project, location = match.group("project"), match.group("location")
            if config.key_projects and project not in config.key_projects:
                yield Finding(
                    f"{path} names a key of project {project}, not of this node "
                    f"({', '.join(config.key_projects)}): another project's key admins could "
                    "revoke or read it; fix: use the node's own key",
                    resource,
                )
            data_locations = [loc.lower() for loc in _resource_locations(resource)]
            if data_locations and any(loc != location.lower() for loc in data_locations):
                yield Finding(
                    f"{path} names a key in {location}, but the data lives in "
                    f"{', '.join(data_locations)}; fix: use the key ring in the data's region",
                    resource,
                )
            elif (
                not data_locations
                and config.allowed_locations
                and not location_allowed(location, config.allowed_locations)
            ):
                yield Finding(
                    f"{path} names a key in {location}, outside the jurisdiction; fix: use "
                    "the node's regional key",
                    resource,
                )


def _key_hsm(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if resource.type != KMS_CRYPTO_KEY or not _symmetric(resource):
        return
    level = known(get(resource.props, "versionTemplate.protectionLevel"), "versionTemplate")
    if level != "HSM":
        yield (
            f"protection level is {level or 'unset (SOFTWARE)'}; a node's data keys live in "
            'Cloud HSM; fix: set version_template protection_level="HSM"'
        )


SIGNING_ROLES = frozenset({"roles/cloudkms.signerVerifier", "roles/cloudkms.publicKeyViewer"})


def _signing_key(resources: Sequence[Resource], config: PolicyConfig) -> Iterator[Finding]:
    if not config.is_node:
        return
    if not (config.signing_key_name and config.signing_algorithm and config.federation_identity):
        yield Finding(
            "the federation signing key's name, algorithm or worker identity is not "
            "configured; fix: pass the pack config (python -m infra.policy.config <stack>)"
        )
        return
    keys = [
        r
        for r in resources
        if r.type == KMS_CRYPTO_KEY
        and known(r.props.get("name"), "name") == config.signing_key_name
    ]
    if not keys:
        yield Finding(
            f"the node declares no Cloud KMS key {config.signing_key_name!r}, so federation "
            "messages cannot be signed by a key that never leaves KMS; fix: declare it "
            f"(purpose ASYMMETRIC_SIGN, algorithm {config.signing_algorithm})"
        )
    # The signer: the attested worker image when deployed; until then nobody.
    worker = config.attested_worker
    for key in keys:
        purpose = known(key.props.get("purpose"), "purpose")
        algorithm = known(get(key.props, "versionTemplate.algorithm"), "versionTemplate")
        if purpose != "ASYMMETRIC_SIGN" or algorithm != config.signing_algorithm:
            yield Finding(
                f"is purpose {purpose} algorithm {algorithm}; fix: purpose ASYMMETRIC_SIGN, "
                f"algorithm {config.signing_algorithm} (what every verifier expects)",
                key,
            )
        key_id = (
            f"{known(key.props.get('keyRing'), 'keyRing')}/cryptoKeys/{config.signing_key_name}"
        )
        granted: set[str] = set()
        for grant in (r for r in resources if r.type.startswith("gcp:kms/cryptoKeyIAM")):
            if known(grant.props.get("cryptoKeyId"), "cryptoKeyId") != key_id:
                continue
            from .identity import grants

            for role, member in grants(grant):
                if worker is None or member != worker or role not in SIGNING_ROLES:
                    only = worker or "nobody (the worker is not deployed: no workerImageDigest)"
                    yield Finding(
                        f"grants {role} on the signing key to {member}; only {only} may "
                        f"hold {', '.join(sorted(SIGNING_ROLES))}; fix: remove the grant",
                        grant,
                    )
                else:
                    granted.add(role)
        if worker is not None and granted != SIGNING_ROLES and keys:
            yield Finding(
                f"the federation worker lacks {', '.join(sorted(SIGNING_ROLES - granted))} on "
                "the signing key, so it cannot sign; fix: grant both roles on the key",
                key,
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
    Policy(
        name="encryption-key-placement",
        pillar="Encryption",
        description=(
            "Every CMEK reference (dataset, table, bucket, repository, topic, log bucket, "
            "template disk) names a key of this project or its configured key project, in the "
            "data's own region (global resources: inside the jurisdiction)."
        ),
        severity=Severity.HIGH,
        checkov=(),
        config_keys=("project", "keyProject", "allowedLocations"),
        stack_check=_key_placement,
    ),
    Policy(
        name="encryption-key-hsm",
        pillar="Encryption",
        description="Every symmetric (data) key is protected in Cloud HSM (protection level HSM).",
        severity=Severity.MEDIUM,
        checkov=(),
        config_keys=(),
        resource_check=_key_hsm,
    ),
    Policy(
        name="encryption-signing-key",
        pillar="Encryption",
        description=(
            "A node declares the federation signing key (purpose ASYMMETRIC_SIGN, the "
            "contract's algorithm), and only its attested worker image (the principalSet of "
            "its digest, once deployed; nobody before) may sign with it or read its public key "
            "(signerVerifier, publicKeyViewer on the key)."
        ),
        severity=Severity.HIGH,
        checkov=(),
        config_keys=(
            "role", "federationIdentity", "signingKeyName", "signingAlgorithm", "attestedWorker"
        ),
        stack_check=_signing_key,
    ),
]
