"""The Batch task entrypoint: `python -m workloads.batch.task` (the container's ENTRYPOINT).

Task i processes shard i of VCF_SHARDS (BATCH_TASK_INDEX, set by Cloud Batch) from
VCF_INPUT into VCF_STAGING, then, with --load bigquery, loads it with a load job whose
id is derived from the file's fingerprint (a retried task cannot load twice). Locally
(`vcf batch run-local`) the same function runs with --load none and the coordinator
loads the staged files into the node's DuckDB, one writer at a time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from workloads.batch.job import (
    ENV_DATASET,
    ENV_INPUT,
    ENV_KMS_KEY,
    ENV_PROJECT,
    ENV_SHARDS,
    ENV_STAGING,
)
from workloads.contracts.errors import UserError
from workloads.objectstore.base import open_store
from workloads.vcf.load import load_staged
from workloads.vcf.pipeline import ShardResult, process_shard
from workloads.vcf.synth import PatientGenotypes

log = logging.getLogger("workloads.batch.task")


def run_task(
    input_location: str,
    staging_location: str,
    shards: Sequence[str],
    index: int,
    *,
    known_samples: Sequence[str] | None = None,
    load: str = "none",
    project: str = "",
    dataset: str = "",
    kms_key: str = "",
    store_key: bytes | None = None,
) -> ShardResult:
    if not 0 <= index < len(shards):
        raise UserError(f"task index {index} is outside the {len(shards)} shards; fix: "
                        f"task_count must equal the number of shards")
    # store_key: a local node's bucket is a folder encrypted with the node's key.
    inputs = open_store(input_location, store_key)
    staging = open_store(staging_location, store_key)
    warehouse = None
    if load == "bigquery":
        from workloads.warehouse.bigquery_warehouse import BigQueryWarehouse

        warehouse = BigQueryWarehouse(project=project, dataset=dataset, kms_key=kms_key)
        if known_samples is None:
            known_samples = PatientGenotypes.from_warehouse(warehouse).ids
    result = process_shard(inputs, shards[index], staging,
                           known_samples=set(known_samples) if known_samples else None)
    if warehouse is not None and result.status != "quarantined":
        load_staged(warehouse, staging, result.staged_id)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.batch.task",
        description="Process one VCF shard (Cloud Batch task; shard = BATCH_TASK_INDEX).",
    )
    env = os.environ
    parser.add_argument("--input", default=env.get(ENV_INPUT), help="gs://bucket or folder")
    parser.add_argument("--staging", default=env.get(ENV_STAGING), help="gs://bucket or folder")
    parser.add_argument("--shards", default=env.get(ENV_SHARDS), help="JSON list of object keys")
    parser.add_argument("--index", type=int, default=int(env.get("BATCH_TASK_INDEX", "0")))
    parser.add_argument("--load", choices=("none", "bigquery"), default="none")
    parser.add_argument("--project", default=env.get(ENV_PROJECT, ""))
    parser.add_argument("--dataset", default=env.get(ENV_DATASET, ""))
    parser.add_argument("--kms-key", default=env.get(ENV_KMS_KEY, ""),
                        help="the dataset's CMEK key, named on every BigQuery job")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if not (args.input and args.staging and args.shards):
            raise UserError(f"need --input, --staging and --shards (or {ENV_INPUT}, "
                            f"{ENV_STAGING}, {ENV_SHARDS}); fix: run it from the Batch job")
        result = run_task(args.input, args.staging, json.loads(args.shards), args.index,
                          load=args.load, project=args.project, dataset=args.dataset,
                          kms_key=args.kms_key)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.to_json())
    # A quarantined file is a handled outcome: retrying the task would not change it.
    return 0


if __name__ == "__main__":
    sys.exit(main())
