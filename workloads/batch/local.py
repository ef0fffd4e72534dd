"""Run a Batch job's tasks on this machine against a local node.

Every item runs the same task function as on Cloud Batch, in parallel processes; the
tasks only read the node's bucket and stage files in it. A local warehouse has one
writer, so the kind's `finish_local` (this process) then loads what the tasks staged.
"""

from __future__ import annotations

import sys
from concurrent.futures import as_completed
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from workloads.batch.registry import TaskResult, run_task, task_kind
from workloads.children import child_pool
from workloads.contracts.batch import TaskContext, TaskRequest
from workloads.local_node import LocalNode


@dataclass(frozen=True)
class LocalRun:
    results: list[TaskResult]  # one per item, in the items' order
    finished: Any  # what the kind's finish_local returned (None without one)

    @property
    def quarantined(self) -> list[TaskResult]:
        return [r for r in self.results if r.status == "quarantined"]


def input_items(node: LocalNode, prefix: str, suffixes: tuple[str, ...]) -> list[str]:
    """Object keys under `prefix` in the node's bucket ending with one of `suffixes`."""
    store = node.store(create=False)
    return [k for k in store.list(prefix) if k.endswith(suffixes)]


def run_local(
    node: LocalNode, request: TaskRequest, *, workers: int = 2, progress: bool = True
) -> LocalRun:
    kind = task_kind(request.kind)
    inputs = dict(request.inputs)
    if kind.local_inputs is not None:
        inputs.update(kind.local_inputs(node))
    bucket = str(node.bucket)
    # The node's bucket is a folder sealed with the node's key: the tasks get it in-process.
    key = node.store().key_bytes
    contexts = [
        TaskContext(kind=request.kind, items=request.items, index=i, input_location=bucket,
                    staging_location=bucket, warehouse="none", inputs=inputs, store_key=key)
        for i in range(len(request.items))
    ]
    results: list[TaskResult | None] = [None] * len(contexts)
    with child_pool(workers) as pool:  # workers die with this process
        futures = {pool.submit(run_task, c): c.index for c in contexts}
        for future in tqdm(as_completed(futures), total=len(futures),
                           desc=f"{request.kind} tasks", file=sys.stderr, disable=not progress):
            results[futures[future]] = future.result()
    done = [r for r in results if r is not None]
    finished = kind.finish_local(node, done) if kind.finish_local is not None else None
    return LocalRun(done, finished)
