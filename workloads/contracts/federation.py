"""The hub's Pub/Sub names and message schema, defined once for the hub stack and the workers."""

from __future__ import annotations

from pathlib import Path

# The Avro record every federation message validates against (the hub topics' schema).
SCHEMA_PATH = Path(__file__).with_name("message_schema.avsc")

BROADCAST_TOPIC = "federation-broadcast"  # coordinator -> nodes: round announcements
UPLOAD_TOPIC = "federation-upload"  # nodes -> coordinator: masked aggregates
DEAD_LETTER_TOPIC = "federation-dead-letter"  # undeliverable messages, kept for review
UPLOAD_SUBSCRIPTION = "federation-upload-coordinator"
MESSAGE_SCHEMA = "federation-message-v2"
FEDERATION_WORKER_ACCOUNT_ID = "federation-worker"  # each node's federation identity
COORDINATOR_ACCOUNT_ID = "federation-coordinator"  # the hub's identity


def node_subscription(node: str) -> str:
    """Each node pulls round announcements from its own subscription on the broadcast topic."""
    return f"{BROADCAST_TOPIC}-{node}"

# Every federation message is signed by its sender's long-term key: locally an Ed25519 key
# file, in the cloud a Cloud KMS asymmetric signing key of this algorithm (pure Ed25519, so
# one verifier serves both), usable only by the node's federation identity.
SIGNING_ALGORITHM = "EC_SIGN_ED25519"
SIGNING_KEY_NAME = "federation-signing"  # the node stack's KMS key, in the node's key ring
