"""Run the Batch job's tasks on this machine against a local node.

Every shard runs the same task entrypoint as on Cloud Batch, in parallel processes;
the tasks only read the node's bucket and write Parquet to its staging prefix. DuckDB
allows one writing process per database file, so the coordinator (this process) then
loads the staged files one after another - each load is one transaction with its ledger
row - and derives the per-patient features.
"""

from __future__ import annotations

import sys
from concurrent.futures import as_completed
from dataclasses import dataclass

from tqdm import tqdm

from workloads.batch.task import run_task
from workloads.children import child_pool
from workloads.local_node import LocalNode
from workloads.vcf.features import derive_features
from workloads.vcf.load import LoadOutcome, load_staged
from workloads.vcf.pipeline import ShardResult
from workloads.vcf.synth import PatientGenotypes
from workloads.warehouse.base import LoadResult


@dataclass(frozen=True)
class LocalRun:
    shards: list[ShardResult]
    loads: list[LoadOutcome]
    features: LoadResult | None


def input_shards(node: LocalNode, prefix: str = "vcf/") -> list[str]:
    store = node.store(create=False)
    return [k for k in store.list(prefix) if k.endswith((".vcf.gz", ".vcf", ".bcf"))]


def run_local(
    node: LocalNode, shards: list[str], *, workers: int = 2, progress: bool = True
) -> LocalRun:
    with node.open_warehouse() as warehouse:
        patients = PatientGenotypes.from_warehouse(warehouse).ids
    bucket = str(node.bucket)
    key = node.store().key_bytes
    results: list[ShardResult | None] = [None] * len(shards)
    with child_pool(workers) as pool:  # workers die with this process
        futures = {pool.submit(run_task, bucket, bucket, shards, i, known_samples=patients,
                               store_key=key): i
                   for i in range(len(shards))}
        for future in tqdm(as_completed(futures), total=len(futures), desc="vcf tasks",
                           file=sys.stderr, disable=not progress):
            results[futures[future]] = future.result()
    done = [r for r in results if r is not None]
    loads: list[LoadOutcome] = []
    features = None
    staging = node.store()
    with node.open_warehouse() as warehouse:
        staged = [r for r in done if r.status != "quarantined"]
        for result in tqdm(staged, desc="vcf loads", unit="file", file=sys.stderr,
                           disable=not progress):
            loads.append(load_staged(warehouse, staging, result.staged_id))
        if any(load.loaded for load in loads):
            features = derive_features(warehouse)
    return LocalRun(done, loads, features)
