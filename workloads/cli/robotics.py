"""CLI commands: `robotics generate` (a node's surgical-robot fleet) and `robotics summary`."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from workloads.contracts.errors import UserError
from workloads.contracts.tables.robotics import ROBOT_MODELS
from workloads.local_node import DEFAULT_ROOT
from workloads.robotics.profile import DEFAULT_HZ, MAX_HZ, MIN_HZ, find_profile, load_profile
from workloads.robotics.run import generate_fleet
from workloads.robotics.summary import summarize_node
from workloads.robotics.telemetry import DEFAULT_CHUNK_ROWS


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2023-01-01") from None


def register(sub: argparse._SubParsersAction[Any]) -> None:
    robotics = sub.add_parser(
        "robotics", help="surgical-robot fleet of a node: generate, summary",
        description="The surgical-robotics domain of a node (see docs/robotics.md).")
    cmds = robotics.add_subparsers(dest="robotics_command", required=True, metavar="COMMAND")
    gen = cmds.add_parser(
        "generate",
        help="generate a node's robots, procedures, outcomes, maintenance and telemetry",
        description=(
            "Generate a node's surgical-robot fleet from its profile "
            "(workloads/robotics/profiles/<node>.toml, --profile-dir or --profile) into the "
            "node's encrypted warehouse: the five surgical_robotics tables (keys enforced) "
            "and the aggregate views. Procedures are performed on the node's own patients "
            "(patient_genomic_data: run `generate --node NODE` first). Deterministic for a "
            "--seed. A node holds one fleet: a run replaces it in one transaction; the same "
            "run again changes nothing and says so. Nothing is written as plain files in the "
            "node folder, except what --export-dir asks for."),
    )
    which = gen.add_mutually_exclusive_group(required=True)
    which.add_argument("--node", help="node name: loads <node>.toml (built-in: us, eu)")
    which.add_argument("--profile", type=Path, metavar="PATH",
                       help="a fleet profile file; its name <node>.toml names the node")
    gen.add_argument("--profile-dir", type=Path, metavar="DIR",
                     help="folder of <node>.toml fleet profiles searched before the built-ins")
    for name, what in (("robots", "robots"), ("facilities", "facilities"),
                       ("surgeons", "surgeons"), ("technicians", "technicians"),
                       ("procedures", "procedures"),
                       ("maintenance", "planned maintenance logs (emergencies come on top)")):
        gen.add_argument(f"--{name}", type=int, help=f"number of {what} (default: profile)")
    gen.add_argument("--start", type=_date, help="first day, e.g. 2023-01-01 (default: profile)")
    gen.add_argument("--end", type=_date, help="last day, e.g. 2024-12-31 (default: profile)")
    gen.add_argument("--models", help=f"comma-separated robot models to use (default: the "
                                      f"profile's mix); known: {', '.join(ROBOT_MODELS)}")
    gen.add_argument("--hz", type=float, default=DEFAULT_HZ,
                     help=f"telemetry samples per second, {MIN_HZ:g}-{MAX_HZ:g} "
                          f"(default {DEFAULT_HZ:g}; 10 Hz for 5,000 procedures is ~350M rows)")
    gen.add_argument("--seed", type=int, default=42, help="random seed, >= 0 (default 42)")
    gen.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                     help="folder holding the local nodes (default: ./local)")
    gen.add_argument("--lake", metavar="gs://BUCKET",
                     help="also write telemetry as date-partitioned Parquet under "
                          "robotics/telemetry/ of this bucket (the cloud's external table)")
    gen.add_argument("--export-dir", type=Path, metavar="DIR",
                     help="also export every table as plain Parquet files into DIR (an export "
                          "you ask for: the files are not encrypted)")
    gen.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS,
                     help=f"telemetry rows per streamed chunk (default {DEFAULT_CHUNK_ROWS}); "
                          "the data does not depend on it")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate)

    summ = cmds.add_parser(
        "summary", help="a node's fleet, complication rates and consistency checks",
        description="Counts, complication rate by robot model and the verdict of every key "
                    "and consistency check, computed by SQL in the node's own warehouse.")
    summ.add_argument("--node", required=True, help="node name")
    summ.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                      help="folder holding the local nodes (default: ./local)")
    summ.set_defaults(func=_summary)


def _generate(args: argparse.Namespace) -> int:
    if args.profile is not None:
        profile = load_profile(args.profile)
    else:
        profile = find_profile(args.node, args.profile_dir)
    if args.lake is not None and not args.lake.startswith("gs://"):
        raise UserError(f"--lake {args.lake}: the lake is a bucket (gs://...); fix: for local "
                        "files use --export-dir DIR")
    if not 0 < args.chunk_rows <= 1 << 24:
        raise UserError(f"--chunk-rows {args.chunk_rows}: must be 1-{1 << 24}; fix: e.g. "
                        "--chunk-rows 1000000")
    models = tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else None
    config = profile.config(
        robots=args.robots, facilities=args.facilities, surgeons=args.surgeons,
        technicians=args.technicians, procedures=args.procedures, maintenance=args.maintenance,
        start=args.start, end=args.end, hz=args.hz, models=models)
    result = generate_fleet(profile, config, seed=args.seed, root=args.root, lake=args.lake,
                            export_dir=args.export_dir, chunk_rows=args.chunk_rows,
                            progress=not args.no_progress)
    verdict = "replaced the node's fleet" if result.changed else (
        "unchanged: this fleet (same profile, settings, seed and patients) is already loaded")
    print(f"node {result.node}: {verdict} (seed {args.seed}, profile {profile.source})")
    for table, rows in result.rows.items():
        print(f"  {table:<24} {rows:>12,} rows")
    if args.lake:
        print(f"  lake: {result.lake_objects:,} Parquet objects under {args.lake}/robotics/"
              "telemetry/")
    for path in result.exported:
        print(f"  exported {path}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    print("\n".join(summarize_node(args.root, args.node)))
    return 0
