"""The `vcf` Batch task kind: one VCF file (or shard) per task.

Task i validates, normalises and annotates item i (an object key in the input store) into
Parquet in the staging store; in the cloud (warehouse "bigquery") it then loads the file
with load jobs whose ids derive from the file's fingerprint (a retried task cannot load
twice). Locally the tasks only stage, and `finish_local` loads the staged files into the
node's DuckDB one after another (one writer per database) and derives the features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workloads.batch.registry import TaskKind, TaskResult, register_task_kind
from workloads.contracts.batch import TaskContext
from workloads.contracts.tables.genomics import GENOMICS

if TYPE_CHECKING:
    from workloads.local_node import LocalNode
    from workloads.vcf.pipeline import ShardResult


def run_vcf_task(context: TaskContext) -> ShardResult:
    from workloads.objectstore.base import open_store
    from workloads.vcf.pipeline import process_shard

    inputs = open_store(context.input_location, context.store_key)
    staging = open_store(context.staging_location, context.store_key)
    known_samples: Sequence[str] | None = context.inputs.get("known_samples")
    warehouse = None
    if context.warehouse == "bigquery":
        from workloads.warehouse.bigquery_warehouse import BigQueryWarehouse

        warehouse = BigQueryWarehouse(
            project=context.project, dataset=GENOMICS.dataset, kms_key=context.kms_key
        )
        if known_samples is None:
            from workloads.vcf.synth import PatientGenotypes

            known_samples = PatientGenotypes.from_warehouse(warehouse).ids
    result = process_shard(inputs, context.item, staging,
                           known_samples=set(known_samples) if known_samples else None)
    if warehouse is not None and result.status != "quarantined":
        from workloads.vcf.load import load_staged

        load_staged(warehouse, staging, result.staged_id)
    return result


def _local_inputs(node: LocalNode) -> Mapping[str, Any]:
    from workloads.vcf.synth import PatientGenotypes

    with node.open_warehouse() as warehouse:
        return {"known_samples": PatientGenotypes.from_warehouse(warehouse).ids}


def _finish_local(node: LocalNode, results: Sequence[TaskResult]) -> dict[str, Any]:
    import sys

    from tqdm import tqdm

    from workloads.vcf.features import derive_features
    from workloads.vcf.load import load_staged
    from workloads.vcf.pipeline import ShardResult

    staging = node.store()
    loads, features = [], None
    staged = [r for r in results if isinstance(r, ShardResult) and r.status != "quarantined"]
    with node.open_warehouse() as warehouse:
        # One writer per database: the staged files load one after another.
        for result in tqdm(staged, desc="vcf loads", unit="file", file=sys.stderr):
            loads.append(load_staged(warehouse, staging, result.staged_id))
        if any(load.loaded for load in loads):
            features = derive_features(warehouse)
    return {"loads": loads, "features": features}


VCF_TASK = register_task_kind(TaskKind(
    "vcf",
    run=run_vcf_task,
    local_inputs=_local_inputs,
    finish_local=_finish_local,
    description="validate, normalise (bcftools norm -m -any), annotate and load one VCF",
))
