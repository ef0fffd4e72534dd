"""Policy tests: the repository on sys.path, and the mutation matrix in the test summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


# An attribute, not a StashKey: the hook may be loaded from two module copies.
_PRINTED = "_sovereign_policy_matrix_printed"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """Print the mutation x policy matrix whenever policy tests ran in this session.

    Computed here (not collected from the tests) so that it also prints under pytest-xdist,
    where tests run in worker processes; with `pytest tests/policy` it is the same cached
    computation the tests asserted on. Under xdist from the repository root the controller
    loads only tests/conftest.py: importing this hook there makes it print in that run too
    (the stash flag keeps it to one copy when both conftests are loaded).
    """
    if getattr(config, _PRINTED, False):
        return
    setattr(config, _PRINTED, True)
    ran = any(
        getattr(report, "nodeid", "").startswith("tests/policy/")
        for reports in terminalreporter.stats.values()
        for report in reports
    )
    if not ran:
        return
    from tests.policy.mutations import matrix, render, stacks_under_test

    terminalreporter.write_sep("=", "policy mutation matrix (mutation x policy)")
    terminalreporter.write_line(render(matrix(stacks_under_test())))
