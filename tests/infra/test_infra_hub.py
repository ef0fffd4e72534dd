"""The hub stack under mocks: topics, schema, per-node subscriptions and least-privilege IAM."""

from __future__ import annotations

from pathlib import Path

import pytest
from infra_testkit import of_type, one, stack_file

from infra import hub as hub_module
from infra.capture import CapturedResource, capture_stack
from infra.config import ConfigError
from infra.federation_hub import read_schema
from workloads.contracts import federation as names
from workloads.contracts.federation import SCHEMA_PATH

PUBLISHER, SUBSCRIBER = "roles/pubsub.publisher", "roles/pubsub.subscriber"


@pytest.fixture(scope="module")
def hub(captured: dict[str, list[CapturedResource]]) -> list[CapturedResource]:
    return captured["hub"]


def _grants(resources: list[CapturedResource]) -> set[tuple[str, str, str]]:
    """(member, role, topic-or-subscription name) of every Pub/Sub IAM member."""
    out = set()
    for r in resources:
        if r.type in (
            "gcp:pubsub/topicIAMMember:TopicIAMMember",
            "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember",
        ):
            target = r.inputs.get("topic") or r.inputs["subscription"]
            out.add((r.inputs["member"], r.inputs["role"], target))
    return out


def test_topics_are_named_once_encrypted_schema_checked_and_kept_in_region(
    hub: list[CapturedResource],
) -> None:
    cfg = stack_file("hub")
    topics = {t.inputs["name"]: t.inputs for t in of_type(hub, ":Topic")}
    assert set(topics) == {names.BROADCAST_TOPIC, names.UPLOAD_TOPIC, names.DEAD_LETTER_TOPIC}
    key = f"projects/fed-hub/locations/{cfg['region']}/keyRings/sovereign-hub/cryptoKeys/pubsub-key"
    schema_id = f"projects/fed-hub/schemas/{names.MESSAGE_SCHEMA}"
    for name, topic in topics.items():
        assert topic["kmsKeyName"] == key, name
        assert topic["messageRetentionDuration"] == "604800s"
        assert topic["messageStoragePolicy"]["allowedPersistenceRegions"] == [cfg["region"]]
    for name in (names.BROADCAST_TOPIC, names.UPLOAD_TOPIC):
        assert topics[name]["schemaSettings"] == {"schema": schema_id, "encoding": "JSON"}
    schema = one(hub, ":Schema").inputs
    assert schema["name"] == names.MESSAGE_SCHEMA and schema["type"] == "AVRO"
    assert schema["definition"] == SCHEMA_PATH.read_text()


def test_one_subscription_per_node_with_retention_dead_letter_and_no_filter(
    hub: list[CapturedResource],
) -> None:
    nodes = [n["name"] for n in stack_file("hub")["nodes"]]
    subs = {s.inputs["name"]: s.inputs for s in of_type(hub, ":Subscription")}
    dead_letter = f"projects/fed-hub/topics/{names.DEAD_LETTER_TOPIC}"
    for node in nodes:
        sub = subs[names.node_subscription(node)]
        assert sub["topic"] == f"projects/fed-hub/topics/{names.BROADCAST_TOPIC}"
        assert sub["messageRetentionDuration"] == "604800s"
        assert sub["deadLetterPolicy"]["deadLetterTopic"] == dead_letter
        assert "filter" not in sub
    upload = subs[names.UPLOAD_SUBSCRIPTION]
    assert upload["topic"] == f"projects/fed-hub/topics/{names.UPLOAD_TOPIC}"
    assert len([s for s in subs.values() if s["topic"].endswith(names.BROADCAST_TOPIC)]) == len(
        nodes
    )


def test_each_identity_holds_exactly_its_own_pubsub_roles(hub: list[CapturedResource]) -> None:
    cfg = stack_file("hub")
    grants = _grants(hub)
    coordinator = f"serviceAccount:{names.COORDINATOR_ACCOUNT_ID}@fed-hub.iam.gserviceaccount.com"
    agent = f"serviceAccount:service-{cfg['projectNumber']}@gcp-sa-pubsub.iam.gserviceaccount.com"
    expected_workers = set()
    for node in cfg["nodes"]:
        worker = (
            f"serviceAccount:{names.FEDERATION_WORKER_ACCOUNT_ID}@{node['project']}"
            ".iam.gserviceaccount.com"
        )
        mine = {g for g in grants if g[0] == worker}
        assert mine == {
            (worker, SUBSCRIBER, names.node_subscription(node["name"])),
            (worker, PUBLISHER, names.UPLOAD_TOPIC),
        }
        expected_workers |= mine
    assert {g for g in grants if g[0] == coordinator} == {
        (coordinator, PUBLISHER, names.BROADCAST_TOPIC),
        (coordinator, SUBSCRIBER, names.UPLOAD_SUBSCRIPTION),
        (coordinator, SUBSCRIBER, f"{names.DEAD_LETTER_TOPIC}-review"),
    }
    assert {g[0] for g in grants} == {coordinator, agent} | {g[0] for g in expected_workers}
    assert (agent, PUBLISHER, names.DEAD_LETTER_TOPIC) in grants
    assert all(
        role != PUBLISHER or target != names.BROADCAST_TOPIC or m == coordinator
        for m, role, target in grants
    )
    account = one(hub, ":Account").inputs
    assert account["accountId"] == names.COORDINATOR_ACCOUNT_ID


def test_hub_node_list_agrees_with_the_node_stack_files() -> None:
    hub_cfg = stack_file("hub")
    for node in hub_cfg["nodes"]:
        node_cfg = stack_file(node["name"])
        assert node_cfg["node"] == node["name"]
        assert node_cfg["project"] == node["project"]
        assert node_cfg["hubProject"] == hub_cfg["project"]
        assert node_cfg["hubProjectNumber"] == hub_cfg["projectNumber"]


def test_a_new_node_on_the_hub_is_config_only() -> None:
    nodes = [*stack_file("hub")["nodes"], {"name": "au", "project": "fed-node-au"}]
    resources = capture_stack("hub", {"nodes": nodes})
    subs = {s.inputs["name"] for s in of_type(resources, ":Subscription")}
    assert names.node_subscription("au") in subs
    worker = "serviceAccount:federation-worker@fed-node-au.iam.gserviceaccount.com"
    assert (worker, PUBLISHER, names.UPLOAD_TOPIC) in _grants(resources)


@pytest.mark.parametrize(
    ("nodes", "problem"),
    [
        (None, "nodes is missing or empty"),
        ([], "nodes is missing or empty"),
        ([{"name": "us"}], "nodes[0] is"),
        ([{"name": "US", "project": "fed-node-us"}], "nodes[0].name"),
        ([{"name": "us", "project": "x"}], "nodes[0].project"),
        (
            [{"name": "us", "project": "fed-node-us"}, {"name": "us", "project": "fed-node-u2"}],
            "repeats a node name",
        ),
    ],
)
def test_bad_hub_node_lists_fail_clearly(nodes: object, problem: str) -> None:
    with pytest.raises(ConfigError, match="fix:") as err:
        capture_stack("hub", {"nodes": nodes})
    assert problem in str(err.value)


def test_a_missing_message_schema_stops_the_hub_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "message_schema.avsc"
    with pytest.raises(ConfigError, match=r"message_schema\.avsc not found"):
        read_schema(missing)
    monkeypatch.setattr(hub_module, "read_schema", lambda: read_schema(missing))
    with pytest.raises(ConfigError, match=r"restore workloads/contracts/message_schema\.avsc"):
        capture_stack("hub")
