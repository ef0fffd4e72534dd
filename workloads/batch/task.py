"""The Batch task entrypoint: `python -m workloads.batch.task` (the container's ENTRYPOINT).

Everything comes from the environment the job sets (workloads.contracts.batch.TaskEnv):
the task kind, the job's items (task i takes item BATCH_TASK_INDEX), where to read and
stage, and whether the task loads into BigQuery itself. The kind's registered function
(workloads/batch/registry.py) does the work; this module knows no kind.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from workloads.contracts.batch import TaskContext, TaskEnv
from workloads.contracts.errors import UserError


def main(argv: Sequence[str] | None = None) -> int:
    env_names = ", ".join(v for k, v in vars(TaskEnv).items() if k.isupper())
    argparse.ArgumentParser(
        prog="python -m workloads.batch.task",
        description="Run one Cloud Batch task of a registered kind (workloads/batch/registry.py)"
        f". Configured only by the environment the job sets: {env_names}.",
    ).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from workloads.batch.registry import run_task

    try:
        result = run_task(TaskContext.from_environment())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.to_json())
    # A quarantined input is a handled outcome: retrying the task would not change it.
    return 0


if __name__ == "__main__":
    sys.exit(main())
