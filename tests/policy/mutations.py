"""Break one thing in a real captured stack; the policies that must report it, and only those.

Each Mutation edits a copy of a stack (never the capture itself) and names the policies it
must trip. A mutation whose target the stack does not declare is "not applicable" there
(e.g. no Batch job in the hub); the tests check that every policy is still broken by at
least one applicable mutation on the real stacks.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from infra.capture import capture_stack
from infra.policy.config import config_for_stack
from infra.policy.sovereign_policies import POLICIES, PolicyConfig, Resource, Violation, evaluate
from infra.policy.sovereign_policies import props as p
from infra.policy.sovereign_policies.model import resource_from

Stack = list[Resource]
OUTSIDE_REGION = "asia-southeast1"  # inside no configured jurisdiction (us, eu, hub)


class NotApplicable(Exception):  # noqa: N818 (a verdict, not a failure)
    """The stack declares nothing this mutation could break."""


@dataclass(frozen=True)
class Mutation:
    name: str
    expected: frozenset[str]
    apply: Callable[[Stack], tuple[Stack, Resource | None]]  # (mutated, the resource changed)


def _find(stack: Stack, match: Callable[[Resource], bool], what: str) -> int:
    for i, r in enumerate(stack):
        if match(r):
            return i
    raise NotApplicable(what)


def edit(
    type_: str | Callable[[Resource], bool], change: Callable[[dict[str, Any]], None]
) -> Callable[[Stack], tuple[Stack, Resource]]:
    """Change the props of the first resource of a type (or matching a predicate)."""

    def apply(stack: Stack) -> tuple[Stack, Resource]:
        match = type_ if callable(type_) else (lambda r: r.type == type_)
        i = _find(stack, match, type_ if isinstance(type_, str) else "a matching resource")
        props = copy.deepcopy(dict(stack[i].props))
        change(props)
        changed = replace(stack[i], props=props)
        return [*stack[:i], changed, *stack[i + 1 :]], changed

    return apply


def unprotect(type_: str) -> Callable[[Stack], tuple[Stack, Resource]]:
    def apply(stack: Stack) -> tuple[Stack, Resource]:
        i = _find(stack, lambda r: r.type == type_, type_)
        changed = replace(stack[i], protect=False)
        return [*stack[:i], changed, *stack[i + 1 :]], changed

    return apply


def drop(match: Callable[[Resource], bool], what: str) -> Callable[[Stack], tuple[Stack, None]]:
    def apply(stack: Stack) -> tuple[Stack, None]:
        kept = [r for r in stack if not match(r)]
        if len(kept) == len(stack):
            raise NotApplicable(what)
        return kept, None

    return apply


def add(
    type_: str, name: str, props: Mapping[str, Any], *, needs: str | None = None
) -> Callable[[Stack], tuple[Stack, Resource]]:
    """Declare one more resource (only in stacks that declare a `needs` type, if given)."""

    def apply(stack: Stack) -> tuple[Stack, Resource]:
        if needs is not None:
            _find(stack, lambda r: r.type == needs, needs)
        root = stack[0].urn.split("::")
        urn = f"{root[0]}::{root[1]}::{type_}::{name}"
        added = Resource(type=type_, name=name, urn=urn, props=dict(props))
        return [*stack, added], added

    return apply


def org_policy(constraint: str) -> Callable[[Resource], bool]:
    return lambda r: p.org_policy_constraint(r) == constraint


def _is_batch_job(r: Resource) -> bool:
    return p.batch_job(r) is not None


def edit_job(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def on_props(props: dict[str, Any]) -> None:
        job = json.loads(props["jobJson"])
        change(job)
        props["jobJson"] = json.dumps(job)

    return on_props


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set a dotted path (creating mappings on the way); value None deletes the key."""

    def change(props: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = props
        for key in parents:
            target = target.setdefault(key, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value

    return change


def _perimeter_block(props: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = props["spec"] if props.get("useExplicitDryRunSpec") else props["status"]
    return block


def _perimeter(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda props: change(_perimeter_block(props))


def _drop_service(service: str) -> Callable[[dict[str, Any]], None]:
    def change(block: dict[str, Any]) -> None:
        block["restrictedServices"] = [s for s in block["restrictedServices"] if s != service]

    return change


def _egress(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return _perimeter(lambda block: change(block["egressPolicies"][0]))


def _first_disk(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda props: change(props["disks"][0])


def _first_nic(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda props: change(props["networkInterfaces"][0])


def _widen_locations(props: dict[str, Any]) -> None:
    props["spec"]["rules"][0]["values"]["allowedValues"].append(f"in:{OUTSIDE_REGION}-locations")


def _one(*names: str) -> frozenset[str]:
    return frozenset(names)


CMEK = _one("encryption-cmek")
LOCATION = _one("sovereignty-resource-location")
CONFIDENTIAL = _one("confidential-vm")

MUTATIONS: tuple[Mutation, ...] = (
    # Encryption
    Mutation(
        "drop a dataset's key",
        CMEK,
        edit(p.BQ_DATASET, _set("defaultEncryptionConfiguration", None)),
    ),
    Mutation("drop a table's key", CMEK, edit(p.BQ_TABLE, _set("encryptionConfiguration", None))),
    Mutation("drop a bucket's key", CMEK, edit(p.BUCKET, _set("encryption", None))),
    Mutation("drop the repository's key", CMEK, edit(p.AR_REPOSITORY, _set("kmsKeyName", None))),
    Mutation("drop a topic's key", CMEK, edit(p.PUBSUB_TOPIC, _set("kmsKeyName", None))),
    Mutation(
        "drop a template disk's key",
        CMEK,
        edit(p.INSTANCE_TEMPLATE, _first_disk(_set("diskEncryptionKey", None))),
    ),
    Mutation(
        "lengthen rotation to 365 days",
        _one("encryption-key-rotation"),
        edit(p.KMS_CRYPTO_KEY, _set("rotationPeriod", "31536000s")),
    ),
    Mutation(
        "remove rotation",
        _one("encryption-key-rotation"),
        edit(p.KMS_CRYPTO_KEY, _set("rotationPeriod", None)),
    ),
    Mutation("unprotect a key", _one("encryption-key-protected"), unprotect(p.KMS_CRYPTO_KEY)),
    Mutation(
        "key deletion_policy DELETE",
        _one("encryption-key-protected"),
        edit(p.KMS_CRYPTO_KEY, _set("deletionPolicy", "DELETE")),
    ),
    # Sovereignty
    Mutation(
        "move a bucket to another region",
        LOCATION,
        edit(p.BUCKET, _set("location", OUTSIDE_REGION.upper())),
    ),
    Mutation(
        "put the dataset in the US multi-region",
        LOCATION,
        edit(p.BQ_DATASET, _set("location", "US")),
    ),
    Mutation("drop the dataset's location", LOCATION, edit(p.BQ_DATASET, _set("location", None))),
    Mutation(
        "move the keyring to global", LOCATION, edit(p.KMS_KEY_RING, _set("location", "global"))
    ),
    Mutation(
        "move the repository", LOCATION, edit(p.AR_REPOSITORY, _set("location", OUTSIDE_REGION))
    ),
    Mutation("move the subnet", LOCATION, edit(p.SUBNETWORK, _set("region", OUTSIDE_REGION))),
    Mutation(
        "store topic messages elsewhere",
        LOCATION,
        edit(
            p.PUBSUB_TOPIC, _set("messageStoragePolicy.allowedPersistenceRegions", [OUTSIDE_REGION])
        ),
    ),
    Mutation(
        "let the Batch job run elsewhere",
        LOCATION,
        edit(
            _is_batch_job,
            edit_job(
                _set("allocationPolicy.location.allowedLocations", [f"regions/{OUTSIDE_REGION}"])
            ),
        ),
    ),
    Mutation(
        "remove the resourceLocations org policy",
        _one("sovereignty-location-org-policy"),
        drop(org_policy("gcp.resourceLocations"), "resourceLocations policy"),
    ),
    Mutation(
        "widen the resourceLocations org policy",
        _one("sovereignty-location-org-policy"),
        edit(org_policy("gcp.resourceLocations"), _widen_locations),
    ),
    Mutation(
        "remove bigquery from the perimeter",
        _one("sovereignty-perimeter-services"),
        edit(p.SERVICE_PERIMETER, _perimeter(_drop_service("bigquery.googleapis.com"))),
    ),
    Mutation(
        "enable an API outside the perimeter",
        _one("sovereignty-perimeter-services"),
        add(
            p.PROJECT_SERVICE,
            "mut-aiplatform",
            {"service": "aiplatform.googleapis.com"},
            needs=p.SERVICE_PERIMETER,
        ),
    ),
    Mutation(
        "remove the perimeter",
        _one("sovereignty-perimeter-services", "sovereignty-perimeter-egress"),
        drop(lambda r: r.type == p.SERVICE_PERIMETER, "perimeter"),
    ),
    Mutation(
        "egress to another project",
        _one("sovereignty-perimeter-egress"),
        edit(p.SERVICE_PERIMETER, _egress(_set("egressTo.resources", ["projects/999999999999"]))),
    ),
    Mutation(
        "egress to Cloud Storage",
        _one("sovereignty-perimeter-egress"),
        edit(
            p.SERVICE_PERIMETER,
            _egress(_set("egressTo.operations", [{"serviceName": "storage.googleapis.com"}])),
        ),
    ),
    Mutation(
        "egress for any identity",
        _one("sovereignty-perimeter-egress"),
        edit(p.SERVICE_PERIMETER, _egress(_set("egressFrom", {"identityType": "ANY_IDENTITY"}))),
    ),
    # Confidential compute
    Mutation(
        "turn off confidential compute",
        CONFIDENTIAL,
        edit(p.INSTANCE_TEMPLATE, _set("confidentialInstanceConfig", None)),
    ),
    Mutation(
        "use an E2 machine type",
        CONFIDENTIAL,
        edit(p.INSTANCE_TEMPLATE, _set("machineType", "e2-standard-4")),
    ),
    Mutation(
        "turn off secure boot",
        _one("confidential-shielded-vm"),
        edit(p.INSTANCE_TEMPLATE, _set("shieldedInstanceConfig.enableSecureBoot", False)),
    ),
    Mutation(
        "Batch job without a template",
        _one("confidential-batch-job"),
        edit(
            _is_batch_job,
            edit_job(lambda job: job["allocationPolicy"]["instances"][0].pop("instanceTemplate")),
        ),
    ),
    Mutation(
        "remove the confidential-computing org policy",
        _one("confidential-org-policy"),
        drop(org_policy("compute.restrictNonConfidentialComputing"), "confidential org policy"),
    ),
    # Network
    Mutation(
        "add an access config",
        _one("network-no-external-ip"),
        edit(p.INSTANCE_TEMPLATE, _first_nic(_set("accessConfigs", [{"networkTier": "PREMIUM"}]))),
    ),
    Mutation(
        "turn off Private Google Access",
        _one("network-subnet-private-google-access"),
        edit(p.SUBNETWORK, _set("privateIpGoogleAccess", False)),
    ),
    Mutation(
        "turn off flow logs",
        _one("network-subnet-flow-logs"),
        edit(p.SUBNETWORK, _set("logConfig", None)),
    ),
    Mutation(
        "make the VPC auto-mode",
        _one("network-no-default-network"),
        edit(p.NETWORK, _set("autoCreateSubnetworks", True)),
    ),
    Mutation(
        "allow ingress from 0.0.0.0/0",
        _one("network-no-open-ingress"),
        add(
            p.FIREWALL,
            "mut-open-ssh",
            {
                "network": "vpc",
                "direction": "INGRESS",
                "sourceRanges": ["0.0.0.0/0"],
                "allows": [{"protocol": "tcp", "ports": ["22"]}],
            },
            needs=p.NETWORK,
        ),
    ),
    # Identity
    Mutation(
        "grant roles/editor",
        _one("identity-no-basic-roles"),
        add(
            "gcp:projects/iAMMember:IAMMember",
            "mut-editor",
            {"project": "p", "role": "roles/editor", "member": "user:someone@example.com"},
        ),
    ),
    Mutation(
        "add allUsers to a bucket",
        _one("identity-no-public-principals"),
        add(
            "gcp:storage/bucketIAMMember:BucketIAMMember",
            "mut-public-bucket",
            {"bucket": "b", "role": "roles/storage.objectViewer", "member": "allUsers"},
            needs=p.BUCKET,
        ),
    ),
    Mutation(
        "add allAuthenticatedUsers to a topic",
        _one("identity-no-public-principals"),
        add(
            "gcp:pubsub/topicIAMMember:TopicIAMMember",
            "mut-public-topic",
            {"topic": "t", "role": "roles/pubsub.subscriber", "member": "allAuthenticatedUsers"},
            needs=p.PUBSUB_TOPIC,
        ),
    ),
    Mutation(
        "add allUsers to a key",
        _one("identity-no-public-principals"),
        add(
            "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
            "mut-public-key",
            {"cryptoKeyId": "k", "role": "roles/cloudkms.cryptoKeyDecrypter", "member": "allUsers"},
            needs=p.KMS_CRYPTO_KEY,
        ),
    ),
    Mutation(
        "use the default compute SA",
        _one("identity-no-default-service-account"),
        edit(
            p.INSTANCE_TEMPLATE,
            _set("serviceAccount.email", "100000000001-compute@developer.gserviceaccount.com"),
        ),
    ),
    Mutation(
        "create a service account key",
        _one("identity-no-service-account-keys"),
        add(p.SERVICE_ACCOUNT_KEY, "mut-sa-key", {"serviceAccountId": "sa"}),
    ),
    Mutation(
        "remove the key-creation org policy",
        _one("identity-key-creation-org-policy"),
        drop(org_policy("iam.disableServiceAccountKeyCreation"), "key-creation org policy"),
    ),
    # Storage
    Mutation(
        "turn off uniform bucket access",
        _one("storage-uniform-access"),
        edit(p.BUCKET, _set("uniformBucketLevelAccess", False)),
    ),
    Mutation(
        "inherit public access prevention",
        _one("storage-public-access-prevention"),
        edit(p.BUCKET, _set("publicAccessPrevention", "inherited")),
    ),
    Mutation(
        "turn off versioning",
        _one("storage-versioning"),
        edit(p.BUCKET, _set("versioning.enabled", False)),
    ),
)


@dataclass(frozen=True)
class Row:
    stack: str
    mutation: Mutation
    applicable: bool
    violations: tuple[Violation, ...] = ()
    changed: Resource | None = None

    @property
    def reported(self) -> frozenset[str]:
        return frozenset(v.policy for v in self.violations)


REFERENCE = "ref"  # tests/policy/reference_stack.py under the us stack's config
# A real stack with config overrides: us submitting the VCF pipeline's Confidential Batch job
# (the optional batchJob block of Pulumi.<stack>.yaml).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "us+batch": (
        "us",
        {"batchJob": {"enabled": True, "shards": ["in/a.vcf.gz"], "imageTag": "1.0.0"}},
    ),
}


@cache
def captured(stack: str) -> tuple[tuple[Resource, ...], PolicyConfig]:
    """A stack's resources as captured from the mocked program, and its policy config."""
    if stack == REFERENCE:
        from tests.policy.reference_stack import reference_node

        return tuple(
            resource_from(r) for r in capture_stack("us", program=reference_node)
        ), config_for_stack("us")
    base, overrides = VARIANTS.get(stack, (stack, {}))
    return tuple(resource_from(r) for r in capture_stack(base, overrides)), config_for_stack(base)


def run(
    stack_name: str, stack: Sequence[Resource], config: PolicyConfig, mutation: Mutation
) -> Row:
    try:
        mutated, changed = mutation.apply(list(stack))
    except NotApplicable:
        return Row(stack_name, mutation, applicable=False)
    return Row(stack_name, mutation, True, tuple(evaluate(mutated, config)), changed)


@cache
def matrix(stacks: tuple[str, ...]) -> tuple[Row, ...]:
    rows: list[Row] = []
    for name in stacks:
        resources, config = captured(name)
        rows.extend(run(name, resources, config, m) for m in MUTATIONS)
    return tuple(rows)


# Test reports carry each row's outcome to whoever prints the matrix (the xdist controller
# included) under these user-property names.
ROW_PROPERTY = "policy_matrix_row"  # [stack, mutation, [reported policies]]
NOT_APPLICABLE_PROPERTY = "policy_matrix_not_applicable"  # [[stack, mutation], ...]

Outcome = frozenset[str] | None  # the policies reported; None: not applicable


def render(outcomes: Mapping[tuple[str, str], Outcome]) -> str:
    """The mutation x policy matrix, rows in (stack, mutation) order of stacks_under_test()
    and MUTATIONS: X = reported as intended, ! = reported but not intended, - = intended
    but missed, . = silent; n/a = the stack has no such target; "not run" = no outcome."""
    names = [pol.name for pol in POLICIES]
    keys = [(stack, m.name) for stack in stacks_under_test() for m in MUTATIONS]
    expected = {m.name: m.expected for m in MUTATIONS}
    width = max(len(f"{stack}: {name}") for stack, name in keys)
    lines = [" " * width + "  " + " ".join(f"{i + 1:>2}" for i in range(len(names)))]
    for stack, mutation in keys:
        label = f"{stack}: {mutation}".ljust(width)
        if (stack, mutation) not in outcomes:
            lines.append(f"{label}  not run")
            continue
        reported = outcomes[(stack, mutation)]
        if reported is None:
            lines.append(f"{label}  n/a")
            continue
        cells = []
        for name in names:
            hit, want = name in reported, name in expected[mutation]
            cells.append(" X" if hit and want else " !" if hit else " -" if want else " .")
        lines.append(f"{label}  {' '.join(cells)}")
    lines.append("")
    lines.extend(f"{i + 1:>2} {name}" for i, name in enumerate(names))
    return "\n".join(lines)


STACKS = ("us", "eu", "hub")


def stacks_under_test() -> tuple[str, ...]:
    """The real stacks (us, eu, hub), a config variant of one, then the reference node."""
    return (*STACKS, *VARIANTS, REFERENCE)
