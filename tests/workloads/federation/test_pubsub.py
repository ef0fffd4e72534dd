"""The Pub/Sub transport against the real emulator, each node worker its own OS process."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from workloads.federation import local_stats, runner
from workloads.federation.coordinator import NEWTON_DIM, STATS_DIM, Coordinator, RunConfig
from workloads.federation.protocol import Message, decode
from workloads.federation.report import pooled_fit
from workloads.federation.transport import Counted, PubSubHub, PubSubNode, create_resources
from workloads.local_node import LocalNode

pytestmark = pytest.mark.emulator


def test_the_topic_schema_admits_only_federation_messages(pubsub_emulator: str) -> None:
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    project = f"schema-{uuid.uuid4().hex[:8]}"
    create_resources(project, ["us"])
    node = PubSubNode(project, "us")
    node.upload(Message("r", 1, "us", "stats", "result", masked=(1, -2)).encode())
    record = json.loads(Message("r", 1, "us", "stats", "result").encode())
    publisher = pubsub_v1.PublisherClient()
    for bad in ({**record, "kind": "rows"}, {**record, "round": "one"}, {"patient_id": "US-1"}):
        with pytest.raises(exceptions.InvalidArgument):
            publisher.publish(node.topic, json.dumps(bad).encode()).result(timeout=30)


def test_federation_over_pubsub_sends_only_aggregates(
    pubsub_emulator: str, two_nodes: tuple[Path, list[LocalNode]]
) -> None:
    root, nodes = two_nodes
    project = f"fed-{uuid.uuid4().hex[:8]}"
    names = [n.name for n in nodes]
    create_resources(project, names)
    with runner.worker_processes(root, names, project, pubsub_emulator) as processes:
        hub = Counted(PubSubHub(project), keep=True)
        coordinator = Coordinator(hub, RunConfig(nodes=tuple(names), round_timeout=60))
        rows = coordinator.statistics()
        fit = coordinator.fit()
        coordinator.finish()
    assert [p.returncode for p in processes] == [0, 0]  # workers left when the run ended
    reference, _ = pooled_fit([local_stats.load(n) for n in nodes])
    np.testing.assert_allclose(fit.coefficients, reference, rtol=0, atol=1e-6)
    assert rows[0].values["combined"] is not None and rows[0].values["combined"][0] == 5000
    assert coordinator.rejected == []
    # Nothing the hub received is row-level: no patient id, and every message is bounded by
    # the model's dimension (the nodes hold 3,000 and 2,000 rows).
    assert hub.kept
    for data in hub.kept:
        assert b"US-" not in data and b"EU-" not in data
        message = decode(data)
        assert len(message.masked) in (0, NEWTON_DIM, STATS_DIM)
        assert len(message.values) <= STATS_DIM
        assert len(data) < 4096
