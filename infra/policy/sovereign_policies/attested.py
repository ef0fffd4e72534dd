"""The federation services: the node's worker on Confidential Space, attested, and the
hub's coordinator job with its results bucket (issue 16)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .locations import location_allowed
from .model import Finding, Policy, PolicyConfig, Resource, Severity
from .props import VM_TYPES, get, items, known, module_of

CONFIDENTIAL_SPACE_PROJECT = "projects/confidential-space-images/"
CONFIDENTIAL_SPACE_IMAGE = (
    "projects/confidential-space-images/global/images/family/confidential-space"
)
ATTESTATION_ISSUER = "https://confidentialcomputing.googleapis.com/"
POOL_PROVIDER = "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider"
RUN_JOB = "gcp:cloudrunv2/job:Job"
LEDGER_DATASET = "federation_ledger"  # workloads.contracts.federation_service.LEDGER_DATASET
# (role, where) the attested image may hold; where = resource type family.
ATTESTED_ROLES: frozenset[tuple[str, str]] = frozenset(
    {
        ("roles/bigquery.dataViewer", "dataset"),
        ("roles/bigquery.dataEditor", "ledger"),
        ("roles/bigquery.jobUser", "project"),
        ("roles/cloudkms.signerVerifier", "kms"),
        ("roles/cloudkms.publicKeyViewer", "kms"),
    }
)
WORKER_VM_ROLES = frozenset({"roles/confidentialcomputing.workloadUser", "roles/logging.logWriter"})
# The clauses of Google's Confidential Space attestation policy every provider must have.
REQUIRED_CLAUSES = (
    "assertion.swname == 'CONFIDENTIAL_SPACE'",
    "'STABLE' in assertion.submods.confidential_space.support_attributes",
)
_IMAGE = re.compile(
    r"^(?P<region>[a-z]+-[a-z]+[0-9]+)-docker\.pkg\.dev/(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])"
    r"/[a-z0-9._-]+/[a-z0-9._/-]+@(?P<digest>sha256:[0-9a-f]{64})$"
)


def _metadata(resource: Resource) -> Mapping[str, Any]:
    value = known(resource.props.get("metadata"), "metadata")
    return value if isinstance(value, Mapping) else {}


def _is_tee(resource: Resource) -> bool:
    return resource.type in VM_TYPES and "tee-image-reference" in _metadata(resource)


def _boot_images(resource: Resource) -> list[str]:
    out = []
    for disk in items(resource.props.get("disks"), "disks"):
        if isinstance(disk, Mapping) and disk.get("boot"):
            out.append(str(known(disk.get("sourceImage"), "disks.sourceImage") or ""))
    boot = get(resource.props, "bootDisk.initializeParams.image")
    if boot:
        out.append(str(known(boot, "bootDisk.initializeParams.image")))
    return out


def _confidential_space_image(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if resource.type not in VM_TYPES:
        return
    images = _boot_images(resource)
    from_space = [i for i in images if CONFIDENTIAL_SPACE_PROJECT in i]
    if not _is_tee(resource) and not from_space:
        return
    for image in images:
        if image != CONFIDENTIAL_SPACE_IMAGE:
            yield (
                f"runs a Confidential Space workload from boot image {image or '(unset)'}; only "
                "Google's hardened production family attests as STABLE and keeps the operator "
                f"out (the debug family lets one in); fix: boot from {CONFIDENTIAL_SPACE_IMAGE}"
            )
    if not images:
        yield f"declares no boot image; fix: boot from {CONFIDENTIAL_SPACE_IMAGE}"


def _image_problems(
    image: str, config: PolicyConfig, digest: str | None, what: str
) -> Iterator[str]:
    match = _IMAGE.match(image)
    if match is None:
        yield (
            f"{what} {image!r} is not <region>-docker.pkg.dev/<project>/<repo>/<image>@sha256:"
            "<digest>: a tag can be moved to other bytes after review; fix: name the image by "
            "digest (workloads.contracts.federation_service.image_by_digest)"
        )
        return
    if match["project"] != config.project or not location_allowed(
        match["region"], config.allowed_locations
    ):
        yield (
            f"{what} {image!r} comes from {match['region']}/{match['project']}, not from this "
            f"project's own registry in its region; fix: push it to {config.project}'s "
            "Artifact Registry and name that"
        )
    if digest is not None and match["digest"] != digest:
        yield (
            f"{what} runs digest {match['digest']}, not the reviewed {digest}; fix: set the "
            "digest in the stack file and nothing else"
        )


def _workload_image(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    if _is_tee(resource):
        image = str(known(_metadata(resource)["tee-image-reference"], "metadata"))
        yield from _image_problems(image, config, config.worker_image_digest, "tee-image-reference")


def _principal_sets(resource: Resource) -> list[tuple[str, str]]:
    from .identity import grants, is_iam
    from .props import BQ_DATASET, BQ_DATASET_ACCESS

    if not (is_iam(resource) or resource.type in (BQ_DATASET, BQ_DATASET_ACCESS)):
        return []
    return [(r, m) for r, m in grants(resource) if m.startswith(("principalSet:", "principal:"))]


def _where(resource: Resource) -> str:
    module = module_of(resource.type)
    if module == "bigquery":
        dataset = str(known(resource.props.get("datasetId"), "datasetId") or "")
        return "ledger" if dataset == LEDGER_DATASET else "dataset"
    if module == "projects":
        return "project"
    return module


def _attested_worker(resources: Sequence[Resource], config: PolicyConfig) -> Iterator[Finding]:
    if not config.is_node:
        return
    expected = config.attested_worker
    own_pools = f"//iam.googleapis.com/projects/{config.project_number}/locations/global/"
    for resource in resources:
        for role, member in _principal_sets(resource):
            if own_pools not in member:
                continue  # another project's identity: identity-principal-classes
            if expected is None or member != expected:
                yield Finding(
                    f"grants {role} to {member}; only the attested worker image may be named "
                    f"({expected or 'none: the worker is not deployed'}), a principalSet bound "
                    "to its digest, never the whole pool or another pool; fix: grant "
                    "attested_principal_set(project number, digest)",
                    resource,
                )
            elif (role, _where(resource)) not in ATTESTED_ROLES:
                yield Finding(
                    f"grants {role} on a {_where(resource)} to the attested worker, which may "
                    "hold only dataViewer on the domain datasets, dataEditor on the ledger, "
                    "jobUser on the project and the signing roles on its key; fix: remove it",
                    resource,
                )
    providers = [r for r in resources if r.type == POOL_PROVIDER]
    tees = [r for r in resources if _is_tee(r)]
    if tees and not providers:
        yield Finding(
            "runs a Confidential Space worker but declares no workload identity provider "
            "trusting its attestation; fix: declare the pool and provider (FederationWorker)"
        )
    digests = {  # the images run, when the stack file names no digest
        m["digest"] for r in tees if (m := _IMAGE.match(str(_metadata(r)["tee-image-reference"])))
    }
    for provider in providers:
        issuer = known(get(provider.props, "oidc.issuerUri"), "oidc.issuerUri")
        condition = str(known(provider.props.get("attributeCondition"), "attributeCondition") or "")
        problems = []
        if issuer != ATTESTATION_ISSUER:
            problems.append(f"trusts issuer {issuer!r}, not {ATTESTATION_ISSUER}")
        problems += [f"lacks `{c}`" for c in REQUIRED_CLAUSES if c not in condition]
        pinned = [config.worker_image_digest] if config.worker_image_digest else sorted(digests)
        for digest in pinned:
            clause = f"assertion.submods.container.image_digest == '{digest}'"
            if clause not in condition:
                problems.append(f"does not pin the worker's digest (`{clause}`)")
        project_clause = f"assertion.submods.gce.project_id == '{config.project}'"
        if project_clause not in condition:
            problems.append(f"does not pin the VM's project (`{project_clause}`)")
        if problems:
            yield Finding(
                f"{'; '.join(problems)}: any VM running that image anywhere, or a debug image, "
                "would get the node's data and key; fix: the attribute condition of "
                "infra/federation_worker.attribute_condition",
                provider,
            )
    # The worker VM's own account: only what Confidential Space needs (+ reading its image).
    accounts = {
        f"serviceAccount:{known(get(r.props, 'serviceAccount.email'), 'serviceAccount')}"
        for r in tees
    }
    from .identity import grants

    for resource in resources:
        if module_of(resource.type) != "projects" or not resource.type.endswith("IAMMember"):
            continue
        for role, member in grants(resource):
            if member in accounts and role not in WORKER_VM_ROLES:
                yield Finding(
                    f"grants {role} on the project to the worker VM's account {member}, which "
                    "any VM wearing it would hold; fix: grant data and key access to the "
                    "attested image's principalSet, and the account only "
                    f"{', '.join(sorted(WORKER_VM_ROLES))}",
                    resource,
                )


def _coordinator_job(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    if resource.type != RUN_JOB:
        return
    template = get(resource.props, "template.template") or {}
    if not known(get(template, "encryptionKey"), "template.template.encryptionKey"):
        yield (
            "has no customer-managed key (template.template.encryptionKey), so its image copy "
            "is under a Google-managed key; fix: set encryption_key to the hub's run key"
        )
    account = str(known(get(template, "serviceAccount"), "serviceAccount") or "")
    if config.coordinator_identity and account != config.coordinator_identity:
        yield (
            f"runs as {account or 'the default compute account'}, not as "
            f"{config.coordinator_identity}; fix: set template.template.service_account"
        )
    for i, container in enumerate(
        items(get(resource.props, "template.template.containers"), "template")
    ):
        image = str(known(get(container, "image"), "containers.image") or "")
        yield from _image_problems(image, config, None, f"container {i} image")


_WHAT = {"results": "results bucket", "specs": "specs bucket", "cloudrunv2": "coordinator job"}


def _coordinator_access(resources: Sequence[Resource], config: PolicyConfig) -> Iterator[Finding]:
    if config.is_node:
        return
    from .identity import grants, is_iam

    group = f"group:{config.researchers_group}" if config.researchers_group else None
    coordinator = (
        f"serviceAccount:{config.coordinator_identity}" if config.coordinator_identity else None
    )
    allowed = {
        "cloudrunv2": {(group, "roles/run.jobsExecutorWithOverrides")},
        "results": {
            (coordinator, "roles/storage.objectCreator"),
            (group, "roles/storage.objectViewer"),
        },
        "specs": {
            (group, "roles/storage.objectCreator"),
            (group, "roles/storage.objectViewer"),
            (coordinator, "roles/storage.objectViewer"),
        },
    }
    for resource in resources:
        if not is_iam(resource):
            continue
        module = module_of(resource.type)
        if module == "storage":
            bucket = str(known(resource.props.get("bucket"), "bucket") or "")
            if bucket == config.results_bucket:
                kind = "results"
            elif bucket == config.specs_bucket:
                kind = "specs"
            else:
                continue
        elif module == "cloudrunv2":
            kind = "cloudrunv2"
        else:
            continue
        for role, member in grants(resource):
            if (member, role) not in allowed[kind]:
                want = sorted(f"{r} to {m}" for m, r in allowed[kind] if m)
                yield Finding(
                    f"grants {role} to {member}; the "
                    f"{_WHAT[kind]} "
                    f"admits only {'; '.join(want)} (write-once results, run by the named "
                    "group); fix: remove the grant",
                    resource,
                )
    for stored in resources:
        if stored.type != "gcp:storage/bucket:Bucket":
            continue
        if known(stored.props.get("name"), "name") != config.results_bucket:
            continue
        period = known(get(stored.props, "retentionPolicy.retentionPeriod"), "retentionPolicy")
        if not period or int(period) < 365 * 24 * 3600:
            yield Finding(
                f"keeps released results under a retention of {period or 'none'} s, so a "
                "release can be deleted or replaced; fix: retention_policy of at least a year "
                "(the stack sets ten)",
                stored,
            )


POLICIES = [
    Policy(
        name="confidential-space-image",
        pillar="Confidential compute",
        description=(
            "Every VM that runs a Confidential Space workload (tee-image-reference) or boots "
            "from confidential-space-images boots Google's hardened production family "
            "`confidential-space`, never the debug family."
        ),
        severity=Severity.CRITICAL,
        checkov=(),
        config_keys=(),
        resource_check=_confidential_space_image,
    ),
    Policy(
        name="confidential-space-workload-image",
        pillar="Confidential compute",
        description=(
            "The worker's tee-image-reference is an image by digest from the node's own "
            "Artifact Registry in its region, the digest in the stack file."
        ),
        severity=Severity.CRITICAL,
        checkov=(),
        config_keys=("project", "allowedLocations", "workerImageDigest"),
        resource_check=_workload_image,
    ),
    Policy(
        name="identity-attested-worker",
        pillar="Identity",
        description=(
            "A node grants data and key access only to the attested worker image (the "
            "principalSet of its digest in the node's own pool), with exactly its roles; the "
            "pool's provider trusts only Confidential Space tokens (issuer, swname, STABLE "
            "support attribute, the digest, the node's project); the worker VM's account "
            "holds only workloadUser and logWriter on the project."
        ),
        severity=Severity.CRITICAL,
        checkov=(),
        config_keys=("role", "project", "attestedWorker", "workerImageDigest"),
        stack_check=_attested_worker,
    ),
    Policy(
        name="hub-coordinator-job",
        pillar="Sovereignty",
        description=(
            "The coordinator's Cloud Run job runs under a customer-managed key, as the "
            "coordinator's own account, from the hub's own registry by digest."
        ),
        severity=Severity.HIGH,
        checkov=(),
        config_keys=("project", "allowedLocations", "coordinatorIdentity"),
        resource_check=_coordinator_job,
    ),
    Policy(
        name="hub-coordinator-access",
        pillar="Sovereignty",
        description=(
            "Only the named researchers' group may run the coordinator job (with overrides); "
            "the results bucket admits only the coordinator creating objects and that group "
            "reading them, and keeps every release under a retention policy of a year or more; "
            "the specs bucket admits that group creating and reading, the coordinator reading."
        ),
        severity=Severity.HIGH,
        checkov=(),
        config_keys=(
            "role",
            "researchersGroup",
            "coordinatorIdentity",
            "resultsBucket",
            "specsBucket",
        ),
        stack_check=_coordinator_access,
    ),
]
