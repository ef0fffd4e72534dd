"""Fixtures: node warehouses filled with synthetic rows, and the Pub/Sub emulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workloads.federation.federation_data import make_node
from workloads.federation import emulator
from workloads.local_node import LocalNode


@pytest.fixture(scope="session")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[LocalNode]]:
    """us (3,000 rows) and eu (2,000 rows), built once per test session (read-only)."""
    root = tmp_path_factory.mktemp("nodes")
    return root, [make_node(root, "us", 3000, 1), make_node(root, "eu", 2000, 2)]


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
