"""The federation hub's Pub/Sub: schema, topics, one subscription per node, and who may do what.

Names come from workloads/contracts/federation.py and the Avro schema from the file the
federation engine validates against (workloads/contracts/message_schema.avsc): the stack
restates neither. No subscription filters: the emulator ignores them, so correctness
never depends on one; each worker drops messages not addressed to it.

IAM, per identity:
- each node's federation worker: subscriber on its own broadcast subscription only,
  publisher on the upload topic only;
- the coordinator: publisher on the broadcast topic, subscriber on the upload
  subscription and the dead-letter review subscription;
- the Pub/Sub service agent: what dead-lettering needs (publisher on the dead-letter
  topic, subscriber on the subscriptions that forward to it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pulumi
import pulumi_gcp as gcp

from infra.config import ConfigError, NodeRef
from workloads.contracts.federation import (
    BROADCAST_TOPIC,
    COORDINATOR_ACCOUNT_ID,
    DEAD_LETTER_TOPIC,
    MESSAGE_SCHEMA,
    SCHEMA_PATH,
    UPLOAD_SUBSCRIPTION,
    UPLOAD_TOPIC,
    node_subscription,
)

RETENTION = "604800s"  # 7 days: a node that was down for a weekend still gets its rounds
ACK_DEADLINE_S = 60
MAX_DELIVERY_ATTEMPTS = 10
DEAD_LETTER_REVIEW_SUBSCRIPTION = f"{DEAD_LETTER_TOPIC}-review"


def read_schema(path: Path = SCHEMA_PATH) -> str:
    """The Avro schema text, or a clear error: the hub must not invent its own copy."""
    if not path.is_file():
        raise ConfigError(
            f"{path} not found: the hub's Pub/Sub schema is the federation engine's Avro "
            "schema; fix: restore workloads/contracts/message_schema.avsc"
        )
    return path.read_text()


class FederationHub(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        project: str,
        region: str,
        pubsub_agent: str,
        kms_key: pulumi.Input[str],
        nodes: Sequence[NodeRef],
        schema_definition: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:hub:FederationHub", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.schema = gcp.pubsub.Schema(
            f"{name}-schema",
            project=project,
            name=MESSAGE_SCHEMA,
            type="AVRO",
            definition=schema_definition,
            opts=child,
        )
        # Messages are stored in the hub region only. Not `enforce_in_transit`: it would
        # refuse a US node's publish arriving at a US endpoint of the global API.
        storage = gcp.pubsub.TopicMessageStoragePolicyArgs(allowed_persistence_regions=[region])

        def topic(label: str, topic_name: str, with_schema: bool) -> gcp.pubsub.Topic:
            return gcp.pubsub.Topic(
                f"{name}-{label}",
                project=project,
                name=topic_name,
                kms_key_name=kms_key,
                message_retention_duration=RETENTION,
                message_storage_policy=storage,
                schema_settings=gcp.pubsub.TopicSchemaSettingsArgs(
                    schema=self.schema.id, encoding="JSON"
                )
                if with_schema
                else None,
                opts=child,
            )

        self.broadcast = topic("broadcast", BROADCAST_TOPIC, with_schema=True)
        self.upload = topic("upload", UPLOAD_TOPIC, with_schema=True)
        # No schema on the dead-letter topic: whatever could not be delivered must land.
        self.dead_letter = topic("dead-letter", DEAD_LETTER_TOPIC, with_schema=False)

        def subscription(
            label: str, sub_name: str, on: gcp.pubsub.Topic
        ) -> gcp.pubsub.Subscription:
            return gcp.pubsub.Subscription(
                f"{name}-{label}",
                project=project,
                name=sub_name,
                topic=on.id,
                ack_deadline_seconds=ACK_DEADLINE_S,
                message_retention_duration=RETENTION,
                retain_acked_messages=False,
                expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=""),
                dead_letter_policy=gcp.pubsub.SubscriptionDeadLetterPolicyArgs(
                    dead_letter_topic=self.dead_letter.id,
                    max_delivery_attempts=MAX_DELIVERY_ATTEMPTS,
                ),
                retry_policy=gcp.pubsub.SubscriptionRetryPolicyArgs(
                    minimum_backoff="10s", maximum_backoff="600s"
                ),
                opts=child,
            )

        self.node_subscriptions = {
            node.name: subscription(
                f"sub-{node.name}", node_subscription(node.name), self.broadcast
            )
            for node in nodes
        }
        self.upload_subscription = subscription("sub-upload", UPLOAD_SUBSCRIPTION, self.upload)
        self.dead_letter_review = gcp.pubsub.Subscription(
            f"{name}-sub-dead-letter-review",
            project=project,
            name=DEAD_LETTER_REVIEW_SUBSCRIPTION,
            topic=self.dead_letter.id,
            ack_deadline_seconds=ACK_DEADLINE_S,
            message_retention_duration=RETENTION,
            expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=""),
            opts=child,
        )
        self.coordinator = gcp.serviceaccount.Account(
            f"{name}-coordinator",
            project=project,
            account_id=COORDINATOR_ACCOUNT_ID,
            display_name="Federation coordinator (publishes rounds, aggregates uploads)",
            opts=child,
        )
        coordinator = self.coordinator.member
        agent = f"serviceAccount:{pubsub_agent}"

        def on_topic(label: str, t: gcp.pubsub.Topic, role: str, member: pulumi.Input[str]) -> None:
            gcp.pubsub.TopicIAMMember(
                f"{name}-{label}",
                project=project,
                topic=t.name,
                role=role,
                member=member,
                opts=child,
            )

        def on_sub(
            label: str, s: gcp.pubsub.Subscription, role: str, member: pulumi.Input[str]
        ) -> None:
            gcp.pubsub.SubscriptionIAMMember(
                f"{name}-{label}",
                project=project,
                subscription=s.name,
                role=role,
                member=member,
                opts=child,
            )

        publisher, subscriber = "roles/pubsub.publisher", "roles/pubsub.subscriber"
        for node in nodes:
            worker = f"serviceAccount:{node.federation_identity}"
            on_sub(
                f"{node.name}-pulls-own-subscription",
                self.node_subscriptions[node.name],
                subscriber,
                worker,
            )
            on_topic(f"{node.name}-publishes-uploads", self.upload, publisher, worker)
        on_topic("coordinator-publishes-broadcast", self.broadcast, publisher, coordinator)
        on_sub("coordinator-pulls-uploads", self.upload_subscription, subscriber, coordinator)
        on_sub("coordinator-reviews-dead-letters", self.dead_letter_review, subscriber, coordinator)
        on_topic("agent-publishes-dead-letters", self.dead_letter, publisher, agent)
        for label, sub in (
            *((f"sub-{n}", s) for n, s in self.node_subscriptions.items()),
            ("sub-upload", self.upload_subscription),
        ):
            on_sub(f"agent-forwards-{label}", sub, subscriber, agent)
        gcp.projects.IAMMember(
            f"{name}-coordinator-logging-logWriter",
            project=project,
            role="roles/logging.logWriter",
            member=coordinator,
            opts=child,
        )
        self.register_outputs(
            {
                "broadcast_topic": self.broadcast.id,
                "upload_topic": self.upload.id,
                "coordinator": self.coordinator.email,
            }
        )
