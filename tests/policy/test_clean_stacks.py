"""The stacks the project declares pass every policy: the same functions the pack runs."""

from __future__ import annotations

import pytest

from infra.policy.sovereign_policies import evaluate
from tests.policy.mutations import captured, stacks_under_test


@pytest.mark.parametrize("stack", stacks_under_test())
def test_declared_stack_has_no_violations(stack: str) -> None:
    resources, config = captured(stack)
    assert len(resources) > 5
    assert [v.message for v in evaluate(resources, config)] == []
