"""Shared fixtures for the infra tests: the repository on sys.path and captured stacks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from infra.capture import CapturedResource, capture_stack  # noqa: E402

NODE_STACKS = ("us", "eu")
ALL_STACKS = (*NODE_STACKS, "hub")


@pytest.fixture(scope="session")
def captured() -> dict[str, list[CapturedResource]]:
    """Each committed stack, captured once per test session (read-only: do not mutate)."""
    return {stack: capture_stack(stack) for stack in ALL_STACKS}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pulumi_gcp warns about its own deprecated aliases while it loads, google.api_core
    # about Python 3.11's end of life in 2027, proto-plus about protobuf 5: not ours to fix.
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_gcp"))
            item.add_marker(pytest.mark.filterwarnings("ignore::FutureWarning:google"))
            item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning:proto"))
