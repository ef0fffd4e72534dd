"""CLI command: demo - the whole local flow (workloads/demo.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workloads.demo import DEFAULT_ROWS, DEFAULT_SEED, DEMO_NODES, run_demo
from workloads.federation.defaults import TRANSPORTS
from workloads.local_node import DEFAULT_ROOT


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole flow locally: generate the nodes, then federated statistics and model",
        description=(
            f"Generate synthetic patients for the nodes {', '.join(DEMO_NODES)} into their own "
            "encrypted warehouses under --root, print each node's summary (computed inside that "
            "node), then run federated statistics and the federated logistic regression, where "
            "only signed, masked aggregates reach the hub, and compare it with the pooled fit "
            "(report on stdout, chart in --root). Re-running with the same arguments changes "
            "no data."
        ),
    )
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                   help=f"folder holding the local nodes (default: {DEFAULT_ROOT})")
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                   help=f"patients per node (default: {DEFAULT_ROWS})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"random seed (default: {DEFAULT_SEED})")
    p.add_argument("--transport", choices=TRANSPORTS, default=TRANSPORTS[0],
                   help="how federation messages travel: in-process queues (default) or the "
                   "Pub/Sub emulator from the gcloud SDK")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    run_demo(args.root, rows=args.rows, seed=args.seed, transport=args.transport,
             progress=not args.no_progress)
    return 0
