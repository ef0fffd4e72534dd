"""CLI: `python -m workloads fhir synth|ingest|view|status`."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from workloads.cli.batch_job import add_job_commands
from workloads.contracts.errors import UserError
from workloads.generator.sampling import DEFAULT_SEED
from workloads.local_node import DEFAULT_ROOT

FHIR_KIND = "fhir"  # the task kind registered by workloads/clinical/task.py


def register(sub: argparse._SubParsersAction[Any]) -> None:
    fhir = sub.add_parser("fhir", help="clinical FHIR records: synthesise, ingest, view, status")
    cmds = fhir.add_subparsers(dest="fhir_command", required=True, metavar="FHIR_COMMAND")

    def node_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--node", required=True, help="local node name (e.g. us)")
        p.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                       help="folder holding the local nodes (default ./local)")

    synth = cmds.add_parser("synth", help="write Synthea-shaped bundles for the node's patients "
                                          "into its bucket (fhir/input/)")
    node_args(synth)
    synth.add_argument("--seed", type=int, default=DEFAULT_SEED,
                       help=f"bundles' seed (default {DEFAULT_SEED}, the generator's)")
    synth.add_argument("--no-progress", action="store_true")
    synth.set_defaults(func=_synth)

    ingest = cmds.add_parser(
        "ingest", help="validate, stage and merge FHIR files into the node",
        description="PATHs are Synthea bundles (*.json) or bulk NDJSON (<Type>.ndjson) files, "
                    "or folders of them, on this machine; they are only read. Without PATH, "
                    "the node bucket's fhir/input/ prefix is read (where `fhir synth` writes).")
    node_args(ingest)
    ingest.add_argument("paths", nargs="*", metavar="PATH")
    ingest.add_argument("--workers", type=int, default=2, help="parallel processes (per file)")
    ingest.add_argument("--no-progress", action="store_true")
    ingest.set_defaults(func=_ingest)

    view = cmds.add_parser("view", help="run a SQL on FHIR v2 ViewDefinition over the node's "
                                        "current resources; CSV to stdout or --out")
    node_args(view)
    view.add_argument("view", help="VIEW.json, or a built-in view name (patients, conditions, "
                                   "observations, encounters, medication_requests)")
    view.add_argument("--out", type=Path, help="write the rows to this CSV file (an export)")
    view.set_defaults(func=_view)

    status = cmds.add_parser("status", help="counts per type, the last load, quarantined records")
    node_args(status)
    status.set_defaults(func=_status)

    batch = cmds.add_parser("batch", help="the 'fhir' task kind as a Confidential Cloud Batch job")
    bcmds = batch.add_subparsers(dest="batch_command", required=True, metavar="BATCH_COMMAND")
    add_job_commands(bcmds, kind=FHIR_KIND, item_flag="item",
                     item_help="object key of a bundle or NDJSON file in the raw-input bucket "
                               "(repeatable; one task each)",
                     description="Load hospital and practitioner bundles in a job before the "
                                 "patients' bundles.")
    local = bcmds.add_parser("run-local", help="run the task kind on the bucket's fhir/input/ "
                                               "files in parallel processes, then merge")
    node_args(local)
    local.add_argument("--workers", type=int, default=2)
    local.add_argument("--no-progress", action="store_true")
    local.set_defaults(func=_run_local)


def _node(args: argparse.Namespace) -> Any:
    from workloads.local_node import LocalNode

    return LocalNode(args.node, args.root)


def _synth(args: argparse.Namespace) -> int:
    from workloads.clinical.load import INPUT_PREFIX, node_store
    from workloads.clinical.synth import write_synthetic
    from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA

    node = _node(args)
    with node.open_warehouse(create=False) as warehouse:
        patients = warehouse.query(
            f"SELECT patient_id, age, bmi, diagnosis_cancer FROM "
            f"{warehouse.table_ref(PATIENT_GENOMIC_DATA)} ORDER BY patient_id")
    keys = write_synthetic(patients, node_store(node), INPUT_PREFIX, seed=args.seed,
                           progress=not args.no_progress)
    print(json.dumps({"bundles": len(keys), "prefix": INPUT_PREFIX,
                      "bucket": str(node.bucket)}))
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from workloads.clinical.load import ingest, sources_from

    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: need at least 1; fix: --workers 2")
    node = _node(args)
    report = ingest(node, sources_from(node, args.paths), workers=args.workers,
                    progress=not args.no_progress)
    print(json.dumps(report.summary(), sort_keys=True))
    for q in report.quarantined[:20]:
        print(f"quarantined: {q.file}:{q.line}: {q.reason}", file=sys.stderr)
    if len(report.quarantined) > 20:
        print(f"... {len(report.quarantined) - 20} more in {report.quarantine_key} "
              f"(node bucket)", file=sys.stderr)
    return 1 if report.quarantined else 0


def _view(args: argparse.Namespace) -> int:
    from workloads.clinical.load import iter_resources
    from workloads.clinical.viewdef import ViewDefinition
    from workloads.contracts.tables.clinical import VIEW_DEFINITIONS

    if args.view in VIEW_DEFINITIONS:
        spec = VIEW_DEFINITIONS[args.view]
    else:
        try:
            spec = json.loads(Path(args.view).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{args.view}: cannot read a ViewDefinition ({exc}); fix: pass a "
                            f"JSON ViewDefinition or one of {sorted(VIEW_DEFINITIONS)}") from None
    view = ViewDefinition(spec)
    with _node(args).open_warehouse(create=False) as warehouse:
        out = args.out.open("w", newline="") if args.out else sys.stdout
        try:
            writer = csv.DictWriter(out, fieldnames=view.columns)
            writer.writeheader()
            for row in view.run(iter_resources(warehouse, view.resource)):
                writer.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v
                                 for k, v in row.items()})
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            sys.stderr.close()
        finally:
            if args.out:
                out.close()
    return 0


def _status(args: argparse.Namespace) -> int:
    from workloads.clinical.status import format_status, status

    print(format_status(status(_node(args))))
    return 0


def _run_local(args: argparse.Namespace) -> int:
    from workloads.batch.local import input_items, run_local
    from workloads.clinical.load import INPUT_PREFIX
    from workloads.contracts.batch import TaskRequest

    node = _node(args)
    items = input_items(node, INPUT_PREFIX, (".json", ".ndjson"))
    if not items:
        raise UserError(f"no FHIR files under {node.bucket / INPUT_PREFIX}; fix: "
                        f"python -m workloads fhir synth --node {node.name}")
    run = run_local(node, TaskRequest(FHIR_KIND, tuple(items)), workers=args.workers,
                    progress=not args.no_progress)
    print(json.dumps(run.finished, sort_keys=True))
    return 1 if run.finished and run.finished.get("quarantined") else 0
