"""`<kind> batch dry-run | submit`: the Confidential Batch job of a task kind, one set of
options and one builder for every kind (`vcf`, `fhir`, ...)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from workloads.cli.args import DefaultsHelp, non_negative_int, positive_int
from workloads.contracts.errors import UserError


def add_job_commands(bcmds: argparse._SubParsersAction[Any], *, kind: str, item_flag: str,
                     item_help: str, description: str | None = None) -> None:
    """Adds `dry-run` and `submit` for task kind `kind`; items come from `--<item_flag>`."""
    for name, func, text in (("dry-run", _dry_run, "print the job as JSON"),
                             ("submit", _submit, "create the job with BatchServiceClient")):
        p = bcmds.add_parser(name, help=text, description=description,
                             formatter_class=DefaultsHelp)
        p.add_argument("--stack-outputs", type=Path, required=True,
                       help="JSON from `pulumi stack output --json -s <node>`")
        p.add_argument(f"--{item_flag}", action="append", dest="items", required=True,
                       help=item_help)
        p.add_argument("--image-tag", default="latest",
                       help="tag of the sovereign-tasks image in the node's registry")
        p.add_argument("--location", help="region (default and only allowed: the node's)")
        # None = the job builder's own default (workloads.contracts.batch.JobSettings).
        p.add_argument("--parallelism", type=positive_int,
                       help="tasks running at once (default: JobSettings.parallelism, 4)")
        p.add_argument("--max-retries", type=non_negative_int,
                       help="retries per task (default: JobSettings.max_retry_count, 2)")
        p.add_argument("--max-run-hours", type=float,
                       help="a task running longer is stopped (default: "
                            "JobSettings.max_run_duration_s, 4 h)")
        p.add_argument("--job-id", help="default: derived from the inputs")
        p.set_defaults(func=func, task_kind=kind)


def job_and_request(args: argparse.Namespace) -> tuple[Any, Any]:
    from workloads.batch.job import build_job, create_job_request
    from workloads.contracts.batch import (
        BatchTarget,
        JobSettings,
        TaskRequest,
        check_location,
        default_job_id,
    )

    try:
        outputs = json.loads(args.stack_outputs.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{args.stack_outputs}: cannot read stack outputs ({exc}); fix: "
                        f"pulumi stack output --json -s <node> > outputs.json") from exc
    target = BatchTarget.from_stack_outputs(outputs, image_tag=args.image_tag)
    check_location(target, args.location)  # refused here, before anything is built or sent
    overrides = {"parallelism": args.parallelism, "max_retry_count": args.max_retries,
                 "max_run_duration_s": None if args.max_run_hours is None
                 else int(args.max_run_hours * 3600)}
    settings = JobSettings(**{k: v for k, v in overrides.items() if v is not None})
    request = TaskRequest(args.task_kind, tuple(args.items))
    job = build_job(target, request, settings=settings, location=args.location)
    job_id = args.job_id or default_job_id(target, request)
    return job, create_job_request(target, job, job_id, location=args.location)


def _dry_run(args: argparse.Namespace) -> int:
    from workloads.batch.job import job_json

    job, request = job_and_request(args)
    print(json.dumps({"parent": request.parent, "jobId": request.job_id,
                      "job": json.loads(job_json(job))}, indent=2, sort_keys=True))
    return 0


def _submit(args: argparse.Namespace) -> int:
    from workloads.batch.job import submit

    _, request = job_and_request(args)
    created = submit(request)
    print(f"submitted {created.name or request.job_id} ({created.uid})")
    return 0
