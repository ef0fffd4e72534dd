"""CLI commands: generate (synthetic patients for one node) and summary (per node)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workloads.contracts.errors import UserError
from workloads.generator import (
    find_profile,
    format_summaries,
    generate_node,
    load_profile,
    summarize_nodes,
)
from workloads.generator.profile import Profile
from workloads.generator.run import FORMATS, parse_formats
from workloads.generator.sampling import DEFAULT_CHUNK_ROWS
from workloads.local_node import DEFAULT_ROOT


def register(sub: argparse._SubParsersAction[Any]) -> None:
    gen = sub.add_parser(
        "generate",
        help="generate one node's synthetic patients into CSV, Parquet and its warehouse",
        description=(
            "Generate synthetic patient_genomic_data rows for one node from its profile "
            "(workloads/generator/profiles/<node>.toml, a --profile-dir, or --profile PATH), "
            "streaming them in chunks into CSV, Parquet and the node's encrypted warehouse. "
            "Deterministic for a given --seed; loading is an idempotent upsert on patient_id."
        ),
    )
    which = gen.add_mutually_exclusive_group(required=True)
    which.add_argument("--node", help="node name: loads <node>.toml (built-in: us, eu)")
    which.add_argument("--profile", type=Path, metavar="PATH",
                       help="a profile file; its name <node>.toml names the node")
    gen.add_argument("--profile-dir", type=Path, metavar="DIR",
                     help="folder of <node>.toml profiles searched before the built-in ones")
    gen.add_argument("--rows", type=int, default=1000, help="patients to generate (default 1000)")
    gen.add_argument("--seed", type=int, default=42, help="random seed, >= 0 (default 42)")
    gen.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                     help="folder holding the local nodes (default: ./local)")
    gen.add_argument("--out", type=Path, metavar="DIR",
                     help="folder for the CSV/Parquet files (default: the node's bucket, "
                          "<root>/<node>/bucket/patient_genomic_data)")
    gen.add_argument("--formats", default=",".join(FORMATS),
                     help=f"comma-separated outputs among {','.join(FORMATS)} (default: all)")
    gen.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS,
                     help=f"rows per streamed chunk (default {DEFAULT_CHUNK_ROWS}); "
                          "the data does not depend on it")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate)

    summ = sub.add_parser(
        "summary",
        help="per-node n, cancer rate and means, computed inside each node's warehouse",
        description=(
            "Print each node's patient count, cancer rate, mean age, BMI and allele counts. "
            "Every number is computed by SQL inside that node's own warehouse; nodes are "
            "never joined."
        ),
    )
    summ.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                      help="folder holding the local nodes (default: ./local)")
    summ.add_argument("--node", action="append", dest="nodes", metavar="NODE",
                      help="only this node (repeatable; default: every node under --root)")
    summ.set_defaults(func=_summary)


def _profile(args: argparse.Namespace) -> Profile:
    if args.profile is not None:
        return load_profile(args.profile)
    return find_profile(args.node, args.profile_dir)


def _generate(args: argparse.Namespace) -> int:
    formats = parse_formats(args.formats)
    profile = _profile(args)
    result = generate_node(
        profile, rows=args.rows, seed=args.seed, root=args.root, out_dir=args.out,
        formats=formats, chunk_rows=args.chunk_rows, progress=not args.no_progress,
    )
    print(f"node {result.node}: {result.rows:,} patients (seed {args.seed}, profile "
          f"{profile.source}, expected cancer rate {profile.expected_prevalence():.4f})")
    for fmt, path in result.files.items():
        print(f"  {fmt:<9} {path}")
    if result.load is not None:
        load = result.load
        print(f"  warehouse {load.table}: {load.inserted:,} inserted, {load.updated:,} updated, "
              f"{load.unchanged:,} unchanged")
    return 0


def _summary(args: argparse.Namespace) -> int:
    if not args.root.is_dir():
        raise UserError(
            f"--root {args.root}: no such folder; fix: pass the folder used by generate"
        )
    print(format_summaries(summarize_nodes(args.root, args.nodes)))
    return 0
