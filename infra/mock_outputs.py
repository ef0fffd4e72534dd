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
        rid = f"projects/{i.get('project')}/global/{kind}/{i['name']}"
        return {"id": rid, "selfLink": _COMPUTE + rid}

    return outputs


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
}


def for_resource(type_: str, name: str, inputs: Inputs) -> tuple[str, Inputs]:
    """(id, state) for a mocked resource: its inputs plus the provider's computed outputs."""
    computed = _COMPUTED.get(type_, _nothing)(inputs)
    state = {**inputs, **computed}
    return str(computed.get("id", f"{name}-id")), state
