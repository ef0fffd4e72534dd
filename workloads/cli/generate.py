"""CLI commands: generate (synthetic patients for one node) and summary (per node)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workloads.cli.args import DefaultsHelp
from workloads.contracts.errors import UserError
from workloads.generator import (
    find_profile,
    format_summaries,
    generate_node,
    load_profile,
    summarize_nodes,
)
from workloads.generator.profile import Profile
from workloads.generator.run import DEFAULT_MODE, FORMATS, MODES, parse_formats
from workloads.generator.sampling import DEFAULT_CHUNK_ROWS, DEFAULT_ROWS, DEFAULT_SEED
from workloads.local_node import DEFAULT_ROOT


def register(sub: argparse._SubParsersAction[Any]) -> None:
    gen = sub.add_parser(
        "generate",
        help="generate one node's synthetic patients into CSV, Parquet and its warehouse",
        description=(
            "Generate synthetic patient_genomic_data rows for one node from its profile "
            "(workloads/generator/profiles/<node>.toml, a --profile-dir, or --profile PATH), "
            "streaming them in chunks into CSV and Parquet objects of the node's bucket and "
            "into its warehouse, all encrypted with the node's key. By default the node's "
            "synthetic population is replaced: afterwards the table and the files hold exactly "
            "the new rows (--mode append adds patients numbered after the existing ones). "
            "Deterministic for a given --seed; re-running the same command changes nothing."
        ),
        formatter_class=DefaultsHelp,
    )
    which = gen.add_mutually_exclusive_group(required=True)
    which.add_argument("--node", help="node name: loads <node>.toml (built-in: us, eu)")
    which.add_argument("--profile", type=Path, metavar="PATH",
                       help="a profile file; its name <node>.toml names the node")
    gen.add_argument("--profile-dir", type=Path, metavar="DIR",
                     help="folder of <node>.toml profiles searched before the built-in ones")
    gen.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="patients to generate")
    gen.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed, >= 0")
    gen.add_argument("--mode", choices=MODES, default=DEFAULT_MODE,
                     help="replace: the node's patients become exactly the new rows (table "
                          "and files); append: add patients numbered after the existing ones")
    gen.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                     help="folder holding the local nodes")
    gen.add_argument("--out", type=Path, metavar="DIR",
                     help="EXPORT the CSV/Parquet files as plain, unencrypted files into DIR "
                          "(the one exception to encryption at rest; default: encrypted "
                          "objects in the node's bucket under patient_genomic_data/)")
    gen.add_argument("--formats", default=",".join(FORMATS),
                     help=f"comma-separated outputs among {','.join(FORMATS)}")
    gen.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS,
                     help="rows per streamed chunk; the data does not depend on it")
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
                      help=f"folder holding the local nodes (default: {DEFAULT_ROOT})")
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
        mode=args.mode,
    )
    print(f"node {result.node}: {result.rows:,} patients (seed {args.seed}, profile "
          f"{profile.source}, expected cancer rate {profile.expected_prevalence():.4f}, "
          f"mode {result.mode})")
    where = "export, not encrypted" if args.out is not None else "encrypted object"
    for fmt, location in result.files.items():
        print(f"  {fmt:<9} {location} ({where})")
    if result.load is not None:
        load = result.load
        print(f"  warehouse {load.table}: {load.inserted:,} inserted, {load.updated:,} updated, "
              f"{load.unchanged:,} unchanged, {load.deleted:,} deleted")
    return 0


def _summary(args: argparse.Namespace) -> int:
    if not args.root.is_dir():
        raise UserError(
            f"--root {args.root}: no such folder; fix: pass the folder used by generate"
        )
    print(format_summaries(summarize_nodes(args.root, args.nodes)))
    return 0
