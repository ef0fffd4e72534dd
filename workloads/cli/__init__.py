"""`python -m workloads <command>`: one sub-command module per workload.

Each module in COMMAND_MODULES has `register(subparsers)`, which adds its commands and
sets `func` (taking the parsed args, returning an exit code) on each of them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from workloads.contracts.errors import UserError

COMMAND_MODULES = (
    "workloads.cli.generate",
    "workloads.cli.vcf",
    "workloads.cli.fhir",
    "workloads.cli.federate",
    "workloads.cli.demo",
    "workloads.analysis.cli",
    "workloads.cli.robotics",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workloads",
        description="Sovereign federated genomics: the workloads a node runs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
        return code
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
