"""The federation hub role: keys, org policies and the federation's Pub/Sub, and its outputs."""

from __future__ import annotations

import pulumi

from infra.config import HubConfig
from infra.federation_hub import FederationHub, read_schema
from infra.foundation import declare_foundation
from infra.keys import service_agent
from infra.services import HUB_APIS, HUB_AUDITED_APIS

HUB_CMEK_SERVICES: tuple[str, ...] = ("pubsub.googleapis.com",)


def declare_hub(cfg: HubConfig) -> None:
    schema = read_schema()  # before any resource: a missing schema stops the run cleanly
    foundation = declare_foundation(
        cfg,
        services=HUB_APIS,
        cmek_services=HUB_CMEK_SERVICES,
        audited_services=HUB_AUDITED_APIS,
        ring_name="sovereign-hub",
        key_purposes=("pubsub",),
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
    pulumi.export("project", cfg.project)
    pulumi.export("region", cfg.region)
    pulumi.export("keys", {"pubsub": keys.key_id("pubsub")})
    pulumi.export("schema", hub.schema.id)
    pulumi.export("broadcast_topic", hub.broadcast.id)
    pulumi.export("upload_topic", hub.upload.id)
    pulumi.export("dead_letter_topic", hub.dead_letter.id)
    pulumi.export("upload_subscription", hub.upload_subscription.id)
    pulumi.export("node_subscriptions", {node: s.id for node, s in hub.node_subscriptions.items()})
    pulumi.export("coordinator_service_account", hub.coordinator.email)
    pulumi.export("node_identities", {n.name: n.federation_identity for n in cfg.nodes})
