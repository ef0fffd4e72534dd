"""Shared by every test area.

`infra`, `workloads` and `tests` import from the repository root: pytest puts it on sys.path
(pyproject.toml: `pythonpath = ["."]`), and after `pip install -e .` they are installed.
"""

from __future__ import annotations

# The policy area's mutation matrix is printed from the controller process, which under
# pytest-xdist loads only this top-level conftest.
from tests.policy.conftest import pytest_terminal_summary  # noqa: F401
