"""`python -m workloads.synthetic --nodes us,eu --table patient_genomic_data --rows 10000
--epsilon 1 --out DIR`: the same command as `federate synth`, standalone."""

from __future__ import annotations

import argparse
import sys

from workloads.cli.synth import add_synth_arguments
from workloads.contracts.errors import UserError
from workloads.synthetic.run import run_synth_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads.synthetic",
                                     description="federated DP synthetic data over local nodes")
    add_synth_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_synth_command(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
