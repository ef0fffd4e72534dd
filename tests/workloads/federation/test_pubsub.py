"""The Pub/Sub transport against the real emulator, each node worker its own OS process."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from tests.workloads.federation.conftest import Federation
from workloads.federation import algorithms, roster
from workloads.federation.coordinator import Coordinator, RunConfig
from workloads.federation.identity import local_signer
from workloads.federation.local import worker_processes
from workloads.federation.protocol import Message, decode
from workloads.federation.report import pooled_fit
from workloads.federation.transport import Counted, PubSubHub, PubSubNode, create_resources

pytestmark = pytest.mark.emulator


def test_the_topic_schema_admits_only_federation_messages(
    pubsub_emulator: str, three_nodes: Federation
) -> None:
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    root, _ = three_nodes
    project = f"schema-{uuid.uuid4().hex[:8]}"
    create_resources(project, ["us"])
    node = PubSubNode(project, "us")
    signed = Message("r", 1, "us", "glm", "masked", masked=(1, -2)).sign(local_signer(root, "us"))
    node.upload(signed.encode())  # a signed federation message validates
    record = json.loads(signed.encode())
    publisher = pubsub_v1.PublisherClient()
    for bad in ({**record, "kind": "rows"}, {**record, "round": "one"}, {"patient_id": "US-1"},
                {k: v for k, v in record.items() if k != "signature"}):
        with pytest.raises(exceptions.InvalidArgument):
            publisher.publish(node.topic, json.dumps(bad).encode()).result(timeout=30)


def test_federation_over_pubsub_sends_only_aggregates(
    pubsub_emulator: str, three_nodes: Federation
) -> None:
    root, nodes = three_nodes
    project = f"fed-{uuid.uuid4().hex[:8]}"
    names = [n.name for n in nodes]
    create_resources(project, names)
    with worker_processes(root, names, project, pubsub_emulator) as processes:
        hub = Counted(PubSubHub(project), keep=True)
        coordinator = Coordinator(hub, RunConfig(nodes=tuple(names), round_timeout=60),
                                  local_signer(root, "hub"), roster.load(root))
        rows = coordinator.statistics()
        fit = coordinator.fit()
        coordinator.finish()
    assert [p.returncode for p in processes] == [0, 0, 0]  # workers left when the run ended
    reference, _ = pooled_fit(nodes)
    np.testing.assert_allclose(fit.coefficients, reference, rtol=0, atol=1e-6)
    assert rows[0].values["combined"] is not None and rows[0].values["combined"][0] == 6500
    assert coordinator.rejected == []
    dims = {0, algorithms.GLM().dimension(algorithms.GLMParams()),
            algorithms.Stats().dimension(algorithms.StatsParams())}
    assert hub.kept
    for data in hub.kept:
        assert b"US-" not in data and b"EU-" not in data and b"SG-" not in data
        message = decode(data)
        assert message.verified_by(roster.load(root))
        assert len(message.masked) in dims and len(message.values) <= 1
