"""CLI: `python -m workloads vcf synth|process|derive|batch {dry-run,submit,run-local}`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from workloads.cli.args import DefaultsHelp, non_negative_int, positive_int
from workloads.cli.batch_job import add_job_commands
from workloads.contracts.errors import UserError
from workloads.generator.sampling import DEFAULT_SEED
from workloads.local_node import DEFAULT_ROOT
from workloads.vcf import SYNTH_RECORDS, SYNTH_SHARDS

INPUT_PREFIX = "vcf/"
VCF_SUFFIXES = (".vcf.gz", ".vcf", ".bcf")
TASK_KIND = "vcf"  # registered by workloads/vcf/task.py
BUCKET_PREFIX = "bucket:"  # names an object of the node's bucket; anything else is a path


def register(sub: argparse._SubParsersAction[Any]) -> None:
    vcf = sub.add_parser("vcf", help="VCF pipeline: synthesise, process, load, Batch jobs")
    cmds = vcf.add_subparsers(dest="vcf_command", required=True, metavar="VCF_COMMAND")

    def node_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--node", required=True, help="local node name (e.g. us)")
        p.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                       help=f"folder holding the local nodes (default: {DEFAULT_ROOT})")

    synth = cmds.add_parser(
        "synth", help="write synthetic VCF shards from the node's patients",
        formatter_class=DefaultsHelp,
        description=f"Write bgzipped VCFs whose genotypes reproduce the node's patients "
                    f"into the node's bucket ({BUCKET_PREFIX}{INPUT_PREFIX}...), encrypted "
                    f"at rest with the node's key.")
    node_args(synth)
    synth.add_argument("--records", type=positive_int, default=SYNTH_RECORDS,
                       help="VCF records over all shards")
    synth.add_argument("--shards", type=positive_int, default=SYNTH_SHARDS,
                       help="files, by genome region")
    synth.add_argument("--samples", type=positive_int, default=None,
                       help="only the first N patients by id (default: every patient)")
    synth.add_argument("--seed", type=non_negative_int, default=DEFAULT_SEED,
                       help="random seed, the same as generate's unless given")
    synth.add_argument("--no-progress", action="store_true", help="no progress bar")
    synth.set_defaults(func=_synth)

    process = cmds.add_parser(
        "process", help="process one VCF into the node (local)",
        description="Validate, split, annotate and load one VCF. A path is read in place "
                    "and never moved or changed; a refused file is copied into the node's "
                    f"quarantine. Name an object of the node's bucket as {BUCKET_PREFIX}KEY.")
    node_args(process)
    process.add_argument("file", help=f"path to a VCF file, or {BUCKET_PREFIX}KEY for an "
                                      f"object of the node's bucket (e.g. "
                                      f"{BUCKET_PREFIX}{INPUT_PREFIX}x.vcf.gz)")
    process.set_defaults(func=_process)

    derive = cmds.add_parser("derive", help="derive per-patient features from the variants")
    node_args(derive)
    derive.set_defaults(func=_derive)

    batch = cmds.add_parser("batch", help="the Confidential Cloud Batch job")
    bcmds = batch.add_subparsers(dest="batch_command", required=True, metavar="BATCH_COMMAND")
    add_job_commands(bcmds, kind=TASK_KIND, item_flag="shard",
                     item_help="object key in the raw-input bucket (repeatable)")
    local = bcmds.add_parser("run-local", help="run every shard's task in parallel processes",
                             formatter_class=DefaultsHelp,
                             description=f"Process every VCF under {BUCKET_PREFIX}"
                                         f"{INPUT_PREFIX} of the node's bucket, then load them.")
    node_args(local)
    local.add_argument("--workers", type=positive_int, default=2,
                       help="processes converting shards at once")
    local.add_argument("--no-progress", action="store_true", help="no progress bars")
    local.set_defaults(func=_run_local)


def _node(args: argparse.Namespace) -> Any:
    from workloads.local_node import LocalNode

    return LocalNode(args.node, args.root)


def _synth(args: argparse.Namespace) -> int:
    from workloads.vcf.synth import PatientGenotypes, synth_into_store

    node = _node(args)
    with node.open_warehouse(create=False) as warehouse:
        patients = PatientGenotypes.from_warehouse(warehouse).first(args.samples)
    keys = synth_into_store(patients, node.store(create=False), INPUT_PREFIX,
                            records=args.records, shards=args.shards, seed=args.seed,
                            progress=not args.no_progress)
    print(f"{len(patients.ids):,} samples, {args.records:,} records in {len(keys)} "
          f"object(s) of node {node.name}'s bucket (encrypted):", file=sys.stderr)
    for key in keys:
        print(BUCKET_PREFIX + key)
    return 0


def _source(node: Any, text: str) -> tuple[Any, str, str]:
    """(store, key, what) for a path or a bucket:KEY; says which it took."""
    from workloads.objectstore.folder import FolderStore

    if text.startswith(BUCKET_PREFIX):
        key = text[len(BUCKET_PREFIX):]
        store = node.store(create=False)
        if not store.exists(key):
            raise UserError(f"{text}: no such object in node {node.name}'s bucket; fix: list "
                            f"them with `python -m workloads node status --node {node.name}`, "
                            "or pass a path to a file")
        return store, key, f"object {key} of node {node.name}'s bucket"
    if text.startswith("gs://"):
        raise UserError(f"{text}: a local node reads files or {BUCKET_PREFIX}KEY objects; fix: "
                        "copy it here first (gcloud storage cp), or use `vcf batch submit`")
    path = Path(text).resolve()
    if not path.is_file():
        raise UserError(f"{text}: no such VCF file; fix: pass an existing file, or "
                        f"{BUCKET_PREFIX}KEY for an object of the node's bucket")
    return FolderStore(path.parent), path.name, f"file {path} (read only)"


def _process(args: argparse.Namespace) -> int:
    from workloads.vcf.features import derive_features
    from workloads.vcf.load import load_staged
    from workloads.vcf.pipeline import process_shard
    from workloads.vcf.synth import PatientGenotypes

    node = _node(args)
    staging = node.store(create=False)
    inputs, key, what = _source(node, args.file)
    print(f"reading {what}", file=sys.stderr)
    with node.open_warehouse(create=False) as warehouse:
        known = PatientGenotypes.from_warehouse(warehouse).ids
        result = process_shard(inputs, key, staging, known_samples=set(known))
        if result.status == "quarantined":
            raise UserError(f"{result.reason} (a copy and the reason are in node "
                            f"{node.name}'s bucket under quarantine/{result.staged_id}/)")
        outcome = load_staged(warehouse, staging, result.staged_id)
        if outcome.status == "conflict":
            raise UserError(outcome.reason)
        if outcome.loaded:
            derive_features(warehouse)
    if outcome.status == "already-loaded":
        print(f"already loaded: these records (fingerprint {outcome.fingerprint[:12]}...) are "
              f"in node {node.name}; nothing changed", file=sys.stderr)
    print(json.dumps({"shard": json.loads(result.to_json()), "loaded": outcome.loaded,
                      "status": outcome.status, "variant_rows": result.variant_rows},
                     sort_keys=True))
    return 0


def _derive(args: argparse.Namespace) -> int:
    from workloads.vcf.features import (
        derive_features,
        feature_mismatches,
        unsequenced_patients,
    )

    with _node(args).open_warehouse(create=False) as warehouse:
        result = derive_features(warehouse)
        mismatches = feature_mismatches(warehouse)
        unsequenced = unsequenced_patients(warehouse)
    print(json.dumps({"patients": result.rows, "differ_from_patient_genomic_data":
                      mismatches.num_rows, "patients_without_variants": unsequenced}))
    return 0 if mismatches.num_rows == 0 else 1


def _run_local(args: argparse.Namespace) -> int:
    from workloads.batch.local import input_items, run_local
    from workloads.contracts.batch import TaskRequest

    node = _node(args)
    shards = input_items(node, INPUT_PREFIX, VCF_SUFFIXES)
    if not shards:
        raise UserError(f"no VCFs under {BUCKET_PREFIX}{INPUT_PREFIX} in node {node.name}'s "
                        f"bucket; fix: python -m workloads vcf synth --node {node.name}")
    run = run_local(node, TaskRequest(TASK_KIND, tuple(shards)), workers=args.workers,
                    progress=not args.no_progress)
    for shard in run.results:
        print(shard.to_json())
    quarantined = run.quarantined
    for q in quarantined:
        print(f"quarantined: {getattr(q, 'reason', q.to_json())}", file=sys.stderr)
    loads = run.finished["loads"] if run.finished else []
    conflicts = [load for load in loads if load.status == "conflict"]
    for c in conflicts:
        print(f"quarantined: {c.reason}", file=sys.stderr)
    repeated = sum(load.status == "already-loaded" for load in loads)
    if repeated:
        print(f"already loaded: {repeated} file(s) whose records node {node.name} has; "
              "nothing changed for them", file=sys.stderr)
    return 1 if quarantined or conflicts else 0
