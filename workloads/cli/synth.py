"""`federate synth`'s options, light enough for CLI start-up (the engine loads on use)."""

from __future__ import annotations

import argparse
from pathlib import Path

from workloads.federation.defaults import (
    DEFAULT_NODES,
    SYNTH_CLIP,
    SYNTH_DELTA,
    SYNTH_MARGINAL_SHARE,
)
from workloads.local_node import DEFAULT_ROOT


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help=f"folder of local nodes (default: {DEFAULT_ROOT})")
    parser.add_argument("--nodes", default=",".join(DEFAULT_NODES),
                        help=f"comma-separated node names (default {','.join(DEFAULT_NODES)})")
    parser.add_argument("--table", default="patient_genomic_data", help="a declared table")
    parser.add_argument("--rows", type=int, default=10_000, help="synthetic rows (default 10000)")
    parser.add_argument("--epsilon", type=float, default=1.0, help="this run's epsilon per node")
    parser.add_argument("--delta", type=float, default=SYNTH_DELTA,
                        help=f"this run's delta per node (default {SYNTH_DELTA})")
    parser.add_argument("--out", type=Path, default=Path("synthetic-out"),
                        help="folder for the export, in the clear: the one thing this command "
                        "writes outside the nodes (default: ./synthetic-out)")
    parser.add_argument("--marginal-share", type=float, default=SYNTH_MARGINAL_SHARE,
                        help=f"share of the budget spent on the marginals "
                        f"(default {SYNTH_MARGINAL_SHARE})")
    parser.add_argument("--clip", type=float, default=SYNTH_CLIP,
                        help=f"normal-score clip (default {SYNTH_CLIP})")
    parser.add_argument("--transport", choices=("inprocess", "pubsub"), default="inprocess",
                        help="in-process queues, or Pub/Sub (the emulator is started unless "
                        "PUBSUB_EMULATOR_HOST is set); each node's cap is its own policy's "
                        "lifetime_epsilon (federation_policy.toml), never a hub option")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed (not the noise)")
    parser.add_argument("--no-quality", action="store_true",
                        help="skip the per-node SDMetrics scores (they are not DP)")


def run(args: argparse.Namespace) -> int:
    from workloads.synthetic.run import run_synth_command

    return run_synth_command(args)
