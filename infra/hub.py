"""The federation hub role: keys, org policies and the federation's Pub/Sub, and its outputs."""

from __future__ import annotations

from typing import Any

import pulumi

from infra.config import HubConfig
from infra.coordinator import Coordinator
from infra.federation_hub import FederationHub, read_schema
from infra.foundation import declare_foundation
from infra.keys import KeyPurpose, service_agent
from infra.services import HUB_APIS, HUB_AUDITED_APIS
from workloads.contracts.federation_service import roster_json

HUB_CMEK_SERVICES: tuple[str, ...] = (
    "artifactregistry.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
)
HUB_KEY_PURPOSES: tuple[KeyPurpose, ...] = ("pubsub", "storage", "artifactregistry", "run")


def roster_of(cfg: HubConfig) -> str | None:
    """The pinned roster from config (every node's and the hub's public key), or None while
    a key is still to pin (`cfg.missing_roster_keys`)."""
    if cfg.missing_roster_keys or cfg.coordinator.hub_signing_key is None:
        return None
    return roster_json(
        cfg.coordinator.hub_signing_key,
        {n.name: n.signing_key for n in cfg.nodes if n.signing_key},
    )


def referenced_outputs(cfg: HubConfig) -> dict[str, Any]:
    """The outputs node stacks read from the hub (pulumi.StackReference): its roster."""
    roster = roster_of(cfg)
    return {} if roster is None else {"roster": roster}


def declare_hub(cfg: HubConfig) -> None:
    schema = read_schema()  # before any resource: a missing schema stops the run cleanly
    foundation = declare_foundation(
        cfg,
        services=HUB_APIS,
        cmek_services=HUB_CMEK_SERVICES,
        audited_services=HUB_AUDITED_APIS,
        ring_name="sovereign-hub",
        key_purposes=HUB_KEY_PURPOSES,
    )
    keys = foundation.keys
    hub = FederationHub(
        "federation",
        project=cfg.project,
        region=cfg.region,
        pubsub_agent=service_agent("pubsub", cfg.project_number),
        kms_key=keys.key_id("pubsub"),
        nodes=cfg.nodes,
        schema_definition=schema,
        opts=foundation.encrypted_with("pubsub"),
    )
    roster = roster_of(cfg)
    coordinator = Coordinator(
        "coordinator",
        project=cfg.project,
        region=cfg.region,
        deployment=cfg.coordinator,
        account=hub.coordinator,
        key_ring=keys.key_ring.id,
        keys={p: keys.key_id(p) for p in ("storage", "artifactregistry", "run")},
        depends_on={
            p: [foundation.apis, *keys.usable(p)] for p in ("storage", "artifactregistry", "run")
        },
        roster=roster,
        opts=pulumi.ResourceOptions(depends_on=[hub]),
    )
    pulumi.export("project", cfg.project)
    pulumi.export("region", cfg.region)
    pulumi.export("keys", {p: keys.key_id(p) for p in HUB_KEY_PURPOSES})
    pulumi.export("schema", hub.schema.id)
    pulumi.export("broadcast_topic", hub.broadcast.id)
    pulumi.export("upload_topic", hub.upload.id)
    pulumi.export("dead_letter_topic", hub.dead_letter.id)
    pulumi.export("upload_subscription", hub.upload_subscription.id)
    pulumi.export("node_subscriptions", {node: s.id for node, s in hub.node_subscriptions.items()})
    pulumi.export("coordinator_service_account", hub.coordinator.email)
    pulumi.export("node_identities", {n.name: n.federation_identity for n in cfg.nodes})
    for name, value in referenced_outputs(cfg).items():
        pulumi.export(name, value)
    pulumi.export("repository_url", coordinator.registry.url)
    pulumi.export("signing_key", coordinator.signing.key.id)
    pulumi.export("results_bucket", coordinator.results.name)
    pulumi.export("specs_bucket", coordinator.specs.name)
    if coordinator.job is not None:
        pulumi.export("coordinator_job", coordinator.job.name)
