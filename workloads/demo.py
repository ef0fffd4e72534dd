"""The local end-to-end demo: what `python -m workloads demo` (scripts/run-local.sh) runs.

It generates every demo node's patients into its own encrypted warehouse (and
its bucket) and returns the per-node summaries; the CLI then runs the federation over them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from workloads.generator import NodeSummary, find_profile, generate_node, summarize_nodes

DEMO_NODES = ("us", "eu")
DEFAULT_ROWS = 1000  # the seed's 1,000 patients per node
DEFAULT_SEED = 42


def run_demo(
    root: Path,
    *,
    rows: int = DEFAULT_ROWS,
    seed: int = DEFAULT_SEED,
    nodes: Sequence[str] = DEMO_NODES,
    progress: bool = True,
) -> list[NodeSummary]:
    """Generate each node's data (idempotent: re-running changes nothing) and summarise it."""
    profiles = [find_profile(node) for node in nodes]  # all checked before any work
    for profile in profiles:
        generate_node(profile, rows=rows, seed=seed, root=root, progress=progress)
    return summarize_nodes(root, nodes)
