"""Type tokens and careful reading of camelCase props (which may hold preview unknowns)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .model import UNKNOWN, NotKnownYet, Resource

# pulumi-gcp type tokens (their casing is not uniform: copy, never derive).
KMS_KEY_RING = "gcp:kms/keyRing:KeyRing"
KMS_CRYPTO_KEY = "gcp:kms/cryptoKey:CryptoKey"
BQ_DATASET = "gcp:bigquery/dataset:Dataset"
BQ_TABLE = "gcp:bigquery/table:Table"
BQ_DATASET_ACCESS = "gcp:bigquery/datasetAccess:DatasetAccess"
BQ_DATASET_IAM_POLICY = "gcp:bigquery/datasetIamPolicy:DatasetIamPolicy"
KMS_KEY_IAM_MEMBER = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
ROUTE = "gcp:compute/route:Route"
NETWORK_PEERING = "gcp:compute/networkPeering:NetworkPeering"
DNS_RECORD_SET = "gcp:dns/recordSet:RecordSet"
DNS_MANAGED_ZONE = "gcp:dns/managedZone:ManagedZone"
ACCESS_LEVEL = "gcp:accesscontextmanager/accessLevel:AccessLevel"
PUBSUB_SUBSCRIPTION = "gcp:pubsub/subscription:Subscription"
PUBSUB_SUBSCRIPTION_IAM_MEMBER = "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember"
AUDIT_CONFIG = "gcp:projects/iAMAuditConfig:IAMAuditConfig"
LOG_BUCKET = "gcp:logging/projectBucketConfig:ProjectBucketConfig"
LOG_SINK = "gcp:logging/projectSink:ProjectSink"
LOG_EXCLUSION = "gcp:logging/projectExclusion:ProjectExclusion"
BUCKET = "gcp:storage/bucket:Bucket"
AR_REPOSITORY = "gcp:artifactregistry/repository:Repository"
PUBSUB_TOPIC = "gcp:pubsub/topic:Topic"
NETWORK = "gcp:compute/network:Network"
SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
FIREWALL = "gcp:compute/firewall:Firewall"
INSTANCE_TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
REGION_INSTANCE_TEMPLATE = "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate"
INSTANCE = "gcp:compute/instance:Instance"
SERVICE_PERIMETER = "gcp:accesscontextmanager/servicePerimeter:ServicePerimeter"
ORG_POLICY = "gcp:orgpolicy/policy:Policy"
SERVICE_ACCOUNT_KEY = "gcp:serviceaccount/key:Key"
PROJECT_SERVICE = "gcp:projects/service:Service"
# Pulumi dynamic resources written in Python: "pulumi-python:dynamic:Resource", or
# "pulumi-python:dynamic/<module>:<Name>" for a subclass naming itself. The Confidential
# Batch job is one, recognised by its jobJson input.
PYTHON_DYNAMIC = "pulumi-python:dynamic"

VM_TYPES = frozenset({INSTANCE_TEMPLATE, REGION_INSTANCE_TEMPLATE, INSTANCE})
TEMPLATE_TYPES = frozenset({INSTANCE_TEMPLATE, REGION_INSTANCE_TEMPLATE})


def get(props: Mapping[str, Any] | Any, path: str) -> Any:
    """The value at a dotted path, None if absent, UNKNOWN if any step is unknown."""
    value: Any = props
    for key in path.split("."):
        if value is UNKNOWN:
            return UNKNOWN
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def is_set(value: Any) -> bool:
    """Present and non-empty; an unknown value counts as set (it is computed, so declared)."""
    if value is UNKNOWN:
        return True
    if value is None:
        return False
    if isinstance(value, (str, Mapping, Sequence)):
        return len(value) > 0
    return True


def known(value: Any, path: str) -> Any:
    """The value, or NotKnownYet when a check needs a value only known after creation."""
    if value is UNKNOWN:
        raise NotKnownYet(path)
    if isinstance(value, Mapping):
        for key, inner in value.items():
            known(inner, f"{path}.{key}")
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for i, inner in enumerate(value):
            known(inner, f"{path}[{i}]")
    return value


def items(value: Any, path: str) -> list[Any]:
    """A list input as a list (absent = empty); unknown as a whole is NotKnownYet."""
    if value is UNKNOWN:
        raise NotKnownYet(path)
    if value is None:
        return []
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return [value]


def is_true(value: Any, path: str) -> bool:
    """A boolean input that must be true (org policy v2 booleans are the strings TRUE/FALSE)."""
    value = known(value, path)
    return value is True or (isinstance(value, str) and value.upper() == "TRUE")


def module_of(type_token: str) -> str:
    """'gcp:storage/bucket:Bucket' -> 'storage'."""
    parts = type_token.split(":")
    return parts[1].split("/")[0] if len(parts) == 3 else ""


def last_segment(path: Any) -> str:
    """The last path segment of a self link or id ('zones/x/machineTypes/n2d-standard-2')."""
    return str(path).rstrip("/").rsplit("/", 1)[-1]


def batch_job(resource: Resource) -> Mapping[str, Any] | None:
    """The google-cloud-batch Job of a dynamic Batch job resource (its jobJson), else None."""
    if not resource.type.startswith(PYTHON_DYNAMIC) or "jobJson" not in resource.props:
        return None
    raw = known(resource.props.get("jobJson"), "jobJson")
    if isinstance(raw, Mapping):
        return raw
    try:
        job = json.loads(str(raw))
    except json.JSONDecodeError:
        return {}
    return job if isinstance(job, Mapping) else {}


def org_policy_constraint(resource: Resource) -> str | None:
    """The constraint an org policy v2 resource sets (from name '.../policies/<constraint>')."""
    if resource.type != ORG_POLICY:
        return None
    name = known(resource.props.get("name"), "name")
    return str(name).rsplit("/policies/", 1)[-1] if name else None


def org_policies(resources: Sequence[Resource], constraint: str) -> list[Resource]:
    return [r for r in resources if org_policy_constraint(r) == constraint]


def org_policy_rules(resource: Resource) -> list[Mapping[str, Any]]:
    rules = items(get(resource.props, "spec.rules"), "spec.rules")
    return [r for r in rules if isinstance(r, Mapping)]
