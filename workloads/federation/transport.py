"""How federation messages travel: in-process queues or Google Cloud Pub/Sub.

Hub -> nodes: one broadcast topic with one subscription per node (every node receives
every announcement and ignores what is not addressed to it). Nodes -> hub: one upload
topic with the coordinator's subscription. Messages are opaque bytes here; the engine
decodes and checks them (protocol.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import time
from pathlib import Path
from typing import Any, Protocol

from workloads.contracts import federation as names
from workloads.contracts.errors import UserError
from workloads.contracts.federation import SCHEMA_PATH

log = logging.getLogger(__name__)


class HubEndpoint(Protocol):
    def broadcast(self, data: bytes) -> None: ...

    def receive(self, timeout: float) -> list[bytes]:
        """Upload messages that arrived within `timeout` seconds (maybe none)."""
        ...


class NodeEndpoint(Protocol):
    def upload(self, data: bytes) -> None: ...

    def receive(self, timeout: float) -> list[bytes]: ...


class Counted:
    """Counts the bytes the hub receives and keeps them (for the no-row-data test)."""

    def __init__(self, inner: HubEndpoint, keep: bool = False) -> None:
        self.inner = inner
        self.bytes_received = 0
        self.bytes_sent = 0
        self.kept: list[bytes] = []
        self._keep = keep

    def broadcast(self, data: bytes) -> None:
        self.bytes_sent += len(data)
        self.inner.broadcast(data)

    def receive(self, timeout: float) -> list[bytes]:
        got = self.inner.receive(timeout)
        self.bytes_received += sum(len(d) for d in got)
        if self._keep:
            self.kept.extend(got)
        return got


# --- in-process -------------------------------------------------------------------------


class InProcessBus:
    """Topics as queues: one per node subscription, one for the hub's uploads."""

    def __init__(self, nodes: list[str]) -> None:
        self.subscriptions: dict[str, queue.Queue[bytes]] = {n: queue.Queue() for n in nodes}
        self.uploads: queue.Queue[bytes] = queue.Queue()

    def hub(self) -> HubEndpoint:
        return _InProcessHub(self)

    def node(self, name: str) -> NodeEndpoint:
        return _InProcessNode(self, name)


def _drain(q: queue.Queue[bytes], timeout: float) -> list[bytes]:
    try:
        first = q.get(timeout=timeout)
    except queue.Empty:
        return []
    out = [first]
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


class _InProcessHub:
    def __init__(self, bus: InProcessBus) -> None:
        self.bus = bus

    def broadcast(self, data: bytes) -> None:
        for subscription in self.bus.subscriptions.values():
            subscription.put(data)

    def receive(self, timeout: float) -> list[bytes]:
        return _drain(self.bus.uploads, timeout)


class _InProcessNode:
    def __init__(self, bus: InProcessBus, name: str) -> None:
        self.bus, self.name = bus, name

    def upload(self, data: bytes) -> None:
        self.bus.uploads.put(data)

    def receive(self, timeout: float) -> list[bytes]:
        return _drain(self.bus.subscriptions[self.name], timeout)


# --- Pub/Sub ----------------------------------------------------------------------------


def _pubsub() -> Any:
    import google.cloud.pubsub_v1 as pubsub_v1

    return pubsub_v1


class PubSubHub:
    """The coordinator's side: publish to the broadcast topic, pull the upload subscription."""

    def __init__(self, project: str) -> None:
        pubsub_v1 = _pubsub()
        self.publisher = pubsub_v1.PublisherClient()
        self.subscriber = pubsub_v1.SubscriberClient()
        self.topic = self.publisher.topic_path(project, names.BROADCAST_TOPIC)
        self.subscription = self.subscriber.subscription_path(project, names.UPLOAD_SUBSCRIPTION)

    def broadcast(self, data: bytes) -> None:
        self.publisher.publish(self.topic, data).result(timeout=30)

    def receive(self, timeout: float) -> list[bytes]:
        return _pull(self.subscriber, self.subscription, timeout)


class PubSubNode:
    """A node worker's side: publish uploads, pull its own broadcast subscription."""

    def __init__(self, project: str, node: str) -> None:
        pubsub_v1 = _pubsub()
        self.publisher = pubsub_v1.PublisherClient()
        self.subscriber = pubsub_v1.SubscriberClient()
        self.topic = self.publisher.topic_path(project, names.UPLOAD_TOPIC)
        self.subscription = self.subscriber.subscription_path(
            project, names.node_subscription(node)
        )

    def upload(self, data: bytes) -> None:
        self.publisher.publish(self.topic, data).result(timeout=30)

    def receive(self, timeout: float) -> list[bytes]:
        return _pull(self.subscriber, self.subscription, timeout)


def _pull(subscriber: Any, subscription: str, timeout: float) -> list[bytes]:
    from google.api_core import exceptions

    try:
        response = subscriber.pull(
            request={"subscription": subscription, "max_messages": 100},
            timeout=max(timeout, 0.5),
            retry=None,
        )
    except exceptions.DeadlineExceeded:
        return []
    except (exceptions.ServiceUnavailable, exceptions.InternalServerError) as exc:
        log.warning("pull from %s failed, will retry: %s", subscription, exc)
        time.sleep(1.0)
        return []  # transient: the caller polls again
    except exceptions.NotFound:
        raise UserError(
            f"Pub/Sub subscription {subscription} does not exist; fix: deploy the hub "
            f"(pulumi up -s hub), or on the emulator pass --create-topics"
        ) from None
    if not response.received_messages:
        return []
    # Ack at once: the engine deduplicates and a message it rejects must not come back.
    subscriber.acknowledge(
        request={
            "subscription": subscription,
            "ack_ids": [m.ack_id for m in response.received_messages],
        }
    )
    return [m.message.data for m in response.received_messages]


def create_resources(project: str, nodes: list[str], *, with_schema: bool = True) -> None:
    """Create the hub's topics, schema and subscriptions (for the emulator; in the cloud
    the hub stack declares them). Existing resources are kept."""
    if not os.environ.get("PUBSUB_EMULATOR_HOST"):
        raise UserError(
            "refusing to create Pub/Sub resources outside the emulator; fix: set "
            "PUBSUB_EMULATOR_HOST (in the cloud the hub stack declares them: pulumi up -s hub)"
        )
    from google.api_core import exceptions
    from google.pubsub_v1.types import Encoding, Schema

    pubsub_v1 = _pubsub()
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    schema_name = None
    if with_schema:
        schemas = pubsub_v1.SchemaServiceClient()
        schema_name = schemas.schema_path(project, names.MESSAGE_SCHEMA)
        definition = json.dumps(json.loads(Path(SCHEMA_PATH).read_text()))
        with contextlib.suppress(exceptions.AlreadyExists):
            schemas.create_schema(
                request={
                    "parent": f"projects/{project}",
                    "schema": Schema(type_=Schema.Type.AVRO, definition=definition),
                    "schema_id": names.MESSAGE_SCHEMA,
                }
            )
    for topic_id in (names.BROADCAST_TOPIC, names.UPLOAD_TOPIC):
        request: dict[str, Any] = {"name": publisher.topic_path(project, topic_id)}
        if schema_name:
            request["schema_settings"] = {"schema": schema_name, "encoding": Encoding.JSON}
        with contextlib.suppress(exceptions.AlreadyExists):
            publisher.create_topic(request=request)
    subscriptions = [(names.UPLOAD_SUBSCRIPTION, names.UPLOAD_TOPIC)]
    subscriptions += [(names.node_subscription(n), names.BROADCAST_TOPIC) for n in nodes]
    for subscription_id, topic_id in subscriptions:
        with contextlib.suppress(exceptions.AlreadyExists):
            subscriber.create_subscription(
                request={
                    "name": subscriber.subscription_path(project, subscription_id),
                    "topic": publisher.topic_path(project, topic_id),
                    "ack_deadline_seconds": 30,
                }
            )
