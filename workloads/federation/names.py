"""Names of the hub's Pub/Sub resources, defined once for the hub stack and the workers."""

from __future__ import annotations

BROADCAST_TOPIC = "federation-broadcast"  # coordinator -> nodes: round announcements
UPLOAD_TOPIC = "federation-upload"  # nodes -> coordinator: masked aggregates
DEAD_LETTER_TOPIC = "federation-dead-letter"  # undeliverable messages, kept for review
UPLOAD_SUBSCRIPTION = "federation-upload-coordinator"
MESSAGE_SCHEMA = "federation-message-v1"
FEDERATION_WORKER_ACCOUNT_ID = "federation-worker"  # each node's federation identity
COORDINATOR_ACCOUNT_ID = "federation-coordinator"  # the hub's identity


def node_subscription(node: str) -> str:
    """Each node pulls round announcements from its own subscription on the broadcast topic."""
    return f"{BROADCAST_TOPIC}-{node}"
