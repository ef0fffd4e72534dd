"""Sovereignty: everything stays in the jurisdiction, fenced by a VPC-SC perimeter."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .locations import location_allowed
from .model import Finding, Policy, PolicyConfig, Resource, Severity
from .props import (
    ACCESS_LEVEL,
    AR_REPOSITORY,
    BQ_DATASET,
    BUCKET,
    INSTANCE,
    KMS_KEY_RING,
    PROJECT_SERVICE,
    PUBSUB_TOPIC,
    SERVICE_PERIMETER,
    SUBNETWORK,
    batch_job,
    get,
    items,
    known,
    module_of,
    org_policies,
    org_policy_rules,
)

_NO_CONFIG = (
    "the jurisdiction's allowedLocations are not configured; fix: pass the pack config "
    "(python -m infra.policy.config <stack> > policy-config.json; --policy-pack-config "
    "policy-config.json) or set sovereign-genomics:allowedLocations in Pulumi.<stack>.yaml"
)

# Resources whose location must be written down: left out, Google picks one (often a
# multi-region such as US) that no jurisdiction check would see.
_REQUIRED_LOCATION: dict[str, str] = {
    KMS_KEY_RING: "location",
    BQ_DATASET: "location",
    BUCKET: "location",
    AR_REPOSITORY: "location",
    SUBNETWORK: "region",
    INSTANCE: "zone",
}
_LOCATION_KEYS = ("location", "region", "zone")


def _located(resource: Resource) -> Iterator[tuple[str, Any]]:
    """(input path, location) pairs the resource declares, including nested ones."""
    if resource.type.startswith("gcp:"):
        for key in _LOCATION_KEYS:
            if key in resource.props:
                yield key, resource.props.get(key)
    if resource.type == PUBSUB_TOPIC:
        regions = get(resource.props, "messageStoragePolicy.allowedPersistenceRegions")
        for i, region in enumerate(items(regions, "messageStoragePolicy")):
            yield f"messageStoragePolicy.allowedPersistenceRegions[{i}]", region
    job = batch_job(resource)
    if job is not None:
        yield "location", resource.props.get("location")
        allowed = get(job, "allocationPolicy.location.allowedLocations")
        for i, loc in enumerate(items(allowed, "jobJson.allocationPolicy.location")):
            yield f"jobJson.allocationPolicy.location.allowedLocations[{i}]", loc


def _location(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    required = _REQUIRED_LOCATION.get(resource.type)
    if required is not None and resource.props.get(required) in (None, ""):
        yield (
            f"{required} is not set, so Google would choose where the data lives; "
            f"fix: set {required} to a location inside {list(config.allowed_locations)}"
        )
    if resource.type == PUBSUB_TOPIC and not get(
        resource.props, "messageStoragePolicy.allowedPersistenceRegions"
    ):
        yield (
            "messageStoragePolicy.allowedPersistenceRegions is not set, so messages may be "
            "stored in any region; fix: set message_storage_policy.allowed_persistence_regions "
            "to the stack's region"
        )
    job = batch_job(resource)
    if job is not None and not get(job, "allocationPolicy.location.allowedLocations"):
        yield (
            "the Batch job does not pin allocationPolicy.location.allowedLocations, so its VMs "
            "may run in any zone; fix: set it to regions/<the stack's region>"
        )
    for path, value in _located(resource):
        if value in (None, ""):
            continue
        location = str(known(value, path))
        if not config.allowed_locations:
            yield f"{path} is {location!r} but {_NO_CONFIG}"
        elif not location_allowed(location, config.allowed_locations):
            yield (
                f"{path} is {location!r}, outside the jurisdiction's allowed locations "
                f"{list(config.allowed_locations)}; fix: move it to a region inside them"
            )


LOCATIONS_CONSTRAINT = "gcp.resourceLocations"


def _location_org_policy(resources: Sequence[Resource], config: PolicyConfig) -> Iterator[Finding]:
    policies = org_policies(resources, LOCATIONS_CONSTRAINT)
    if not policies:
        yield Finding(
            f"the stack has no {LOCATIONS_CONSTRAINT} org policy, so nothing stops a resource "
            "created outside this stack from leaving the jurisdiction; fix: declare "
            f"gcp.orgpolicy.Policy .../policies/{LOCATIONS_CONSTRAINT} allowing exactly "
            f"{list(config.allowed_locations)}"
        )
    for policy in policies:
        rules = org_policy_rules(policy)
        allowed: set[str] = set()
        for rule in rules:
            if str(known(rule.get("allowAll"), "spec.rules.allowAll")).upper() == "TRUE":
                yield Finding(
                    "allows all locations (allowAll); fix: allow only "
                    f"{list(config.allowed_locations)}",
                    policy,
                )
            values = known(get(rule, "values.allowedValues"), "spec.rules.values") or []
            allowed.update(str(v) for v in values)
        if not config.allowed_locations:
            yield Finding(_NO_CONFIG, policy)
        elif allowed != set(config.allowed_locations):
            yield Finding(
                f"allows {sorted(allowed)} but the jurisdiction's allowedLocations are "
                f"{sorted(config.allowed_locations)}; fix: make spec.rules[].values."
                "allowed_values exactly the stack's allowedLocations",
                policy,
            )


# APIs a resource module calls, for modules whose API is a data service VPC-SC restricts.
_MODULE_APIS: dict[str, str] = {
    "artifactregistry": "artifactregistry.googleapis.com",
    "bigquery": "bigquery.googleapis.com",
    "compute": "compute.googleapis.com",
    "dns": "dns.googleapis.com",
    "kms": "cloudkms.googleapis.com",
    "logging": "logging.googleapis.com",
    "monitoring": "monitoring.googleapis.com",
    "pubsub": "pubsub.googleapis.com",
    "serviceaccount": "iam.googleapis.com",
    "storage": "storage.googleapis.com",
}
BATCH_API = "batch.googleapis.com"
# The policy's own rule, not the stack's word: only these management-plane APIs may stay
# outside the perimeter (restricting them can lock the deployer out of the project).
PERIMETER_EXEMPT_APIS = frozenset(
    {
        "cloudresourcemanager.googleapis.com",
        "orgpolicy.googleapis.com",
        "serviceusage.googleapis.com",
    }
)


def used_apis(resources: Sequence[Resource]) -> set[str]:
    """APIs the stack enables (projects.Service) or whose resources it declares."""
    apis: set[str] = set()
    for r in resources:
        if r.type == PROJECT_SERVICE:
            apis.add(str(known(r.props.get("service"), "service")))
        elif r.type.startswith("gcp:") and module_of(r.type) in _MODULE_APIS:
            apis.add(_MODULE_APIS[module_of(r.type)])
        elif batch_job(r) is not None:
            apis.add(BATCH_API)
    return apis - PERIMETER_EXEMPT_APIS


def perimeter_config(perimeter: Resource) -> Mapping[str, Any]:
    """The perimeter config in force: `spec` when dry-run is explicit, else `status`."""
    dry_run = known(perimeter.props.get("useExplicitDryRunSpec"), "useExplicitDryRunSpec")
    key = "spec" if dry_run is True else "status"
    block = known(perimeter.props.get(key), key)
    return block if isinstance(block, Mapping) else {}


def _perimeters(resources: Sequence[Resource]) -> list[Resource]:
    return [r for r in resources if r.type == SERVICE_PERIMETER]


def _no_perimeter(what: str) -> Finding:
    return Finding(
        f"the node declares no VPC-SC service perimeter, so {what}; fix: declare a "
        "gcp.accesscontextmanager.ServicePerimeter around the node project"
    )


def _perimeter_services(resources: Sequence[Resource], config: PolicyConfig) -> Iterator[Finding]:
    if not config.is_node:
        return
    perimeters = _perimeters(resources)
    if not perimeters:
        yield _no_perimeter("no API is fenced in")
        return
    needed = used_apis(resources)
    for perimeter in perimeters:
        restricted = {
            str(s)
            for s in items(
                perimeter_config(perimeter).get("restrictedServices"), "restrictedServices"
            )
        }
        missing = sorted(needed - restricted)
        if missing:
            yield Finding(
                f"does not restrict {', '.join(missing)}, which the stack uses; fix: add them "
                "to restricted_services",
                perimeter,
            )
        vpc = perimeter_config(perimeter).get("vpcAccessibleServices") or {}
        allowed = {str(a) for a in items(get(vpc, "allowedServices"), "allowedServices")}
        if get(vpc, "enableRestriction") is not True or not allowed <= (
            restricted | {"RESTRICTED-SERVICES"}
        ):
            yield Finding(
                "lets the VPC reach services outside the perimeter's restricted list "
                f"(vpcAccessibleServices {dict(vpc) or 'unset'}); fix: enable_restriction "
                'True with allowed_services ["RESTRICTED-SERVICES"]',
                perimeter,
            )


_ANY_IDENTITY = ("ANY_IDENTITY", "ANY_USER_ACCOUNT", "ANY_SERVICE_ACCOUNT")
PUBSUB_API = "pubsub.googleapis.com"
COMPUTE_API = "compute.googleapis.com"
FEDERATION_METHODS = (
    "google.pubsub.v1.Publisher.Publish",
    "google.pubsub.v1.Subscriber.Acknowledge",
    "google.pubsub.v1.Subscriber.ModifyAckDeadline",
    "google.pubsub.v1.Subscriber.Pull",
    "google.pubsub.v1.Subscriber.StreamingPull",
)
IMAGE_READERS = (
    "service-{number}@gcp-sa-cloudbatch.iam.gserviceaccount.com",
    "service-{number}@compute-system.iam.gserviceaccount.com",
)


def _egress_problems(policy: Mapping[str, Any], hub: str, config: PolicyConfig) -> Iterator[str]:
    identity_type = get(policy, "egressFrom.identityType")
    identities = [str(i) for i in get(policy, "egressFrom.identities") or []]
    if identity_type in _ANY_IDENTITY or not identities:
        yield (
            f"lets {identity_type or 'any identity'} out (egressFrom names no identities); "
            "fix: name only the federation worker's service account in egress_from.identities"
        )
    if get(policy, "egressTo.externalResources"):
        yield "reaches external resources; fix: remove egress_to.external_resources"
    targets = [str(t) for t in get(policy, "egressTo.resources") or []]
    operations = get(policy, "egressTo.operations") or []
    services = sorted({str(get(op, "serviceName")) for op in operations})
    if services == [COMPUTE_API] and config.is_node:
        # Batch's boot image: only the Batch and Compute agents, only to one project.
        agents = {f"serviceAccount:{a.format(number=config.project_number)}" for a in IMAGE_READERS}
        if not set(identities) <= agents:
            yield (
                f"lets {sorted(set(identities) - agents)} read Compute resources outside; fix: "
                "only the Batch and Compute service agents may read the boot image"
            )
        # Batch's image project first; the Confidential Space image project (the worker's
        # boot image) only when configured.
        images = [f"projects/{n}" for n in (config.worker_image_project_number,) if n]
        extra = [t for t in targets[1:] if t not in images]
        repeated = len(set(targets)) != len(targets)
        if not targets or targets[0] in (hub, "*", "") or extra or repeated:
            yield (
                f"lets Compute reads out to {targets or 'every project'}; fix: name only "
                "Batch's image project (batchImageProjectNumber) and, with the worker, "
                "confidentialSpaceImageProjectNumber"
            )
        return
    if targets != [hub]:
        yield (
            f"sends data to {targets or 'every project'} instead of only the hub {hub}; fix: "
            f'set egress_to.resources to ["{hub}"]'
        )
    if services != [PUBSUB_API]:
        yield (
            f"allows services {services or 'all'} instead of only {PUBSUB_API}; fix: give "
            f"egress_to.operations only service_name {PUBSUB_API}"
        )
    worker = f"serviceAccount:{config.federation_identity}" if config.federation_identity else None
    if worker and identities and identities != [worker]:
        yield (
            f"lets {sorted(set(identities) - {worker})} out to the hub; fix: name only the "
            f"federation worker {worker}"
        )
    methods = {
        str(get(m, "method"))
        for op in operations
        for m in get(op, "methodSelectors") or [{"method": "*"}]
    }
    extra = sorted(methods - set(FEDERATION_METHODS))
    if extra:
        yield (
            f"allows Pub/Sub methods {extra} beyond publish/pull/ack; fix: list only "
            f"{', '.join(FEDERATION_METHODS)}"
        )


def _perimeter_egress(resources: Sequence[Resource], config: PolicyConfig) -> Iterator[Finding]:
    if not config.is_node:
        return
    perimeters = _perimeters(resources)
    if not perimeters:
        yield _no_perimeter("nothing limits where data can go")
        return
    if not config.hub_project_number:
        yield Finding(
            "the hub's project number is not configured; fix: set "
            "sovereign-genomics:hubProjectNumber in Pulumi.<stack>.yaml or pass the pack config"
        )
        return
    hub = f"projects/{config.hub_project_number}"
    for perimeter in perimeters:
        policies = items(perimeter_config(perimeter).get("egressPolicies"), "egressPolicies")
        for i, policy in enumerate(policies):
            for problem in _egress_problems(known(policy, f"egressPolicies[{i}]"), hub, config):
                yield Finding(f"egress policy {i} {problem}", perimeter)


def _perimeter_scope(resources: Sequence[Resource], config: PolicyConfig) -> Iterator[Finding]:
    """Fences exactly this project (and its key project), enforced unless config says dry-run."""
    if not config.is_node:
        return
    perimeters = _perimeters(resources)
    if not perimeters:
        yield _no_perimeter("nothing fences the project")
        return
    want = {f"projects/{n}" for n in (config.project_number, config.key_project_number) if n}
    dry_run_declared = config.perimeter_mode == "dryrun"
    for perimeter in perimeters:
        dry_run = known(perimeter.props.get("useExplicitDryRunSpec"), "useExplicitDryRunSpec")
        if dry_run is True and not dry_run_declared:
            yield Finding(
                "sits in dry-run (use_explicit_dry_run_spec) although the stack config says "
                "enforced: it only logs what it should block; fix: move the config to status, "
                "or set perimeterMode: dryrun so the posture report warns about it",
                perimeter,
            )
        if dry_run is not True and dry_run_declared:
            yield Finding(
                "is enforced although perimeterMode is dryrun; fix: make them agree", perimeter
            )
        if known(perimeter.props.get("perimeterType"), "perimeterType") not in (
            None,
            "PERIMETER_TYPE_REGULAR",
        ):
            yield Finding(
                "is a bridge perimeter (shares access with other perimeters); fix: "
                'perimeter_type="PERIMETER_TYPE_REGULAR"',
                perimeter,
            )
        block = perimeter_config(perimeter)
        fenced = {str(r) for r in items(block.get("resources"), "resources")}
        if want and fenced != want:
            yield Finding(
                f"fences {sorted(fenced) or 'nothing'} instead of exactly {sorted(want)}; fix: "
                "resources must be this node's project number (and its key project's)",
                perimeter,
            )
        other = "status" if dry_run is True else "spec"
        if perimeter.props.get(other):
            yield Finding(
                f"also carries a {other} block; fix: keep one description of the fence",
                perimeter,
            )


def _perimeter_ingress(resources: Sequence[Resource], config: PolicyConfig) -> Iterator[Finding]:
    """Only the declared deployer, through its access level, comes in."""
    if not config.is_node:
        return
    levels = {
        str(known(r.props.get("name"), "name")): r for r in resources if r.type == ACCESS_LEVEL
    }
    for _name, level in levels.items():
        for i, cond in enumerate(items(get(level.props, "basic.conditions"), "basic.conditions")):
            members = [str(m) for m in items(get(cond, "members"), "members")]
            ranges = items(get(cond, "ipSubnetworks"), "ipSubnetworks")
            if members != [config.deployer] or get(cond, "negate"):
                yield Finding(
                    f"condition {i} admits {members or 'anyone'} (negate "
                    f"{get(cond, 'negate')}); only the deployer {config.deployer} may pass; "
                    "fix: members [deployer], no negate",
                    level,
                )
            if not members and not ranges:
                yield Finding(f"condition {i} admits any request; fix: name the deployer", level)
    for perimeter in _perimeters(resources):
        policies = items(perimeter_config(perimeter).get("ingressPolicies"), "ingressPolicies")
        if not policies:
            yield Finding(
                "has no ingress rule for the deployer, so the first enforced `pulumi up` locks "
                "the deployer out of every later one; fix: an ingress policy from the deployer "
                "identity through its access level",
                perimeter,
            )
        for i, policy in enumerate(policies):
            policy = known(policy, f"ingressPolicies[{i}]")
            identities = [str(x) for x in get(policy, "ingressFrom.identities") or []]
            kind = get(policy, "ingressFrom.identityType")
            sources = get(policy, "ingressFrom.sources") or []
            source_levels = [str(get(src, "accessLevel")) for src in sources]
            if kind or identities != [config.deployer]:
                yield Finding(
                    f"ingress policy {i} admits {kind or identities}; only the deployer "
                    f"{config.deployer} may come in; fix: ingress_from.identities [deployer]",
                    perimeter,
                )
            if (
                not source_levels
                or any(lvl not in levels for lvl in source_levels)
                or any(get(src, "resource") for src in sources)
            ):
                yield Finding(
                    f"ingress policy {i} comes from {source_levels or 'any source'} instead of "
                    "the deployer's declared access level; fix: sources [{access_level: "
                    "<the stack's AccessLevel>}]",
                    perimeter,
                )


POLICIES = [
    Policy(
        name="sovereignty-resource-location",
        pillar="Sovereignty",
        description=(
            "Every located resource (key ring, dataset, bucket, repository, subnet, VM, Pub/Sub "
            "message storage, Batch job) states its location and it lies inside the "
            "jurisdiction's allowed locations. Global resources (networks, instance templates) "
            "have no location."
        ),
        severity=Severity.CRITICAL,
        checkov=(),
        config_keys=("allowedLocations",),
        resource_check=_location,
    ),
    Policy(
        name="sovereignty-location-org-policy",
        pillar="Sovereignty",
        description=(
            "Every stack (node and hub) declares the gcp.resourceLocations org policy and it "
            "allows exactly "
            "the jurisdiction's allowed locations, so resources created outside Pulumi cannot "
            "leave either."
        ),
        severity=Severity.HIGH,
        checkov=(),
        config_keys=("allowedLocations",),
        stack_check=_location_org_policy,
    ),
    Policy(
        name="sovereignty-perimeter-services",
        pillar="Sovereignty",
        description=(
            "A node stack has a VPC Service Controls perimeter that restricts every API the "
            "stack enables or declares resources of (management-plane APIs excepted: "
            + ", ".join(sorted(PERIMETER_EXEMPT_APIS))
            + "), and its VPC reaches only restricted services."
        ),
        severity=Severity.HIGH,
        checkov=(),
        config_keys=("role",),
        stack_check=_perimeter_services,
    ),
    Policy(
        name="sovereignty-perimeter-egress",
        pillar="Sovereignty",
        description=(
            "The node perimeter's only ways out: the federation worker calling Pub/Sub "
            "publish/pull/ack in the hub's project, and the Batch and Compute agents reading "
            "Batch's boot image from its one image project. No other project, service, "
            "method or identity."
        ),
        severity=Severity.CRITICAL,
        checkov=(),
        config_keys=("role", "hubProjectNumber", "federationIdentity", "projectNumber"),
        stack_check=_perimeter_egress,
    ),
    Policy(
        name="sovereignty-perimeter-scope",
        pillar="Sovereignty",
        description=(
            "The node perimeter is a regular perimeter fencing exactly this project (and its "
            "key project), enforced unless the stack config says perimeterMode dryrun (the "
            "posture report then warns), with one description of the fence."
        ),
        severity=Severity.CRITICAL,
        checkov=(),
        config_keys=("role", "projectNumber", "keyProject", "perimeterMode"),
        stack_check=_perimeter_scope,
    ),
    Policy(
        name="sovereignty-perimeter-ingress",
        pillar="Sovereignty",
        description=(
            "Only the declared deployer comes into the node perimeter: every ingress rule "
            "names exactly the deployer identity and the stack's access level, whose "
            "conditions name only the deployer; and there is such a rule (else the first "
            "enforced up locks the deployer out)."
        ),
        severity=Severity.CRITICAL,
        checkov=(),
        config_keys=("role", "deployer"),
        stack_check=_perimeter_ingress,
    ),
]
