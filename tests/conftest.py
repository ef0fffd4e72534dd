"""Shared by every test area: the repository root on sys.path, so `import workloads` and
`import infra` work however pytest is started (`pytest tests/<area>` included)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# The policy area's mutation matrix is printed from the controller process, which under
# pytest-xdist loads only this top-level conftest.
from tests.policy.conftest import pytest_terminal_summary  # noqa: E402, F401
