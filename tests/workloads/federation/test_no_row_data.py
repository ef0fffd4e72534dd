"""What the hub receives does not grow with the data: 100 or 10,000 rows per node give
messages of the same shape, and no patient identifier ever reaches the hub."""

from __future__ import annotations

from pathlib import Path

from tests.workloads.federation.federation_data import make_node
from workloads.federation import runner
from workloads.federation.coordinator import Coordinator, RunConfig
from workloads.federation.protocol import decode


def received_shapes(root: Path, rows: int) -> tuple[list[tuple[str, str, int, int]], list[bytes]]:
    nodes = [make_node(root, "us", rows, 11), make_node(root, "eu", rows, 12)]
    with runner.in_process(nodes, keep=True) as hub:
        coordinator = Coordinator(hub, RunConfig(nodes=("us", "eu"), max_rounds=4, k=5))
        coordinator.statistics()
        coordinator.fit()
        coordinator.finish()
    messages = [decode(d) for d in hub.kept]
    shapes = sorted((m.algorithm, m.kind, len(m.values), len(m.masked)) for m in messages)
    return shapes, hub.kept


def test_payloads_are_bounded_by_the_model_not_the_rows(tmp_path: Path) -> None:
    small, small_bytes = received_shapes(tmp_path / "small", 100)
    large, large_bytes = received_shapes(tmp_path / "large", 10_000)
    assert small == large
    # Bytes differ only by the digits of numbers, never by rows.
    assert abs(sum(map(len, large_bytes)) - sum(map(len, small_bytes))) < 0.1 * sum(
        map(len, small_bytes)
    )
    for data in small_bytes + large_bytes:
        assert b"US-" not in data and b"EU-" not in data
