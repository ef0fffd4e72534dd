"""`federate nodes`: per-node row counts through each node's guard, attacked by the hub.

The hub may ask as often as it likes and forge its request; what it gets is a DP count
(noise of at least the node's count_noise_multiplier rows, whatever it asks), charged to the
table's odometer, rounded, and refused once the table's count budget is spent, so averaging
answers can never pin the exact count down.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.workloads.federation.conftest import Federation
from workloads.cli import main
from workloads.federation import privacy
from workloads.federation.coordinator import RunConfig
from workloads.federation.guard import ODOMETER, NodePolicy
from workloads.federation.local import local_federation
from workloads.federation.table_counts import (
    BELOW,
    NOT_DECLARED,
    REFUSED,
    RELEASED,
    TableCounts,
    TableCountsParams,
    node_counts,
)
from workloads.local_node import LocalNode

TABLE = "patient_genomic_data"


def allowed_asks(policy: NodePolicy) -> int:
    asks = 0
    while privacy.epsilon([policy.count_noise_multiplier] * (asks + 1),
                          policy.lifetime_delta) <= policy.count_epsilon:
        asks += 1
    return asks


def odometer(root: object, node: str) -> list[dict[str, object]]:
    with LocalNode(node, root).open_warehouse(create=False) as warehouse:  # type: ignore[arg-type]
        warehouse.ensure_tables([ODOMETER])
        return warehouse.query(
            f"SELECT dataset, algorithm, noise_multiplier FROM "
            f"{warehouse.table_ref(ODOMETER)}").to_pylist()


def test_a_hub_asking_again_and_again_never_learns_the_exact_count(
    make_federation: Callable[[dict[str, int]], Federation],
) -> None:
    root, nodes = make_federation({"us": 600, "eu": 400, "sg": 5})
    names = [n.name for n in nodes]
    policy = NodePolicy()
    limit = allowed_asks(policy)
    # The policy's own bound: averaging every answer it will ever give leaves an error of
    # sigma / sqrt(answers) >= 4 rows, so the exact count is not learnt.
    assert policy.count_noise_multiplier / limit**0.5 >= 4.0
    answers: list[float] = []
    with local_federation(root, names) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=tuple(names)))
        for _ in range(limit + 2):
            # The hub asks for no noise at all: the node applies its own floor anyway.
            counts = node_counts(coordinator, [TABLE], noise_multiplier=0.0)
            us = counts["us"][TABLE]
            if us.status == RELEASED:
                assert us.value is not None
                answers.append(us.value)
            else:
                assert us.status == REFUSED and "spent their budget" in us.detail
            assert counts["sg"][TABLE].status in (BELOW, RELEASED, REFUSED)
        coordinator.finish()
    assert len(answers) == limit  # then refused, for life
    assert all(v % policy.count_rounding == 0 for v in answers)
    assert len(set(answers)) > 1  # fresh noise each time, never the same exact number
    assert all(abs(v - 600) <= 8 * policy.count_noise_multiplier for v in answers)
    charged = [e for e in odometer(root, "us") if e["dataset"] == TABLE]
    assert len(charged) == limit
    assert all(float(e["noise_multiplier"]) >= policy.count_noise_multiplier  # type: ignore[arg-type]
               for e in charged)


@dataclass(frozen=True)
class CohortCounts:
    """A forged request: the count of a cohort (e.g. two differing by one patient)."""

    tables: tuple[str, ...] = (TABLE,)
    noise_multiplier: float = 0.0
    cohort: str = "age = 37 AND bmi = 22.4"


def test_a_forged_cohort_or_an_undeclared_table_is_refused_and_costs_nothing(
    make_federation: Callable[[dict[str, int]], Federation],
) -> None:
    root, nodes = make_federation({"us": 300, "eu": 300, "sg": 300})
    names = [n.name for n in nodes]
    with local_federation(root, names) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=tuple(names)))
        coordinator.setup()
        answers, refusals = coordinator.per_node(TableCounts(), CohortCounts(), ())
        assert answers == {} and set(refusals) == set(names)
        assert all("unknown parameters ['cohort']" in r for r in refusals.values())
        # Tables whose columns may never leave the node, or that no catalogue declares.
        answers, refusals = coordinator.per_node(
            TableCounts(), TableCountsParams(("processed_variants", "secrets")), ())
        coordinator.finish()
    assert refusals == {}
    for message in answers.values():
        assert message.values == (0.0, 0.0)
        assert NOT_DECLARED in message.params["status"]
    for name in names:
        assert odometer(root, name) == []


@pytest.mark.slow
def test_federate_nodes_over_pubsub(
    pubsub_emulator: str, make_federation: Callable[[dict[str, int]], Federation],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same signed protocol over the Pub/Sub emulator (worker processes)."""
    root, _ = make_federation({"us": 500, "eu": 400, "sg": 300})
    out = root / "counts.json"
    code = main(["federate", "nodes", "--root", str(root), "--transport", "pubsub",
                 "--tables", TABLE, "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert TABLE in printed and str(out) in printed
    payload = json.loads(out.read_text())
    assert set(payload) == {"us", "eu", "sg"}
    for node, true in (("us", 500), ("eu", 400), ("sg", 300)):
        entry = payload[node][TABLE]
        assert entry["status"] == RELEASED and abs(entry["rows"] - true) <= 160
        assert len([e for e in odometer(root, node) if e["dataset"] == TABLE]) == 1
