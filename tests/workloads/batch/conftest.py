"""The node stack's real outputs (the us stack captured under mocks) and its Batch target.

No hand-written copy: what `pulumi stack output --json -s us` would print is what the
program exports, so a renamed or missing output fails these tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.capture import capture
from workloads.contracts.batch import BatchTarget


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Capturing the stack loads pulumi_gcp, which warns about its own deprecated aliases.
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_gcp"))


@pytest.fixture(scope="session")
def stack_outputs() -> dict[str, Any]:
    return capture("us").outputs


@pytest.fixture
def target(stack_outputs: dict[str, Any]) -> BatchTarget[str]:
    return BatchTarget.from_stack_outputs(stack_outputs, image_tag="v1")


@pytest.fixture
def outputs_file(tmp_path: Path, stack_outputs: dict[str, Any]) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(stack_outputs))
    return path
