"""CLI command: demo - the whole local flow (workloads/demo.py)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from workloads.demo import DEFAULT_ROWS, DEFAULT_SEED, DEMO_NODES, QUICK_ROWS, DemoConfig, run_demo
from workloads.federation.defaults import TRANSPORTS
from workloads.local_node import DEFAULT_ROOT


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole platform locally: three nodes, every domain, every federated "
        "product, one report",
        description=(
            f"Builds the nodes {', '.join(DEMO_NODES)}, each in its own encrypted folder under "
            "--root (patients, a VCF through the pipeline, FHIR bundles, a robotics fleet), "
            "then runs, through the federation (signed, masked aggregates; each node's guard): "
            "statistics, the logistic model (compared with the pooled fit), and a federated "
            "synthetic table with its SDMetrics score; then each node's privacy budget and the "
            "stacks' posture. Writes <root>/demo/report.html (self-contained) and report.md. "
            "Re-running with the same arguments changes no data and says so."
        ),
    )
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                   help=f"folder holding the local nodes (default: {DEFAULT_ROOT})")
    p.add_argument("--rows", type=int, default=None,
                   help=f"patients per node (default: {DEFAULT_ROWS}; {QUICK_ROWS} with --quick)")
    p.add_argument("--nodes", default=",".join(DEMO_NODES),
                   help=f"comma-separated nodes, three or more (default: {','.join(DEMO_NODES)})")
    p.add_argument("--quick", action="store_true",
                   help="small sizes (fewer patients, VCF records and procedures)")
    p.add_argument("--fresh", action="store_true",
                   help="start over: remove the demo's nodes, keys and report under --root first")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"random seed (default: {DEFAULT_SEED})")
    p.add_argument("--transport", choices=TRANSPORTS, default=TRANSPORTS[0],
                   help="how federation messages travel: in-process queues (default) or the "
                   "Pub/Sub emulator from the gcloud SDK")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    nodes = tuple(n.strip() for n in args.nodes.split(",") if n.strip())
    config = DemoConfig.quick() if args.quick else DemoConfig()
    config = replace(config, seed=args.seed, nodes=nodes, transport=args.transport)
    if args.rows is not None:
        config = replace(config, rows=args.rows)
    run_demo(args.root, config, progress=not args.no_progress, fresh=args.fresh)
    return 0
