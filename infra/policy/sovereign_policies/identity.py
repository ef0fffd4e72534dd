"""Identity: least privilege, nothing public, no default or key-based service accounts."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .model import Finding, Policy, PolicyConfig, Resource, Severity
from .props import (
    BQ_DATASET,
    BQ_DATASET_ACCESS,
    BQ_DATASET_IAM_POLICY,
    SERVICE_ACCOUNT_KEY,
    VM_TYPES,
    batch_job,
    get,
    is_true,
    items,
    known,
    org_policies,
    org_policy_rules,
)

BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
PUBLIC_PRINCIPALS = frozenset({"allUsers", "allAuthenticatedUsers"})
_IAM_SUFFIXES = ("iammember", "iambinding", "iampolicy")


def is_iam(resource: Resource) -> bool:
    """Any *IAMMember / *IamBinding / *IAMPolicy resource, whatever its casing or service."""
    return resource.type.rsplit(":", 1)[-1].lower().endswith(_IAM_SUFFIXES)


def grants(resource: Resource) -> list[tuple[str, str]]:
    """(role, member) pairs an IAM or dataset-access resource grants."""
    props = resource.props
    pairs: list[tuple[str, str]] = []
    if is_iam(resource):
        role = str(known(props.get("role"), "role") or "")
        if "member" in props:
            pairs.append((role, str(known(props.get("member"), "member"))))
        for member in items(props.get("members"), "members"):
            pairs.append((role, str(known(member, "members"))))
        if "policyData" in props:
            data = known(props.get("policyData"), "policyData")
            policy = json.loads(data) if isinstance(data, str) else data
            for binding in (policy or {}).get("bindings", []):
                pairs.extend((str(binding.get("role")), str(m)) for m in binding.get("members", []))
    accesses: list[Any] = []
    if resource.type == BQ_DATASET:
        accesses = items(props.get("accesses"), "accesses")
    elif resource.type == BQ_DATASET_ACCESS:
        accesses = [props]
    for access in accesses:
        access = known(access, "accesses")
        role = str(access.get("role", ""))
        for key in ("view", "dataset", "routine"):  # authorized views, datasets, routines
            target = access.get(key)
            if isinstance(target, Mapping):
                inner = target.get("dataset") if key == "dataset" else target
                project = get(inner, "projectId") if isinstance(inner, Mapping) else None
                pairs.append((role or f"authorized {key}", f"{key}:{project}"))
        for key, prefix in (
            ("iamMember", ""),
            ("specialGroup", ""),
            ("userByEmail", "user:"),
            ("groupByEmail", "group:"),
            ("domain", "domain:"),
        ):
            if access.get(key):
                pairs.append((role, f"{prefix}{access[key]}"))
    return pairs


def _no_basic_roles(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    for role, member in grants(resource):
        if role in BASIC_ROLES:
            yield (
                f"grants the basic role {role} to {member}, which holds thousands of "
                "permissions; fix: grant the narrow predefined role the identity needs"
            )


def _no_public_principals(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    for role, member in grants(resource):
        if member in PUBLIC_PRINCIPALS:
            yield (
                f"grants {role or 'access'} to {member}, i.e. to anyone on the internet; fix: "
                "remove the binding and grant named identities only"
            )


# Roles that let the holder become someone else or change who may do what. Data roles
# (storage.objectAdmin on the bucket it concerns) are not privilege; they are listed here
# as the allow-list so "Admin" in a name is not mistaken for it.
PRIVILEGED_ROLES = frozenset(
    {
        "roles/iam.serviceAccountTokenCreator",
        "roles/iam.serviceAccountUser",
        "roles/iam.serviceAccountKeyAdmin",
        "roles/iam.serviceAccountOpenIdTokenCreator",
        "roles/iam.workloadIdentityUser",
        "roles/iam.securityAdmin",
        "roles/iam.roleAdmin",
        "roles/resourcemanager.projectIamAdmin",
        "roles/orgpolicy.policyAdmin",
        "roles/cloudkms.cryptoKeyEncrypterDecrypterViaDelegation",
    }
)
NOT_PRIVILEGED = frozenset({"roles/storage.objectAdmin"})


def is_privileged(role: str) -> bool:
    if role in BASIC_ROLES or role in NOT_PRIVILEGED:
        return False  # basic roles: identity-no-basic-roles
    last = role.rsplit(".", 1)[-1]
    return role in PRIVILEGED_ROLES or last == "admin" or last.endswith("Admin")


def _privileged_roles(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    for role, member in grants(resource):
        if is_privileged(role):
            yield (
                f"grants the privileged role {role} to {member} (it can act as other "
                "identities or change access, so one compromised workload owns the node); "
                "fix: grant the narrow data or job role the identity needs, and keep "
                "administration with the deployer outside the stack"
            )


def _dataset_access(resources: Sequence[Resource], _config: PolicyConfig) -> Iterator[Finding]:
    policies = {
        str(known(r.props.get("datasetId"), "datasetId"))
        for r in resources
        if r.type == BQ_DATASET_IAM_POLICY
    }
    for dataset in (r for r in resources if r.type == BQ_DATASET):
        dataset_id = str(known(dataset.props.get("datasetId"), "datasetId"))
        accesses = items(dataset.props.get("accesses"), "accesses")
        if dataset_id not in policies and not accesses:
            yield Finding(
                "keeps BigQuery's default access list, so every viewer, editor and owner of "
                "the project reads the patient data; fix: declare its whole access with "
                "gcp.bigquery.DatasetIamPolicy (or the accesses list) naming only the node's "
                "identities",
                dataset,
            )
    for r in resources:
        if r.type not in (BQ_DATASET, BQ_DATASET_ACCESS, BQ_DATASET_IAM_POLICY) and not (
            r.type.startswith("gcp:bigquery/datasetIam")
        ):
            continue
        for role, member in grants(r):
            if member.startswith(_PROJECT_GROUPS):
                yield Finding(
                    f"grants {role or 'access'} to {member}, i.e. to everyone holding that "
                    "project role; fix: remove it and name the node's identities only",
                    r,
                )


_PROJECT_GROUPS = (
    "projectReaders",
    "projectWriters",
    "projectOwners",
    "projectViewers",
    "projectEditors",
)


DEFAULT_SA_SUFFIXES = (
    "-compute@developer.gserviceaccount.com",  # Compute Engine default (Editor)
    "@appspot.gserviceaccount.com",  # App Engine default (Editor)
)


def _no_default_service_account(resource: Resource, config: PolicyConfig) -> Iterator[str]:
    email: Any = None
    if resource.type in VM_TYPES:
        account = known(resource.props.get("serviceAccount"), "serviceAccount")
        if account is None:
            return  # no service account attached at all
        email = get(account, "email")
        if not email:
            yield (
                "attaches a service account without an email, which means the Compute Engine "
                "default service account (Editor on the project); fix: set "
                "service_account.email to the node's dedicated batch service account"
            )
            return
    else:
        job = batch_job(resource)
        if job is None:
            return
        email = get(job, "allocationPolicy.serviceAccount.email")
    if not email:
        return
    email = str(known(email, "serviceAccount.email"))
    if email.endswith(DEFAULT_SA_SUFFIXES):
        yield (
            f"runs as the default service account {email} (Editor on the project); fix: use "
            "the node's dedicated least-privilege service account"
        )
        return
    from .principals import Principal, classify

    kind = classify(f"serviceAccount:{email}", config)
    if config.project and kind is not Principal.OWN_SERVICE_ACCOUNT:
        yield (
            f"runs as {email}, {kind.value}, not one of this project's dedicated accounts "
            "(its rights are granted elsewhere, out of this stack's review); fix: run as the "
            "node's own least-privilege service account"
        )


def _no_service_account_keys(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if resource.type == SERVICE_ACCOUNT_KEY:
        yield (
            "creates a long-lived service account key, a credential that can leak and "
            "works from anywhere; fix: remove it and use attached service accounts or "
            "workload identity federation"
        )


DISABLE_KEY_CREATION = "iam.disableServiceAccountKeyCreation"


def _key_creation_org_policy(
    resources: Sequence[Resource], config: PolicyConfig
) -> Iterator[Finding]:
    enforced = any(
        is_true(rule.get("enforce"), "spec.rules.enforce")
        for policy in org_policies(resources, DISABLE_KEY_CREATION)
        for rule in org_policy_rules(policy)
    )
    if not enforced:
        yield Finding(
            f"the stack has no enforced {DISABLE_KEY_CREATION} org policy, so anyone with IAM "
            "admin rights can mint service account keys; fix: declare gcp.orgpolicy.Policy "
            f'.../policies/{DISABLE_KEY_CREATION} with spec.rules [{{enforce: "TRUE"}}]'
        )


POLICIES = [
    Policy(
        name="identity-no-privileged-roles",
        pillar="Identity",
        description=(
            "No grant of a role that lets its holder act as another identity or change access "
            "(service account token creator or user, key admin, workload identity user, "
            "project IAM admin, security admin, any *Admin / *.admin role) outside the "
            "allow-list (storage.objectAdmin on a bucket)."
        ),
        severity=Severity.HIGH,
        checkov=("CKV_GCP_41", "CKV_GCP_42", "CKV_GCP_49"),
        config_keys=(),
        resource_check=_privileged_roles,
    ),
    Policy(
        name="identity-dataset-explicit-access",
        pillar="Identity",
        description=(
            "Every BigQuery dataset declares its whole access list (DatasetIamPolicy or "
            "accesses), so BigQuery's defaults (every project viewer reads it) never apply, "
            "and no grant names a project-role convenience group."
        ),
        severity=Severity.HIGH,
        checkov=(),
        config_keys=(),
        stack_check=_dataset_access,
    ),
    Policy(
        name="identity-no-basic-roles",
        pillar="Identity",
        description=(
            "No IAM binding or member anywhere (project, dataset, bucket, topic, key, ...) "
            "grants roles/owner, roles/editor or roles/viewer."
        ),
        severity=Severity.HIGH,
        checkov=("CKV_GCP_117",),
        config_keys=(),
        resource_check=_no_basic_roles,
    ),
    Policy(
        name="identity-no-public-principals",
        pillar="Identity",
        description=(
            "No IAM binding, member, policy or BigQuery dataset access grants anything to "
            "allUsers or allAuthenticatedUsers."
        ),
        severity=Severity.CRITICAL,
        checkov=("CKV_GCP_28", "CKV_GCP_15", "CKV_GCP_100", "CKV_GCP_112", "CKV_GCP_101"),
        config_keys=(),
        resource_check=_no_public_principals,
    ),
    Policy(
        name="identity-no-default-service-account",
        pillar="Identity",
        description=(
            "Every instance template, instance and Batch job runs as one of this project's own "
            "service accounts: never a default one (Compute's "
            "PROJECT_NUMBER-compute@developer, App Engine's PROJECT@appspot), nor another "
            "project's account or a Google service agent."
        ),
        severity=Severity.HIGH,
        checkov=("CKV_GCP_30",),
        config_keys=("project", "projectNumber"),
        resource_check=_no_default_service_account,
    ),
    Policy(
        name="identity-no-service-account-keys",
        pillar="Identity",
        description="The stack creates no service account keys (gcp.serviceaccount.Key).",
        severity=Severity.HIGH,
        checkov=(),
        config_keys=(),
        resource_check=_no_service_account_keys,
    ),
    Policy(
        name="identity-key-creation-org-policy",
        pillar="Identity",
        description=(
            "Every stack (node and hub) enforces the iam.disableServiceAccountKeyCreation org "
            "policy, so no one can create service account keys in its project."
        ),
        severity=Severity.HIGH,
        checkov=(),
        config_keys=(),
        stack_check=_key_creation_org_policy,
    ),
]
