"""The "fhir" Batch task kind: one input file per task, then one merge step.

`run_fhir_task(input, staging, files, index)` is what a Cloud Batch task runs (task i reads
files[i], BATCH_TASK_INDEX): it splits the file into per-patient NDJSON objects in the
staging bucket, validates every line and writes the valid resources (with provenance) to
`fhir/staged/<file sha256>.ndjson` and the rejected ones to `fhir/quarantine/`. Conditional
references resolve through `fhir/identifiers.json` in the staging bucket (written by a
previous load of the hospital and practitioner bundles, `fhir/identifiers/`) plus the
file's own identifiers. After all tasks, one process runs `workloads.clinical.bigquery.
merge_staged` (dedup, dangling references, MERGE) - the same checks as the local load.
Everything a task writes is keyed by the file's content, so a retried task rewrites the
same objects.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from workloads.clinical.records import split_file
from workloads.clinical.validate import StagedResource, validate_object
from workloads.contracts.errors import UserError
from workloads.objectstore.base import ObjectStore, open_store

TASK_KIND = "fhir"
STAGED_PREFIX = "fhir/staged/"
IDENTIFIERS_PREFIX = "fhir/identifiers/"
TASK_QUARANTINE_PREFIX = "fhir/quarantine/task-"


@dataclass(frozen=True)
class FhirTaskResult:
    source: str
    sha256: str
    staged_key: str
    resources: int
    quarantined: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def staged_line(r: StagedResource) -> str:
    return json.dumps({
        "resource_type": r.resource_type, "id": r.id, "resource": r.resource,
        "digest": r.digest, "generated_ts": r.generated_ts.isoformat() if r.generated_ts
        else None, "source": r.source, "line": r.line, "origin": r.origin,
        "references": list(r.references)}, sort_keys=True)


def read_staged(store: ObjectStore, key: str) -> list[StagedResource]:
    from workloads.clinical.validate import parse_instant

    out = []
    for line in store.read_bytes(key).decode().splitlines():
        d = json.loads(line)
        out.append(StagedResource(d["resource_type"], d["id"], d["resource"], d["digest"],
                                  parse_instant(d["generated_ts"]), d["source"], d["line"],
                                  d["origin"], tuple(d["references"])))
    return out


def read_identifier_index(store: ObjectStore) -> dict[str, str]:
    """Every identifier index written by earlier tasks (one object per input file)."""
    out: dict[str, str] = {}
    for key in store.list(IDENTIFIERS_PREFIX):
        out.update({str(k): str(v) for k, v in json.loads(store.read_bytes(key)).items()})
    return out


def write_identifier_index(store: ObjectStore, sha256: str, identifiers: Mapping[str, str]
                           ) -> None:
    # One object per file (parallel tasks never read-modify-write a shared object).
    store.write_bytes(f"{IDENTIFIERS_PREFIX}{sha256}.json",
                      json.dumps(dict(identifiers), sort_keys=True).encode())


def run_fhir_task(input_location: str, staging_location: str, files: Sequence[str],
                  index: int, *, identifiers: Mapping[str, str] | None = None
                  ) -> FhirTaskResult:
    """Split and validate files[index] (a key in the input bucket) into the staging bucket."""
    if not 0 <= index < len(files):
        raise UserError(f"task index {index} is outside the {len(files)} files; fix: "
                        f"task_count must equal the number of files")
    inputs, staging = open_store(input_location), open_store(staging_location)
    key = files[index]
    split = split_file(inputs.uri(key), inputs.read_bytes(key), staging)
    known = dict(read_identifier_index(staging) if identifiers is None else identifiers)
    known.update(split.identifiers)
    staged, quarantined = [], list(split.quarantined)
    for obj_key, lines in split.objects.items():
        checked = validate_object(staging, obj_key, origin_file=split.source,
                                  origin_lines=lines, identifiers=known,
                                  generated=split.generated)
        staged += checked.staged
        quarantined += checked.quarantined
    staged_key = f"{STAGED_PREFIX}{split.sha256}.ndjson"
    staging.write_bytes(staged_key, "".join(staged_line(r) + "\n" for r in staged).encode())
    if quarantined:
        staging.write_bytes(f"{TASK_QUARANTINE_PREFIX}{split.sha256[:32]}.ndjson",
                            "".join(q.to_json() + "\n" for q in quarantined).encode())
    if split.identifiers and not any(r.resource_type == "Patient" for r in staged):
        write_identifier_index(staging, split.sha256, split.identifiers)  # provider bundle
    return FhirTaskResult(split.source, split.sha256, staged_key, len(staged), len(quarantined))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m workloads.clinical.task`: one task (index = BATCH_TASK_INDEX), or --merge."""
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(prog="python -m workloads.clinical.task",
                                     description="The 'fhir' Batch task kind.")
    parser.add_argument("--input", required=True, help="gs://bucket or folder of the files")
    parser.add_argument("--staging", required=True, help="gs://bucket or folder")
    parser.add_argument("--files", required=True, help="JSON list of object keys")
    parser.add_argument("--index", type=int, default=int(os.environ.get("BATCH_TASK_INDEX", "0")))
    parser.add_argument("--merge", action="store_true",
                        help="after every task: check and merge the staged files into BigQuery")
    parser.add_argument("--project", default="")
    parser.add_argument("--dataset", default="clinical")
    parser.add_argument("--kms-key", default="", help="the dataset's CMEK key, on every job")
    args = parser.parse_args(argv)
    try:
        files = json.loads(args.files)
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise UserError("--files must be a JSON list of object keys")
        if args.merge:
            from google.cloud import bigquery

            from workloads.clinical.bigquery import merge_staged

            staging, inputs = open_store(args.staging), open_store(args.input)
            # This load's staged files: named by the content of its input files.
            keys = [f"{STAGED_PREFIX}{hashlib.sha256(inputs.read_bytes(f)).hexdigest()}.ndjson"
                    for f in files]
            missing = [k for k in keys if not staging.exists(k)]
            if missing:
                raise UserError(f"{len(missing)} of the files are not staged yet (e.g. "
                                f"{missing[0]}); fix: run every task before --merge")
            counts = merge_staged(bigquery.Client(project=args.project), project=args.project,
                                  dataset=args.dataset, staging=staging, staged_keys=keys,
                                  kms_key=args.kms_key)
            print(json.dumps(counts, sort_keys=True))
            return 0
        print(run_fhir_task(args.input, args.staging, files, args.index).to_json())
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
