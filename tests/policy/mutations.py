"""Break one thing in a real captured stack; the policies that must report it, and only those.

Each Mutation edits a copy of a stack (never the capture itself) and names the policies it
must trip. A mutation whose target the stack does not declare is "not applicable" there
(e.g. no Batch job in the hub); the tests check that every policy is still broken by at
least one applicable mutation on the real stacks.
"""

from __future__ import annotations

import copy
import json
import re
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
        added = Resource(type=type_, name=name, urn=urn, props=_filled(props, facts(stack)))
        return [*stack, added], added

    return apply


def facts(stack: Stack) -> dict[str, str]:
    """Values a mutation may name: {own_sa} (a service account of the stack's project),
    {project}, {key} (the id of one of its keys), {subnet}."""
    account = next(r for r in stack if r.type == "gcp:serviceaccount/account:Account")
    project = str(account.props["project"])
    key = next(r for r in stack if r.type == p.KMS_CRYPTO_KEY)
    return {
        "own_sa": f"{account.props['accountId']}@{project}.iam.gserviceaccount.com",
        "project": project,
        "key": f"{key.props['keyRing']}/cryptoKeys/{key.props['name']}",
        "key_ring": str(key.props["keyRing"]),
    }


def _filled(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for key, fact in values.items():  # only the named placeholders (JSON braces stay)
            value = value.replace(f"{{{key}}}", fact)
        return value
    if isinstance(value, Mapping):
        return {k: _filled(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, values) for v in value]
    return value


def named(name: str) -> Callable[[Resource], bool]:
    return lambda r: r.name == name


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


def _stored_table(r: Resource) -> bool:
    """A BigQuery table that stores bytes (not a view, not an external table)."""
    return r.type == p.BQ_TABLE and not {"view", "externalDataConfiguration"} & set(r.props)


def _external_table(r: Resource) -> bool:
    return r.type == p.BQ_TABLE and "externalDataConfiguration" in r.props


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
# Moving data away from its key's region breaks two rules at once: where the data lives,
# and that its key sits in the same region.
MOVED = _one("sovereignty-resource-location", "encryption-key-placement")
EGRESS_NET = _one("network-effective-egress")
PRINCIPALS = _one("identity-principal-classes")
PRIVILEGED = _one("identity-no-privileged-roles")
ORG = _one("governance-org-policies")
AUDIT = _one("governance-audit-logs")
SCOPE = _one("sovereignty-perimeter-scope")
INGRESS = _one("sovereignty-perimeter-ingress")
EGRESS = _one("sovereignty-perimeter-egress")
SERVICES = _one("sovereignty-perimeter-services")
HUB = _one("hub-subscriptions")
PLACEMENT = _one("encryption-key-placement")
SIGNING = _one("encryption-signing-key")
METADATA = _one("confidential-vm-metadata")
DELETION = _one("storage-deletion-protection")
CONFIDENTIAL = _one("confidential-vm")

MUTATIONS: tuple[Mutation, ...] = (
    # Encryption
    Mutation(
        "drop a dataset's key",
        CMEK,
        edit(p.BQ_DATASET, _set("defaultEncryptionConfiguration", None)),
    ),
    Mutation(
        "drop a table's key", CMEK, edit(_stored_table, _set("encryptionConfiguration", None))
    ),
    Mutation(
        "point an external table at another project's bucket",
        CMEK,
        edit(
            _external_table,
            _set("externalDataConfiguration.sourceUris", ["gs://public-mirror/robotics/*"]),
        ),
    ),
    Mutation(
        "point an external table at a bucket that only looks like the node's",
        CMEK,
        edit(
            _external_table,
            _set("externalDataConfiguration.sourceUris", ["gs://fed-node-usx-results/t/*"]),
        ),
    ),
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
        MOVED,
        edit(p.BUCKET, _set("location", OUTSIDE_REGION.upper())),
    ),
    Mutation(
        "put the dataset in the US multi-region",
        MOVED,
        edit(p.BQ_DATASET, _set("location", "US")),
    ),
    Mutation("drop the dataset's location", LOCATION, edit(p.BQ_DATASET, _set("location", None))),
    Mutation(
        "move the keyring to global", LOCATION, edit(p.KMS_KEY_RING, _set("location", "global"))
    ),
    Mutation("move the repository", MOVED, edit(p.AR_REPOSITORY, _set("location", OUTSIDE_REGION))),
    Mutation("move the subnet", LOCATION, edit(p.SUBNETWORK, _set("region", OUTSIDE_REGION))),
    Mutation(
        "store topic messages elsewhere",
        MOVED,
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
            "mut-firestore",
            {"service": "firestore.googleapis.com"},
            needs=p.SERVICE_PERIMETER,
        ),
    ),
    Mutation(
        "remove the perimeter",
        _one(
            "sovereignty-perimeter-services",
            "sovereignty-perimeter-egress",
            "sovereignty-perimeter-scope",
        ),
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
            {"project": "p", "role": "roles/editor", "member": "serviceAccount:{own_sa}"},
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
BASE_MUTATIONS = MUTATIONS


# ---------------------------------------------------------------- as an attacker would
# Each one is a change a careful insider could slip into a pull request: it keeps the
# letter of the old checks (some key is set, no literal 0.0.0.0/0...) and breaks the intent.


def _rule(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda props: change(props["spec"]["rules"][0])


def _ingress(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return _perimeter(lambda block: change(block["ingressPolicies"][0]))


def _image_egress(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return _perimeter(lambda block: change(block["egressPolicies"][1]))


def _firewall(name: str, **props: Any) -> Callable[[Stack], tuple[Stack, Resource]]:
    return add(p.FIREWALL, name, {"network": "vpc", **props}, needs=p.NETWORK)


def _ingress_from(*ranges: str) -> Callable[[Stack], tuple[Stack, Resource]]:
    return _firewall(
        "mut-ingress",
        direction="INGRESS",
        sourceRanges=list(ranges),
        allows=[{"protocol": "tcp", "ports": ["22", "3389"]}],
    )


def _grant(
    type_: str, name: str, role: str, member: str, needs: str | None = None, **on: Any
) -> Callable[[Stack], tuple[Stack, Resource]]:
    return add(type_, name, {"role": role, "member": member, **on}, needs=needs)


def _policy_data_add(member: str) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        data = json.loads(props["policyData"])
        data["bindings"][-1]["members"].append(member)
        props["policyData"] = json.dumps(data)

    return change


def _other_region_key(path: str) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = props
        for k in parents:
            target = target[k]
        target[last] = re.sub(
            r"/locations/[^/]+/", f"/locations/{OUTSIDE_REGION}/", target[last], count=1
        )

    return change


def _other_project_key(path: str) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = props
        for k in parents:
            target = target[k]
        target[last] = re.sub(r"^projects/[^/]+/", "projects/attacker-keys/", target[last])

    return change


def _sub_of_node(node: str) -> Callable[[Resource], bool]:
    return lambda r: (
        r.type == p.PUBSUB_SUBSCRIPTION and r.props.get("name", "").endswith(f"-{node}")
    )


EMPTY: frozenset[str] = frozenset()

ATTACKER_MUTATIONS: tuple[Mutation, ...] = (
    # Network: the internet in other words
    Mutation(
        "allow ingress from the two halves of the internet",
        _one("network-no-open-ingress"),
        _ingress_from("0.0.0.0/1", "128.0.0.0/1"),
    ),
    Mutation(
        "allow ingress from a public /8",
        _one("network-no-open-ingress"),
        _ingress_from("8.0.0.0/8"),
    ),
    Mutation(
        "allow ingress from 172.0.0.0/8 (looks private)",
        _one("network-no-open-ingress"),
        _ingress_from("172.0.0.0/8"),
    ),
    Mutation(
        "allow ingress from IPv6 global unicast",
        _one("network-no-open-ingress"),
        _ingress_from("2000::/3"),
    ),
    Mutation(
        "allow ingress with no source at all",
        _one("network-no-open-ingress"),
        _firewall("mut-nosource", direction="INGRESS", allows=[{"protocol": "all"}]),
    ),
    Mutation(
        "allow-all egress above the deny",
        EGRESS_NET,
        _firewall(
            "mut-egress-all",
            direction="EGRESS",
            priority=100,
            destinationRanges=["0.0.0.0/0"],
            allows=[{"protocol": "all"}],
        ),
    ),
    Mutation(
        "allow egress to one public DNS server",
        EGRESS_NET,
        _firewall(
            "mut-egress-dns",
            direction="EGRESS",
            priority=900,
            destinationRanges=["8.8.8.8/32"],
            allows=[{"protocol": "tcp", "ports": ["443"]}],
        ),
    ),
    Mutation(
        "allow egress with no destination (= anywhere)",
        EGRESS_NET,
        _firewall(
            "mut-egress-nodest",
            direction="EGRESS",
            priority=500,
            allows=[{"protocol": "tcp", "ports": ["443"]}],
        ),
    ),
    Mutation(
        "disable the deny-all egress rule",
        EGRESS_NET,
        edit(named("network-deny-all-egress"), _set("disabled", True)),
    ),
    Mutation(
        "narrow the deny-all egress to private space",
        EGRESS_NET,
        edit(named("network-deny-all-egress"), _set("destinationRanges", ["10.0.0.0/8"])),
    ),
    Mutation(
        "open every protocol to the VIP",
        EGRESS_NET,
        edit(named("network-allow-restricted-apis"), _set("allows", [{"protocol": "all"}])),
    ),
    Mutation(
        "widen the VIP allow rule to a /16",
        EGRESS_NET,
        edit(named("network-allow-restricted-apis"), _set("destinationRanges", ["199.36.0.0/16"])),
    ),
    Mutation(
        "route the internet to the internet gateway",
        EGRESS_NET,
        add(
            p.ROUTE,
            "mut-route",
            {
                "network": "vpc",
                "destRange": "0.0.0.0/0",
                "nextHopGateway": "default-internet-gateway",
            },
            needs=p.NETWORK,
        ),
    ),
    Mutation(
        "route a public range through a VM",
        EGRESS_NET,
        add(
            p.ROUTE,
            "mut-route-vm",
            {"network": "vpc", "destRange": "52.0.0.0/8", "nextHopIp": "10.10.0.5"},
            needs=p.NETWORK,
        ),
    ),
    Mutation(
        "keep the default internet route",
        EGRESS_NET,
        edit(p.NETWORK, _set("deleteDefaultRoutesOnCreate", False)),
    ),
    Mutation(
        "peer the VPC with another network",
        EGRESS_NET,
        add(
            p.NETWORK_PEERING,
            "mut-peering",
            {"network": "vpc", "peerNetwork": "projects/other/global/networks/x"},
            needs=p.NETWORK,
        ),
    ),
    Mutation(
        "resolve googleapis to private.googleapis.com",
        EGRESS_NET,
        edit(named("network-googleapis-a"), _set("rrdatas", ["199.36.153.8", "199.36.153.9"])),
    ),
    Mutation(
        "resolve googleapis to a public address",
        EGRESS_NET,
        edit(named("network-googleapis-a"), _set("rrdatas", ["142.250.1.1"])),
    ),
    Mutation(
        "forward IP on the template",
        _one("network-no-ip-forwarding"),
        edit(p.INSTANCE_TEMPLATE, _set("canIpForward", True)),
    ),
    Mutation(
        "give the template an IPv6 access config",
        _one("network-no-external-ip"),
        edit(
            p.INSTANCE_TEMPLATE, _first_nic(_set("ipv6AccessConfigs", [{"networkTier": "PREMIUM"}]))
        ),
    ),
    # VMs
    Mutation(
        "open the serial port",
        METADATA,
        edit(p.INSTANCE_TEMPLATE, _set("metadata.serial-port-enable", "TRUE")),
    ),
    Mutation(
        "turn off OS Login in metadata",
        METADATA,
        edit(p.INSTANCE_TEMPLATE, _set("metadata.enable-oslogin", "FALSE")),
    ),
    Mutation(
        "accept project-wide SSH keys",
        METADATA,
        edit(p.INSTANCE_TEMPLATE, _set("metadata.block-project-ssh-keys", None)),
    ),
    Mutation(
        "turn off vTPM",
        _one("confidential-shielded-vm"),
        edit(p.INSTANCE_TEMPLATE, _set("shieldedInstanceConfig.enableVtpm", False)),
    ),
    Mutation(
        "Batch job runs as the default compute SA",
        _one("identity-no-default-service-account"),
        edit(
            _is_batch_job,
            edit_job(
                _set(
                    "allocationPolicy.serviceAccount.email",
                    "100000000001-compute@developer.gserviceaccount.com",
                )
            ),
        ),
    ),
    Mutation(
        "run the template as the App Engine default account",
        _one("identity-no-default-service-account"),
        edit(
            p.INSTANCE_TEMPLATE,
            _set("serviceAccount.email", "fed-node-us@appspot.gserviceaccount.com"),
        ),
    ),
    Mutation(
        "run the template as another project's account",
        _one("identity-no-default-service-account"),
        edit(
            p.INSTANCE_TEMPLATE,
            _set("serviceAccount.email", "runner@attacker-project.iam.gserviceaccount.com"),
        ),
    ),
    # Identity: who
    Mutation(
        "let a person use a key",
        PRINCIPALS,
        _grant(
            "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
            "mut-key-user",
            "roles/cloudkms.cryptoKeyDecrypter",
            "user:alice@example.com",
            cryptoKeyId="{key}",
        ),
    ),
    Mutation(
        "let a workload decrypt with a data key",
        PRINCIPALS,
        _grant(
            "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
            "mut-key-workload",
            "roles/cloudkms.cryptoKeyEncrypterDecrypter",
            "serviceAccount:{own_sa}",
            cryptoKeyId="{key}",
        ),
    ),
    Mutation(
        "let another project's service agent use a key",
        PRINCIPALS,
        _grant(
            "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
            "mut-key-agent",
            "roles/cloudkms.cryptoKeyEncrypterDecrypter",
            "serviceAccount:service-999999999999@gcp-sa-pubsub.iam.gserviceaccount.com",
            cryptoKeyId="{key}",
        ),
    ),
    Mutation(
        "share a bucket with another project's account",
        PRINCIPALS,
        _grant(
            "gcp:storage/bucketIAMMember:BucketIAMMember",
            "mut-bucket-foreign",
            "roles/storage.objectViewer",
            "serviceAccount:reader@attacker-project.iam.gserviceaccount.com",
            bucket="b",
            needs=p.BUCKET,
        ),
    ),
    Mutation(
        "grant a group on the project",
        PRINCIPALS,
        _grant(
            "gcp:projects/iAMMember:IAMMember",
            "mut-group",
            "roles/logging.viewer",
            "group:contractors@example.com",
            project="{project}",
        ),
    ),
    Mutation(
        "grant a deleted principal",
        PRINCIPALS,
        _grant(
            "gcp:projects/iAMMember:IAMMember",
            "mut-deleted",
            "roles/logging.viewer",
            "deleted:serviceAccount:old@x.iam.gserviceaccount.com?uid=1",
            project="{project}",
        ),
    ),
    Mutation(
        "grant a workload identity pool",
        PRINCIPALS,
        _grant(
            "gcp:projects/iAMMember:IAMMember",
            "mut-wif",
            "roles/bigquery.jobUser",
            "principalSet://iam.googleapis.com/projects/1/locations/global/"
            "workloadIdentityPools/p/*",
            project="{project}",
        ),
    ),
    Mutation(
        "share the dataset with an outside group",
        PRINCIPALS,
        edit(
            named("identities-genomics-dataset-access"),
            _policy_data_add("group:analysts@partner.example"),
        ),
    ),
    Mutation(
        "share the dataset with a whole domain",
        PRINCIPALS,
        edit(p.BQ_DATASET, _set("accesses", [{"role": "READER", "domain": "example.com"}])),
    ),
    Mutation(
        "authorize another project's view on the dataset",
        PRINCIPALS,
        edit(
            p.BQ_DATASET,
            _set(
                "accesses",
                [{"view": {"projectId": "attacker-project", "datasetId": "d", "tableId": "v"}}],
            ),
        ),
    ),
    Mutation(
        "add a person to the dataset",
        PRINCIPALS,
        edit(named("identities-genomics-dataset-access"), _policy_data_add("user:bob@example.com")),
    ),
    Mutation(
        "let project viewers read the dataset",
        _one("identity-dataset-explicit-access"),
        edit(
            p.BQ_DATASET, _set("accesses", [{"role": "READER", "specialGroup": "projectReaders"}])
        ),
    ),
    Mutation(
        "drop the dataset's access policy",
        _one("identity-dataset-explicit-access"),
        drop(lambda r: r.type == p.BQ_DATASET_IAM_POLICY, "dataset IAM policy"),
    ),
    Mutation(
        "grant a person on a hub topic",
        PRINCIPALS,
        add(
            "gcp:pubsub/topicIAMMember:TopicIAMMember",
            "mut-topic-user",
            {"topic": "t", "role": "roles/pubsub.subscriber", "member": "user:eve@example.com"},
            needs=p.PUBSUB_TOPIC,
        ),
    ),
    # Identity: what
    Mutation(
        "grant token creator",
        PRIVILEGED,
        _grant(
            "gcp:serviceaccount/iAMMember:IAMMember",
            "mut-token",
            "roles/iam.serviceAccountTokenCreator",
            "serviceAccount:{own_sa}",
            serviceAccountId="sa",
        ),
    ),
    Mutation(
        "grant service account user",
        PRIVILEGED,
        _grant(
            "gcp:projects/iAMMember:IAMMember",
            "mut-actas",
            "roles/iam.serviceAccountUser",
            "serviceAccount:{own_sa}",
            project="{project}",
        ),
    ),
    Mutation(
        "grant BigQuery admin to a workload",
        PRIVILEGED,
        _grant(
            "gcp:projects/iAMMember:IAMMember",
            "mut-bqadmin",
            "roles/bigquery.admin",
            "serviceAccount:{own_sa}",
            project="{project}",
        ),
    ),
    Mutation(
        "grant project IAM admin",
        PRIVILEGED,
        _grant(
            "gcp:projects/iAMMember:IAMMember",
            "mut-iamadmin",
            "roles/resourcemanager.projectIamAdmin",
            "serviceAccount:{own_sa}",
            project="{project}",
        ),
    ),
    Mutation(
        "grant Cloud KMS admin on a key",
        PRIVILEGED,
        _grant(
            "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
            "mut-kmsadmin",
            "roles/cloudkms.admin",
            "serviceAccount:{own_sa}",
            cryptoKeyId="{key}",
        ),
    ),
    # Encryption: whose key, where
    Mutation(
        "protect a bucket with another project's key",
        PLACEMENT,
        edit(p.BUCKET, _other_project_key("encryption.defaultKmsKeyName")),
    ),
    Mutation(
        "protect the dataset with a key in another region",
        PLACEMENT,
        edit(p.BQ_DATASET, _other_region_key("defaultEncryptionConfiguration.kmsKeyName")),
    ),
    Mutation(
        "protect a table with a key in another region",
        PLACEMENT,
        edit(_stored_table, _other_region_key("encryptionConfiguration.kmsKeyName")),
    ),
    Mutation(
        "encrypt template disks with another project's key",
        PLACEMENT,
        edit(
            p.INSTANCE_TEMPLATE, _first_disk(_other_project_key("diskEncryptionKey.kmsKeySelfLink"))
        ),
    ),
    Mutation(
        "put the log bucket under another project's key",
        PLACEMENT,
        edit(p.LOG_BUCKET, _other_project_key("cmekSettings.kmsKeyName")),
    ),
    Mutation(
        "encrypt a topic with a key elsewhere",
        PLACEMENT,
        edit(p.PUBSUB_TOPIC, _other_region_key("kmsKeyName")),
    ),
    Mutation(
        "downgrade a data key to software",
        _one("encryption-key-hsm"),
        edit(p.KMS_CRYPTO_KEY, _set("versionTemplate.protectionLevel", "SOFTWARE")),
    ),
    Mutation(
        "drop a data key's version template",
        _one("encryption-key-hsm"),
        edit(p.KMS_CRYPTO_KEY, _set("versionTemplate", None)),
    ),
    Mutation(
        "let the batch runner sign federation messages",
        SIGNING,
        add(
            "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
            "mut-sign",
            {
                "cryptoKeyId": "{key_ring}/cryptoKeys/federation-signing",
                "role": "roles/cloudkms.signerVerifier",
                "member": "serviceAccount:batch-runner@{project}.iam.gserviceaccount.com",
            },
            needs=p.SERVICE_PERIMETER,
        ),
    ),
    Mutation("drop the signing key", SIGNING, drop(named("signing-key"), "signing key")),
    Mutation(
        "make the signing key ECDSA P-256",
        SIGNING,
        edit(named("signing-key"), _set("versionTemplate.algorithm", "EC_SIGN_P256_SHA256")),
    ),
    Mutation(
        "drop the worker's signing grant",
        SIGNING,
        drop(named("signing-signerVerifier"), "signing grant"),
    ),
    Mutation(
        "unprotect the signing key",
        _one("encryption-key-protected"),
        lambda stack: _unprotect_named(stack, "signing-key"),
    ),
    # Governance: org policies dropped, weakened, reset
    Mutation(
        "drop iam.allowedPolicyMemberDomains",
        ORG,
        drop(org_policy("iam.allowedPolicyMemberDomains"), "member domains"),
    ),
    Mutation(
        "allow every member domain",
        ORG,
        edit(
            org_policy("iam.allowedPolicyMemberDomains"), _set("spec.rules", [{"allowAll": "TRUE"}])
        ),
    ),
    Mutation(
        "add an outside customer to the member domains",
        ORG,
        edit(
            org_policy("iam.allowedPolicyMemberDomains"),
            _rule(lambda r: r["values"]["allowedValues"].append("C0999evil")),
        ),
    ),
    Mutation(
        "drop the default-SA grants constraint",
        ORG,
        drop(org_policy("iam.automaticIamGrantsForDefaultServiceAccounts"), "default SA"),
    ),
    Mutation(
        "stop enforcing key upload refusal",
        ORG,
        edit(org_policy("iam.disableServiceAccountKeyUpload"), _rule(_set("enforce", "FALSE"))),
    ),
    Mutation(
        "allow IP forwarding again",
        ORG,
        edit(org_policy("compute.vmCanIpForward"), _rule(_set("denyAll", "FALSE"))),
    ),
    Mutation(
        "trust another image project",
        ORG,
        edit(
            org_policy("compute.trustedImageProjects"),
            _rule(lambda r: r["values"]["allowedValues"].append("projects/debian-cloud")),
        ),
    ),
    Mutation(
        "allow TLS 1.0",
        ORG,
        edit(
            org_policy("gcp.restrictTLSVersion"),
            _rule(_set("values.deniedValues", ["TLS_VERSION_1_1"])),
        ),
    ),
    Mutation(
        "reset secure HTTP transport to the parent's",
        ORG,
        edit(org_policy("storage.secureHttpTransport"), _set("spec.reset", True)),
    ),
    Mutation(
        "carve a conditional exception into VPC peering",
        ORG,
        edit(
            org_policy("compute.restrictVpcPeering"),
            lambda props: props["spec"]["rules"].append(
                {"allowAll": "TRUE", "condition": {"expression": "true"}}
            ),
        ),
    ),
    Mutation(
        "let keys come from any project",
        ORG,
        edit(
            org_policy("gcp.restrictCmekCryptoKeyProjects"),
            _rule(_set("values.allowedValues", ["under:organizations/1"])),
        ),
    ),
    Mutation(
        "stop requiring CMEK for one service",
        ORG,
        edit(
            org_policy("gcp.restrictNonCmekServices"),
            _rule(lambda r: r["values"]["deniedValues"].pop(0)),
        ),
    ),
    Mutation(
        "drop the external IPv6 constraint",
        ORG,
        drop(org_policy("compute.disableVpcExternalIpv6"), "ipv6 policy"),
    ),
    # Governance: audit trail
    Mutation(
        "turn off BigQuery Data Access logs",
        AUDIT,
        drop(named("audit-logs-bigquery"), "bigquery audit config"),
    ),
    Mutation(
        "turn off Pub/Sub Data Access logs",
        AUDIT,
        drop(named("audit-logs-pubsub"), "pubsub audit config"),
    ),
    Mutation(
        "exempt a workload from storage audit logs",
        AUDIT,
        edit(
            named("audit-logs-storage"),
            lambda props: props["auditLogConfigs"][1].update(
                exemptedMembers=["serviceAccount:x@y.iam.gserviceaccount.com"]
            ),
        ),
    ),
    Mutation("drop the log bucket's key", AUDIT, edit(p.LOG_BUCKET, _set("cmekSettings", None))),
    Mutation(
        "move the log bucket to global",
        _one("governance-audit-logs", "sovereignty-resource-location", "encryption-key-placement"),
        edit(p.LOG_BUCKET, _set("location", "global")),
    ),
    Mutation(
        "filter what the sink keeps",
        AUDIT,
        edit(p.LOG_SINK, _set("filter", 'NOT protoPayload.methodName:"getData"')),
    ),
    Mutation("disable the sink", AUDIT, edit(p.LOG_SINK, _set("disabled", True))),
    Mutation(
        "let _Default copy logs to the global bucket",
        AUDIT,
        drop(lambda r: r.type == p.LOG_EXCLUSION, "exclusion"),
    ),
    # Sovereignty: the perimeter
    Mutation(
        "fence another project",
        SCOPE,
        edit(p.SERVICE_PERIMETER, _perimeter(_set("resources", ["projects/999999999999"]))),
    ),
    Mutation(
        "fence a second project too",
        SCOPE,
        edit(
            p.SERVICE_PERIMETER,
            _perimeter(lambda b: b["resources"].append("projects/555555555555")),
        ),
    ),
    Mutation(
        "leave the perimeter in dry-run without saying so",
        SCOPE,
        edit(
            p.SERVICE_PERIMETER,
            lambda props: props.update(spec=props.pop("status"), useExplicitDryRunSpec=True),
        ),
    ),
    Mutation(
        "make it a bridge perimeter",
        SCOPE,
        edit(p.SERVICE_PERIMETER, _set("perimeterType", "PERIMETER_TYPE_BRIDGE")),
    ),
    Mutation(
        "admit ingress from any identity",
        INGRESS,
        edit(
            p.SERVICE_PERIMETER,
            _ingress(lambda i: i["ingressFrom"].update(identities=[], identityType="ANY_IDENTITY")),
        ),
    ),
    Mutation(
        "admit another identity",
        INGRESS,
        edit(
            p.SERVICE_PERIMETER,
            _ingress(_set("ingressFrom.identities", ["user:mallory@example.com"])),
        ),
    ),
    Mutation(
        "admit from any source",
        INGRESS,
        edit(p.SERVICE_PERIMETER, _ingress(_set("ingressFrom.sources", [{"accessLevel": "*"}]))),
    ),
    Mutation(
        "widen the deployer's access level to a group",
        INGRESS,
        edit(
            p.ACCESS_LEVEL,
            lambda props: props["basic"]["conditions"][0]["members"].append(
                "group:ops@example.com"
            ),
        ),
    ),
    Mutation(
        "negate the deployer's access level",
        INGRESS,
        edit(p.ACCESS_LEVEL, _set("basic.conditions", [{"members": [], "negate": True}])),
    ),
    Mutation(
        "drop the deployer's ingress rule (lock-out on enforce)",
        INGRESS,
        edit(p.SERVICE_PERIMETER, _perimeter(_set("ingressPolicies", None))),
    ),
    Mutation(
        "let another identity out to the hub",
        EGRESS,
        edit(
            p.SERVICE_PERIMETER,
            _egress(
                lambda e: e["egressFrom"]["identities"].append(
                    "serviceAccount:batch-runner@x.iam.gserviceaccount.com"
                )
            ),
        ),
    ),
    Mutation(
        "let any Pub/Sub method out",
        EGRESS,
        edit(
            p.SERVICE_PERIMETER,
            _egress(
                lambda e: e["egressTo"]["operations"][0].update(methodSelectors=[{"method": "*"}])
            ),
        ),
    ),
    Mutation(
        "let the image rule reach every project",
        EGRESS,
        edit(p.SERVICE_PERIMETER, _image_egress(_set("egressTo.resources", ["*"]))),
    ),
    Mutation(
        "let the worker read Compute outside",
        EGRESS,
        edit(
            p.SERVICE_PERIMETER,
            _image_egress(
                lambda e: e["egressFrom"]["identities"].append(
                    "serviceAccount:federation-worker@x.iam.gserviceaccount.com"
                )
            ),
        ),
    ),
    Mutation(
        "let the VPC reach unrestricted services",
        SERVICES,
        edit(
            p.SERVICE_PERIMETER, _perimeter(_set("vpcAccessibleServices.enableRestriction", False))
        ),
    ),
    Mutation(
        "let the VPC reach one more service",
        SERVICES,
        edit(
            p.SERVICE_PERIMETER,
            _perimeter(
                _set(
                    "vpcAccessibleServices.allowedServices",
                    ["RESTRICTED-SERVICES", "firestore.googleapis.com"],
                )
            ),
        ),
    ),
    Mutation(
        "remove storage from the perimeter",
        SERVICES,
        edit(p.SERVICE_PERIMETER, _perimeter(_drop_service("storage.googleapis.com"))),
    ),
    # The hub
    Mutation(
        "a subscription without dead-lettering",
        HUB,
        edit(_sub_of_node("us"), _set("deadLetterPolicy", None)),
    ),
    Mutation(
        "push a node's rounds to an outside endpoint",
        HUB,
        edit(
            _sub_of_node("us"),
            _set("pushConfig", {"pushEndpoint": "https://collector.example.com/in"}),
        ),
    ),
    Mutation(
        "export uploads to BigQuery",
        HUB,
        edit(named("federation-sub-upload"), _set("bigqueryConfig", {"table": "x.y.z"})),
    ),
    Mutation(
        "let one node pull another's subscription",
        HUB,
        edit(
            named("federation-us-pulls-own-subscription"),
            _set("subscription", "federation-broadcast-eu"),
        ),
    ),
    Mutation(
        "let a node pull the coordinator's uploads",
        HUB,
        add(
            p.PUBSUB_SUBSCRIPTION_IAM_MEMBER,
            "mut-node-pulls-uploads",
            {
                "subscription": "federation-upload-coordinator",
                "role": "roles/pubsub.subscriber",
                "member": "serviceAccount:federation-worker@fed-node-us.iam.gserviceaccount.com",
            },
            needs=p.PUBSUB_SUBSCRIPTION,
        ),
    ),
    # Deletion protections
    Mutation(
        "turn off a table's deletion protection",
        DELETION,
        edit(p.BQ_TABLE, _set("deletionProtection", False)),
    ),
    Mutation("force-destroy a bucket", DELETION, edit(p.BUCKET, _set("forceDestroy", True))),
    Mutation(
        "delete the dataset's contents on destroy",
        DELETION,
        edit(p.BQ_DATASET, _set("deleteContentsOnDestroy", True)),
    ),
)

# The federation services (issue 16): the attested worker (us+worker) and the coordinator
# (hub+coordinator).
CS_IMAGE = _one("confidential-space-image")
WORKLOAD_IMAGE = _one("confidential-space-workload-image")
ATTESTED = _one("identity-attested-worker")
COORD_JOB = _one("hub-coordinator-job")
COORD_ACCESS = _one("hub-coordinator-access")
WORKER_TEMPLATE = "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate"
RUN_JOB = "gcp:cloudrunv2/job:Job"
ATTESTED_JOB_USER = "federation-worker-attested-bigquery-jobUser"
POOL = "principalSet://iam.googleapis.com/projects/100000000001/locations/global/workloadIdentityPools/federation-attested"


def _tee_image(value: str) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        props["metadata"]["tee-image-reference"] = value

    return change


def _condition_without_digest(props: dict[str, Any]) -> None:
    clauses = props["attributeCondition"].split(" && ")
    props["attributeCondition"] = " && ".join(c for c in clauses if "image_digest" not in c)


def _first_container(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda props: change(props["template"]["template"]["containers"][0])


FEDERATION_MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "boot the worker from the debug Confidential Space image",
        CS_IMAGE,
        edit(
            WORKER_TEMPLATE,
            _first_disk(
                _set(
                    "sourceImage",
                    "projects/confidential-space-images/global/images/family/"
                    "confidential-space-debug",
                )
            ),
        ),
    ),
    Mutation(
        "name the worker image by tag",
        WORKLOAD_IMAGE,
        edit(
            WORKER_TEMPLATE,
            _tee_image("us-central1-docker.pkg.dev/fed-node-us/workloads/federation-worker:latest"),
        ),
    ),
    Mutation(
        "run the worker image from another project's registry",
        WORKLOAD_IMAGE,
        edit(
            WORKER_TEMPLATE,
            _tee_image(
                "us-central1-docker.pkg.dev/attacker-proj/workloads/federation-worker@sha256:"
                + "ab" * 32
            ),
        ),
    ),
    Mutation(
        "run another digest than the reviewed one",
        WORKLOAD_IMAGE,
        edit(
            WORKER_TEMPLATE,
            _tee_image(
                "us-central1-docker.pkg.dev/fed-node-us/workloads/federation-worker@sha256:"
                + "cd" * 32
            ),
        ),
    ),
    Mutation(
        "give the worker VM an external IP",
        _one("network-no-external-ip"),
        edit(WORKER_TEMPLATE, _first_nic(_set("accessConfigs", [{"networkTier": "PREMIUM"}]))),
    ),
    Mutation(
        "make the worker VM non-confidential",
        CONFIDENTIAL,
        edit(WORKER_TEMPLATE, _set("confidentialInstanceConfig", None)),
    ),
    Mutation(
        "run the worker group from another project's template",
        CONFIDENTIAL,
        edit(
            "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager",
            lambda props: props["versions"][0].update(
                instanceTemplate="https://www.googleapis.com/compute/v1/projects/attacker-proj/"
                "regions/us-central1/instanceTemplates/plain-vm"
            ),
        ),
    ),
    Mutation(
        "grant the whole attestation pool (no digest) BigQuery jobs",
        ATTESTED,
        edit(named(ATTESTED_JOB_USER), _set("member", f"{POOL}/*")),
    ),
    Mutation(
        "trust any image of the pool's issuer (provider condition without the digest)",
        ATTESTED,
        edit(
            "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider",
            _condition_without_digest,
        ),
    ),
    Mutation(
        "trust any issuer in the attestation pool",
        ATTESTED,
        edit(
            "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider",
            _set("oidc.issuerUri", "https://token.actions.githubusercontent.com"),
        ),
    ),
    Mutation(
        "let the attested worker write the patient data",
        ATTESTED,
        edit(named(ATTESTED_JOB_USER), _set("role", "roles/bigquery.dataEditor")),
    ),
    Mutation(
        "give the worker VM's own account the patient data",
        ATTESTED,
        _grant(
            "gcp:projects/iAMMember:IAMMember",
            "mut-worker-sa-data",
            "roles/bigquery.dataViewer",
            "serviceAccount:federation-worker@fed-node-us.iam.gserviceaccount.com",
            needs=WORKER_TEMPLATE,
            project="fed-node-us",
        ),
    ),
    # The hub's coordinator and its results
    Mutation(
        "run the coordinator job without its key",
        COORD_JOB,
        edit(RUN_JOB, _set("template.template.encryptionKey", None)),
    ),
    Mutation(
        "run the coordinator image by tag",
        COORD_JOB,
        edit(
            RUN_JOB,
            _first_container(
                _set("image", "europe-west1-docker.pkg.dev/fed-hub/workloads/coordinator:latest")
            ),
        ),
    ),
    Mutation(
        "run the coordinator as another account",
        COORD_JOB,
        edit(
            RUN_JOB,
            _set(
                "template.template.serviceAccount",
                "100000000009-compute@developer.gserviceaccount.com",
            ),
        ),
    ),
    Mutation(
        "move the coordinator job to another region",
        LOCATION,
        edit(RUN_JOB, _set("location", OUTSIDE_REGION)),
    ),
    Mutation(
        "let anyone run the coordinator job",
        _one("identity-no-public-principals", "hub-coordinator-access"),
        add(
            "gcp:cloudrunv2/jobIamMember:JobIamMember",
            "mut-run-public",
            {
                "role": "roles/run.invoker",
                "member": "allUsers",
                "name": "federation-coordinator",
                "location": "europe-west1",
            },
            needs=RUN_JOB,
        ),
    ),
    Mutation(
        "let the researchers sign as the hub",
        PRINCIPALS,
        add(
            "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
            "mut-researchers-sign",
            {
                "cryptoKeyId": "{key_ring}/cryptoKeys/federation-signing",
                "role": "roles/cloudkms.signerVerifier",
                "member": "group:federation-researchers@example.org",
            },
            needs=RUN_JOB,
        ),
    ),
    Mutation(
        "let the researchers change the coordinator job",
        COORD_ACCESS,
        edit(
            "gcp:cloudrunv2/jobIamMember:JobIamMember",
            _set("role", "roles/run.developer"),
        ),
    ),
    Mutation(
        "let the coordinator overwrite or delete released results",
        COORD_ACCESS,
        edit(
            named("coordinator-coordinator-creates-results"),
            _set("role", "roles/storage.objectAdmin"),
        ),
    ),
    Mutation(
        "let the coordinator write the specs it runs",
        COORD_ACCESS,
        edit(
            named("coordinator-coordinator-reads-specs"),
            _set("role", "roles/storage.objectAdmin"),
        ),
    ),
    Mutation(
        "drop the results bucket's retention",
        COORD_ACCESS,
        edit(named("coordinator-results"), _set("retentionPolicy", None)),
    ),
    Mutation(
        "drop the results bucket's key",
        CMEK,
        edit(named("coordinator-results"), _set("encryption", None)),
    ),
    Mutation(
        "move the results bucket to another region",
        MOVED,
        edit(named("coordinator-results"), _set("location", OUTSIDE_REGION)),
    ),
)

MUTATIONS = (*BASE_MUTATIONS, *ATTACKER_MUTATIONS, *FEDERATION_MUTATIONS)


def _unprotect_named(stack: Stack, name: str) -> tuple[Stack, Resource]:
    i = _find(stack, named(name), name)
    changed = replace(stack[i], protect=False)
    return [*stack[:i], changed, *stack[i + 1 :]], changed


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
    # The federation services deployed: the worker on Confidential Space, the coordinator.
    "us+worker": (
        "us",
        {
            "workerImageDigest": "sha256:" + "ab" * 32,
            "confidentialSpaceImageProjectNumber": "100000000088",
        },
    ),
    "hub+coordinator": (
        "hub",
        {
            "coordinatorImageDigest": "sha256:" + "ab" * 32,
            "hubSigningKey": "11" * 32,
            "nodes": [
                {"name": n, "project": f"fed-node-{n}", "signingKey": f"{i}" * 64}
                for i, n in enumerate(("us", "eu", "sg"), start=2)
            ],
        },
    ),
}
# The hub outputs a variant's node reads (pulumi.StackReference): a pinned roster.
HUB_ROSTER = {
    "organization/sovereign-genomics/hub": {
        "roster": json.dumps({"format": "sovereign-federation-roster/1", "hub": {}, "nodes": []})
    }
}


@cache
def captured(stack: str) -> tuple[tuple[Resource, ...], PolicyConfig]:
    """A stack's resources as captured from the mocked program, and its policy config."""
    if stack == REFERENCE:
        # The us stack plus the kinds it does not declare (a VM, an ingress rule, a topic,
        # a dataset with an accesses list, a Batch job), declared by the reference node.
        from tests.policy.reference_stack import REFERENCE_KINDS, reference_node

        base, config = captured("us")
        extra = tuple(
            resource_from(r)
            for r in capture_stack("us", program=reference_node)
            if r.type in REFERENCE_KINDS or r.type.startswith(p.PYTHON_DYNAMIC)
        )
        return base + extra, config
    base, overrides = VARIANTS.get(stack, (stack, {}))
    resources = capture_stack(base, overrides, references=HUB_ROSTER)
    return tuple(resource_from(r) for r in resources), config_for_stack(base, overrides=overrides)


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
