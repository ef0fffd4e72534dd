"""Shared fixtures for the infra tests: captured stacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.capture import CapturedResource, capture_stack

NODE_STACKS = ("us", "eu", "sg")
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
