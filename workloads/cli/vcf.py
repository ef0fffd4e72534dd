"""CLI commands: vcf (filled in by its workload)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Adds no command yet."""
