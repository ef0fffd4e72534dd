"""Computed outputs the real Google provider would return, for offline runs under mocks.

Under Pulumi mocks a resource's outputs are its inputs plus whatever the mock adds. The
program wires resources together through computed outputs (a key's id, a service account's
email, a network's self link), so the mocks compute them the way the provider does, from
the inputs alone: deterministic, hence stable manifests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Inputs = dict[str, Any]
_COMPUTE = "https://www.googleapis.com/compute/v1/"


def _key_ring(i: Inputs) -> Inputs:
    return {"id": f"projects/{i.get('project')}/locations/{i.get('location')}/keyRings/{i['name']}"}


def _crypto_key(i: Inputs) -> Inputs:
    return {"id": f"{i['keyRing']}/cryptoKeys/{i['name']}"}


def _service_account(i: Inputs) -> Inputs:
    email = f"{i['accountId']}@{i.get('project')}.iam.gserviceaccount.com"
    return {
        "id": f"projects/{i.get('project')}/serviceAccounts/{email}",
        "email": email,
        "member": f"serviceAccount:{email}",
        "name": f"projects/{i.get('project')}/serviceAccounts/{email}",
    }


def _bucket(i: Inputs) -> Inputs:
    return {"id": i["name"], "url": f"gs://{i['name']}", "selfLink": f"{_COMPUTE}b/{i['name']}"}


def _dataset(i: Inputs) -> Inputs:
    return {"id": f"projects/{i.get('project')}/datasets/{i['datasetId']}"}


def _table(i: Inputs) -> Inputs:
    return {"id": f"projects/{i.get('project')}/datasets/{i['datasetId']}/tables/{i['tableId']}"}


def _global(kind: str) -> Callable[[Inputs], Inputs]:
    def outputs(i: Inputs) -> Inputs:
        # name_prefix: the provider appends a 26-character unique suffix.
        name = i.get("name") or f"{i.get('namePrefix', '')}{'0' * 25}1"
        rid = f"projects/{i.get('project')}/global/{kind}/{name}"
        return {"id": rid, "selfLink": _COMPUTE + rid, "name": name}

    return outputs


def _regional(kind: str) -> Callable[[Inputs], Inputs]:
    def outputs(i: Inputs) -> Inputs:
        name = i.get("name") or f"{i.get('namePrefix', '')}{'0' * 25}1"
        rid = f"projects/{i.get('project')}/regions/{i.get('region')}/{kind}/{name}"
        return {"id": rid, "selfLink": _COMPUTE + rid, "name": name}

    return outputs


def _pool(i: Inputs) -> Inputs:
    rid = f"projects/{_number(i.get('project'))}/locations/global/workloadIdentityPools/"
    rid += str(i["workloadIdentityPoolId"])
    return {"id": rid, "name": rid}


def _pool_provider(i: Inputs) -> Inputs:
    rid = f"projects/{_number(i.get('project'))}/locations/global/workloadIdentityPools/"
    rid += f"{i['workloadIdentityPoolId']}/providers/{i['workloadIdentityPoolProviderId']}"
    return {"id": rid, "name": rid}


def _run_job(i: Inputs) -> Inputs:
    rid = f"projects/{i.get('project')}/locations/{i.get('location')}/jobs/{i.get('name')}"
    return {"id": rid, "uid": "0"}


# Outputs of the stacks a program reads with pulumi.StackReference, by fully qualified
# name (set by infra.capture per run from the referenced stack's own file).
STACK_OUTPUTS: dict[str, Inputs] = {}


def _stack_reference(i: Inputs) -> Inputs:
    name = str(i.get("name"))
    return {"id": name, "outputs": STACK_OUTPUTS.get(name, {}), "secretOutputNames": []}


def _subnetwork(i: Inputs) -> Inputs:
    rid = f"projects/{i.get('project')}/regions/{i.get('region')}/subnetworks/{i['name']}"
    return {"id": rid, "selfLink": _COMPUTE + rid}


def _repository(i: Inputs) -> Inputs:
    location = f"projects/{i.get('project')}/locations/{i.get('location')}"
    rid = f"{location}/repositories/{i['repositoryId']}"
    return {"id": rid, "name": i["repositoryId"]}


def _pubsub(kind: str) -> Callable[[Inputs], Inputs]:
    def outputs(i: Inputs) -> Inputs:
        return {"id": f"projects/{i.get('project')}/{kind}/{i['name']}"}

    return outputs


def _managed_zone(i: Inputs) -> Inputs:
    return {"id": f"projects/{i.get('project')}/managedZones/{i['name']}"}


def _nothing(_i: Inputs) -> Inputs:
    return {}


# Service agents by API, from the project number (the addresses Google documents).
SERVICE_AGENT_DOMAINS: dict[str, str] = {
    "artifactregistry.googleapis.com": "gcp-sa-artifactregistry",
    "pubsub.googleapis.com": "gcp-sa-pubsub",
    "run.googleapis.com": "serverless-robot-prod",
}
# The project number of each project id the stack names, set by infra.capture per run.
PROJECT_NUMBERS: dict[str, str] = {}


def _number(project: Any) -> str:
    return PROJECT_NUMBERS.get(str(project), "0")


def _service_identity(i: Inputs) -> Inputs:
    domain = SERVICE_AGENT_DOMAINS.get(str(i.get("service")), "gcp-sa-unknown")
    email = f"service-{_number(i.get('project'))}@{domain}.iam.gserviceaccount.com"
    return {
        "id": f"projects/{i.get('project')}/services/{i.get('service')}",
        "email": email,
        "member": f"serviceAccount:{email}",
    }


def for_invoke(token: str, args: Inputs) -> Inputs | None:
    """The result of the few invokes the program makes (each documented, none a cloud fact
    the config does not hold): None for any other invoke."""
    number = _number(args.get("project"))
    if token == "gcp:bigquery/getDefaultServiceAccount:getDefaultServiceAccount":
        email = f"bq-{number}@bigquery-encryption.iam.gserviceaccount.com"
        return {"email": email, "member": f"serviceAccount:{email}", "project": args.get("project")}
    if token == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
        email = f"service-{number}@gs-project-accounts.iam.gserviceaccount.com"
        return {
            "emailAddress": email,
            "member": f"serviceAccount:{email}",
            "project": args.get("project"),
        }
    return None


def _by_name(i: Inputs) -> Inputs:
    return {"id": i["name"]} if isinstance(i.get("name"), str) else {}


_COMPUTED: dict[str, Callable[[Inputs], Inputs]] = {
    "gcp:kms/keyRing:KeyRing": _key_ring,
    "gcp:kms/cryptoKey:CryptoKey": _crypto_key,
    "gcp:serviceaccount/account:Account": _service_account,
    "gcp:storage/bucket:Bucket": _bucket,
    "gcp:bigquery/dataset:Dataset": _dataset,
    "gcp:bigquery/table:Table": _table,
    "gcp:compute/network:Network": _global("networks"),
    "gcp:compute/instanceTemplate:InstanceTemplate": _global("instanceTemplates"),
    "gcp:compute/firewall:Firewall": _global("firewalls"),
    "gcp:compute/subnetwork:Subnetwork": _subnetwork,
    "gcp:artifactregistry/repository:Repository": _repository,
    "gcp:pubsub/topic:Topic": _pubsub("topics"),
    "gcp:pubsub/subscription:Subscription": _pubsub("subscriptions"),
    "gcp:pubsub/schema:Schema": _pubsub("schemas"),
    "gcp:dns/managedZone:ManagedZone": _managed_zone,
    "gcp:accesscontextmanager/servicePerimeter:ServicePerimeter": _by_name,
    "gcp:orgpolicy/policy:Policy": _by_name,
    "gcp:accesscontextmanager/accessLevel:AccessLevel": _by_name,
    "gcp:projects/serviceIdentity:ServiceIdentity": _service_identity,
    "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate": _regional("instanceTemplates"),
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": _regional(
        "instanceGroupManagers"
    ),
    "gcp:iam/workloadIdentityPool:WorkloadIdentityPool": _pool,
    "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider": _pool_provider,
    "gcp:cloudrunv2/job:Job": _run_job,
    "pulumi:pulumi:StackReference": _stack_reference,
}


def for_resource(type_: str, name: str, inputs: Inputs) -> tuple[str, Inputs]:
    """(id, state) for a mocked resource: its inputs plus the provider's computed outputs."""
    computed = _COMPUTED.get(type_, _nothing)(inputs)
    state = {**inputs, **computed}
    return str(computed.get("id", f"{name}-id")), state
