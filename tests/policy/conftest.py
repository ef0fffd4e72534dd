"""Policy tests: the mutation matrix in the test summary."""

from __future__ import annotations

import json
from typing import Any

# An attribute, not a StashKey: the hook may be loaded from two module copies.
_PRINTED = "_sovereign_policy_matrix_printed"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """Print the mutation x policy matrix from the outcomes the mutation tests recorded.

    The outcomes travel in the test reports (user properties), so this works under
    pytest-xdist too, where the tests run in worker processes and only reports reach the
    controller. Under xdist from the repository root the controller loads only
    tests/conftest.py: importing this hook there makes it print in that run too (the
    attribute below keeps it to one copy when both conftests are loaded).
    """
    if getattr(config, _PRINTED, False):
        return
    setattr(config, _PRINTED, True)
    from tests.policy.mutations import NOT_APPLICABLE_PROPERTY, ROW_PROPERTY, Outcome, render

    outcomes: dict[tuple[str, str], Outcome] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            for key, value in getattr(report, "user_properties", ()):
                if key == ROW_PROPERTY:
                    stack, mutation, reported = json.loads(value)
                    outcomes[(stack, mutation)] = frozenset(reported)
                elif key == NOT_APPLICABLE_PROPERTY:
                    outcomes.update({(stack, name): None for stack, name in json.loads(value)})
    if outcomes:
        terminalreporter.write_sep("=", "policy mutation matrix (mutation x policy)")
        terminalreporter.write_line(render(outcomes))
