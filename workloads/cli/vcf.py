"""CLI: `python -m workloads vcf synth|process|derive|batch {dry-run,submit,run-local}`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from workloads.contracts.errors import UserError
from workloads.local_node import DEFAULT_ROOT

INPUT_PREFIX = "vcf/"
VCF_SUFFIXES = (".vcf.gz", ".vcf", ".bcf")
TASK_KIND = "vcf"  # registered by workloads/vcf/task.py


def register(sub: argparse._SubParsersAction[Any]) -> None:
    vcf = sub.add_parser("vcf", help="VCF pipeline: synthesise, process, load, Batch jobs")
    cmds = vcf.add_subparsers(dest="vcf_command", required=True, metavar="VCF_COMMAND")

    def node_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--node", required=True, help="local node name (e.g. us)")
        p.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                       help="folder holding the local nodes (default ./local)")

    synth = cmds.add_parser("synth", help="write synthetic VCF shards from the node's patients")
    node_args(synth)
    synth.add_argument("--records", type=int, default=2000, help="VCF records (default 2000)")
    synth.add_argument("--shards", type=int, default=4, help="files, by genome region")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--no-progress", action="store_true")
    synth.set_defaults(func=_synth)

    process = cmds.add_parser("process", help="process one VCF into the node (local)")
    node_args(process)
    process.add_argument("file", help=f"key in the node bucket (e.g. {INPUT_PREFIX}x.vcf.gz) "
                                      f"or a path to a VCF")
    process.set_defaults(func=_process)

    derive = cmds.add_parser("derive", help="derive per-patient features from the variants")
    node_args(derive)
    derive.set_defaults(func=_derive)

    batch = cmds.add_parser("batch", help="the Confidential Cloud Batch job")
    bcmds = batch.add_subparsers(dest="batch_command", required=True, metavar="BATCH_COMMAND")
    for name, func, text in (("dry-run", _dry_run, "print the job as JSON"),
                             ("submit", _submit, "create the job with BatchServiceClient")):
        p = bcmds.add_parser(name, help=text)
        p.add_argument("--stack-outputs", type=Path, required=True,
                       help="JSON from `pulumi stack output --json -s <node>`")
        p.add_argument("--shard", action="append", dest="shards", required=True,
                       help="object key in the raw-input bucket (repeatable)")
        p.add_argument("--image-tag", default="latest")
        p.add_argument("--location", help="region (default and only allowed: the node's)")
        p.add_argument("--parallelism", type=int, default=4)
        p.add_argument("--max-retries", type=int, default=2)
        p.add_argument("--max-run-hours", type=float, default=4.0)
        p.add_argument("--job-id", help="default: derived from the inputs")
        p.set_defaults(func=func)
    local = bcmds.add_parser("run-local", help="run every shard's task in parallel processes")
    node_args(local)
    local.add_argument("--workers", type=int, default=2)
    local.add_argument("--no-progress", action="store_true")
    local.set_defaults(func=_run_local)


def _node(args: argparse.Namespace) -> Any:
    from workloads.local_node import LocalNode

    return LocalNode(args.node, args.root)


def _synth(args: argparse.Namespace) -> int:
    from workloads.vcf.synth import PatientGenotypes, write_synthetic_vcf

    node = _node(args)
    with node.open_warehouse(create=False) as warehouse:
        patients = PatientGenotypes.from_warehouse(warehouse)
    paths = write_synthetic_vcf(patients, node.bucket / INPUT_PREFIX, records=args.records,
                                shards=args.shards, seed=args.seed,
                                progress=not args.no_progress)
    for path in paths:
        print(path)
    return 0


def _process(args: argparse.Namespace) -> int:
    from workloads.objectstore.folder import FolderStore
    from workloads.vcf.features import derive_features
    from workloads.vcf.load import load_staged
    from workloads.vcf.pipeline import process_shard
    from workloads.vcf.synth import PatientGenotypes

    node = _node(args)
    staging = FolderStore(node.bucket)
    path = Path(args.file)
    if path.is_absolute() and not path.is_file():
        raise UserError(f"{path}: no such VCF file; fix: pass an existing file or a key in "
                        f"the node bucket {node.bucket}")
    inputs, key = (FolderStore(path.parent), path.name) if path.is_file() else (staging, args.file)
    with node.open_warehouse(create=False) as warehouse:
        known = PatientGenotypes.from_warehouse(warehouse).ids
        result = process_shard(inputs, key, staging, known_samples=set(known))
        if result.status == "quarantined":
            raise UserError(result.reason)
        outcome = load_staged(warehouse, staging, result.fingerprint)
        derive_features(warehouse)
    print(json.dumps({"shard": json.loads(result.to_json()), "loaded": outcome.loaded,
                      "variant_rows": result.variant_rows}, sort_keys=True))
    return 0


def _derive(args: argparse.Namespace) -> int:
    from workloads.vcf.features import derive_features, feature_mismatches

    with _node(args).open_warehouse(create=False) as warehouse:
        result = derive_features(warehouse)
        mismatches = feature_mismatches(warehouse)
    print(json.dumps({"patients": result.rows, "differ_from_patient_genomic_data":
                      mismatches.num_rows}))
    return 0 if mismatches.num_rows == 0 else 1


def _job(args: argparse.Namespace) -> tuple[Any, Any]:
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
    settings = JobSettings(parallelism=args.parallelism, max_retry_count=args.max_retries,
                           max_run_duration_s=int(args.max_run_hours * 3600))
    request = TaskRequest(TASK_KIND, tuple(args.shards))
    job = build_job(target, request, settings=settings, location=args.location)
    job_id = args.job_id or default_job_id(target, request)
    return job, create_job_request(target, job, job_id, location=args.location)


def _dry_run(args: argparse.Namespace) -> int:
    from workloads.batch.job import job_json

    job, request = _job(args)
    print(json.dumps({"parent": request.parent, "jobId": request.job_id,
                      "job": json.loads(job_json(job))}, indent=2, sort_keys=True))
    return 0


def _submit(args: argparse.Namespace) -> int:
    from workloads.batch.job import submit

    _, request = _job(args)
    created = submit(request)
    print(f"submitted {created.name or request.job_id} ({created.uid})")
    return 0


def _run_local(args: argparse.Namespace) -> int:
    from workloads.batch.local import input_items, run_local
    from workloads.contracts.batch import TaskRequest

    node = _node(args)
    shards = input_items(node, INPUT_PREFIX, VCF_SUFFIXES)
    if not shards:
        raise UserError(f"no VCFs under {node.bucket / INPUT_PREFIX}; fix: "
                        f"python -m workloads vcf synth --node {node.name}")
    run = run_local(node, TaskRequest(TASK_KIND, tuple(shards)), workers=args.workers,
                    progress=not args.no_progress)
    for shard in run.results:
        print(shard.to_json())
    for q in run.quarantined:
        print(f"quarantined: {getattr(q, 'reason', q.to_json())}", file=sys.stderr)
    return 1 if run.quarantined else 0
