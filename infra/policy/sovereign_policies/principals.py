"""Who is granted what: principals classified, an allow-list per kind of resource.

A member string is put in one class (Google service agent of this project or another,
this project's service account, another project's service account, user, group, domain,
public, ...). Each resource kind admits only some classes; everything else is reported
with the class named, so a reviewer sees *why* (a person on a key, a group on a dataset).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import StrEnum

from .model import Policy, PolicyConfig, Resource, Severity


class Principal(StrEnum):
    OWN_SERVICE_AGENT = "this project's Google service agent"
    FOREIGN_SERVICE_AGENT = "another project's Google service agent"
    OWN_SERVICE_ACCOUNT = "this project's service account"
    FEDERATION_NODE = "a federation node's worker (declared in config)"
    FOREIGN_SERVICE_ACCOUNT = "another project's service account"
    OWN_WORKLOAD_POOL = "an identity of this project's workload identity pool"
    RESEARCHERS = "the researchers' group (declared in config)"
    USER = "a person (user)"
    GROUP = "a group"
    DOMAIN = "a whole domain"
    PUBLIC = "the public"
    PROJECT_ROLE = "a project role convenience group (projectOwners/Editors/Viewers)"
    DELETED = "a deleted principal"
    OWN_RESOURCE = "an authorized view, dataset or routine of this project"
    FOREIGN_RESOURCE = "another project's authorized view, dataset or routine"
    EXTERNAL = "an external or federated identity"
    UNKNOWN = "an unrecognised principal"


# service-N@gcp-sa-*.iam, service-N@compute-system.iam, service-N@gs-project-accounts,
# bq-N@bigquery-encryption, N@cloudservices, N@cloudbuild: Google-managed agents.
_AGENT = re.compile(
    r"^(?:service-|bq-|cmek-p)?([0-9]+)@(?:gcp-sa-[a-z0-9-]+\.iam\.gserviceaccount\.com|"
    r"compute-system\.iam\.gserviceaccount\.com|gs-project-accounts\.iam\.gserviceaccount\.com|"
    r"bigquery-encryption\.iam\.gserviceaccount\.com|cloudservices\.gserviceaccount\.com|"
    r"cloudbuild\.gserviceaccount\.com|container-engine-robot\.iam\.gserviceaccount\.com|"
    r"serverless-robot-prod\.iam\.gserviceaccount\.com)$"
)
_PROJECT_SA = re.compile(
    r"^[a-z][a-z0-9-]{4,29}@([a-z][a-z0-9-]{4,28}[a-z0-9])\.iam\.gserviceaccount\.com$"
)


def classify(member: str, config: PolicyConfig) -> Principal:
    kind, _, who = member.partition(":")
    if member in ("allUsers", "allAuthenticatedUsers"):
        return Principal.PUBLIC
    if member.startswith(
        ("projectOwners", "projectEditors", "projectViewers", "projectReaders", "projectWriters")
    ):
        return Principal.PROJECT_ROLE
    if kind == "deleted":
        return Principal.DELETED
    if kind in ("view", "dataset", "routine"):
        own = config.project is not None and who == config.project
        return Principal.OWN_RESOURCE if own else Principal.FOREIGN_RESOURCE
    if kind in ("principal", "principalSet"):
        pool = f"//iam.googleapis.com/projects/{config.project_number}/locations/global/"
        own = config.project_number is not None and who.startswith(f"{pool}workloadIdentityPools/")
        return Principal.OWN_WORKLOAD_POOL if own else Principal.EXTERNAL
    if kind == "user":
        # BigQuery's userByEmail also carries service accounts.
        return (
            _service_account(who, config)
            if who.endswith("gserviceaccount.com")
            else (Principal.USER)
        )
    if kind == "group":
        named = config.researchers_group is not None and who == config.researchers_group
        return Principal.RESEARCHERS if named else Principal.GROUP
    if kind == "domain":
        return Principal.DOMAIN
    if kind == "serviceAccount":
        return _service_account(who, config)
    return Principal.UNKNOWN


def _service_account(email: str, config: PolicyConfig) -> Principal:
    agent = _AGENT.match(email)
    if agent:
        own = config.project_number is not None and agent.group(1) == config.project_number
        return Principal.OWN_SERVICE_AGENT if own else Principal.FOREIGN_SERVICE_AGENT
    if config.node_identities and email in config.node_identities.values():
        return Principal.FEDERATION_NODE
    project = _PROJECT_SA.match(email)
    if project and config.project is not None and project.group(1) == config.project:
        return Principal.OWN_SERVICE_ACCOUNT
    return Principal.FOREIGN_SERVICE_ACCOUNT


# What each kind of resource may name. Keys (CMEK): only the agents that encrypt, and this
# project's own accounts (the signing key's signer). Everything else: this project's own
# accounts and agents; the hub's Pub/Sub also the configured nodes' workers.
_OWN = frozenset(
    {
        Principal.OWN_SERVICE_ACCOUNT,
        Principal.OWN_SERVICE_AGENT,
        Principal.OWN_RESOURCE,
        # which pool identity, with which roles: identity-attested-worker
        Principal.OWN_WORKLOAD_POOL,
    }
)
_ALLOWED: dict[str, frozenset[Principal]] = {
    "kms": _OWN,
    "pubsub": _OWN | {Principal.FEDERATION_NODE},
    # the hub's results bucket and coordinator job (what exactly: hub-coordinator-access)
    "storage": _OWN | {Principal.RESEARCHERS},
    "cloudrunv2": _OWN | {Principal.RESEARCHERS},
}
_DEFAULT_ALLOWED = _OWN


def allowed_classes(resource: Resource) -> frozenset[Principal]:
    module = resource.type.split(":")[1].split("/")[0] if resource.type.count(":") == 2 else ""
    return _ALLOWED.get(module, _DEFAULT_ALLOWED)


# Roles that use a data key: only the Google service agent that encrypts for a service may
# hold them, never a workload (it would read the data around the service's access control).
_KEY_USE_ROLE_PREFIXES = ("roles/cloudkms.cryptoKeyEncrypter", "roles/cloudkms.cryptoKeyDecrypter")


def _principals(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    from .identity import grants  # the one reader of IAM and dataset-access resources

    allowed = allowed_classes(resource)
    for role, member in grants(resource):
        kind = classify(member, config)
        if kind in (Principal.PUBLIC, Principal.PROJECT_ROLE):
            continue  # identity-no-public-principals / identity-dataset-explicit-access
        if role.startswith(_KEY_USE_ROLE_PREFIXES) and kind is not Principal.OWN_SERVICE_AGENT:
            yield (
                f"grants {role} to {member}, {kind.value}; only this project's Google service "
                "agents may encrypt or decrypt with a data key; fix: remove the grant (the "
                "workload reads data through the service, whose agent holds the key)"
            )
            continue
        if kind not in allowed:
            yield (
                f"grants {role or 'access'} to {member}, {kind.value}; this resource admits "
                f"only {', '.join(sorted(c.value for c in allowed))}; fix: grant the node's "
                "own service account (or the service agent) the narrow role instead"
            )


POLICIES = [
    Policy(
        name="identity-principal-classes",
        pillar="Identity",
        description=(
            "Every IAM grant and dataset access names a principal of an admitted class: this "
            "project's service accounts, Google service agents and workload identity pool "
            "identities (on the hub's Pub/Sub also the configured nodes' workers; on buckets "
            "and Cloud Run jobs also the configured researchers' group); a data key's "
            "encrypt/decrypt roles only this "
            "project's service agents. Persons, groups, domains, other projects' accounts or "
            "agents, external and deleted principals are refused."
        ),
        severity=Severity.HIGH,
        checkov=(),
        config_keys=("project", "projectNumber", "nodeIdentities", "researchersGroup"),
        resource_check=_principals,
    ),
]
