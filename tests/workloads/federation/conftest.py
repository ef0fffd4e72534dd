"""Fixtures: node warehouses filled with synthetic rows, a pinned roster, the Pub/Sub emulator.

Nodes keep a release log and a privacy odometer for life, so tests that ask different
node sets the same question build their own nodes (`make_federation`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.workloads.federation.federation_data import make_node
from workloads.federation import emulator, roster
from workloads.local_node import LocalNode

Federation = tuple[Path, list[LocalNode]]


def build(root: Path, sizes: dict[str, int]) -> Federation:
    nodes = [make_node(root, name, n, seed) for seed, (name, n) in enumerate(sizes.items(), 1)]
    roster.write_local(root, list(sizes))
    return root, nodes


@pytest.fixture(scope="session")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    """us (3,000 rows), eu (2,000), sg (1,500), built once per session; ask them only
    questions over exactly this set."""
    return build(tmp_path_factory.mktemp("nodes"), {"us": 3000, "eu": 2000, "sg": 1500})


@pytest.fixture
def make_federation(tmp_path: Path) -> Callable[[dict[str, int]], Federation]:
    """Fresh nodes for one test: {name: rows}."""
    return lambda sizes: build(tmp_path, sizes)


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[str]:
    """One emulator per pytest(-xdist) worker, on a free port; sets PUBSUB_EMULATOR_HOST."""
    problems = emulator.missing()
    if problems:
        pytest.skip("Pub/Sub emulator not usable: " + "; ".join(problems))
    with emulator.running_emulator() as host:
        old = os.environ.get("PUBSUB_EMULATOR_HOST")
        os.environ["PUBSUB_EMULATOR_HOST"] = host
        try:
            yield host
        finally:
            if old is None:
                os.environ.pop("PUBSUB_EMULATOR_HOST", None)
            else:
                os.environ["PUBSUB_EMULATOR_HOST"] = old
