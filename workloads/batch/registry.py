"""Task kinds: what a Batch task of each kind does, registered by the kind's own module.

The job builder, the stack's dynamic resource, the container entrypoint and the local
runner only name a kind; this registry maps the name to the kind's functions. Add a kind:

    # workloads/<domain>/task.py
    from workloads.batch.registry import TaskKind, register_task_kind
    register_task_kind(TaskKind("fhir", run=run_fhir_task))

and its module's name to TASK_MODULES below (one line), so that the entrypoint can find it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from workloads.contracts.batch import TASK_KIND, TaskContext
from workloads.contracts.errors import UserError

if TYPE_CHECKING:
    from workloads.local_node import LocalNode

# The modules that register a task kind when imported (one line per kind).
TASK_MODULES: tuple[str, ...] = ("workloads.vcf.task", "workloads.clinical.task")


class TaskResult(Protocol):
    """What a task returns: a status ("quarantined" = a handled bad input) and its JSON."""

    @property
    def status(self) -> str: ...

    def to_json(self) -> str: ...


@dataclass(frozen=True)
class TaskKind:
    """A kind of Batch task.

    run: processes `context.item` (the task's object key) and, when `context.warehouse` is
        "bigquery", loads its own result; locally ("none") it only stages its files.
    local_inputs: extra inputs read from the local node before the tasks start (the tasks
        run in other processes and the local warehouse has one writer), merged into each
        task's `context.inputs`.
    finish_local: after every local task, loads the staged results into the local node's
        warehouse (one writer at a time) and returns a summary.
    """

    name: str
    run: Callable[[TaskContext], TaskResult]
    local_inputs: Callable[[LocalNode], Mapping[str, Any]] | None = None
    finish_local: Callable[[LocalNode, Sequence[TaskResult]], Any] | None = None
    description: str = ""


_KINDS: dict[str, TaskKind] = {}


def register_task_kind(kind: TaskKind) -> TaskKind:
    """Make `kind` runnable by name (called once, when the kind's module is imported)."""
    if not TASK_KIND.match(kind.name):
        raise ValueError(f"task kind {kind.name!r}: lowercase letters and digits, at most 20")
    known = _KINDS.get(kind.name)
    if known is not None and known.run is not kind.run:
        raise ValueError(f"task kind {kind.name!r} is registered twice")
    _KINDS[kind.name] = kind
    return kind


def task_kinds() -> dict[str, TaskKind]:
    """Every registered kind (importing the kinds' modules on first use)."""
    for module in TASK_MODULES:
        importlib.import_module(module)
    return dict(_KINDS)


def task_kind(name: str) -> TaskKind:
    kinds = task_kinds()
    if name not in kinds:
        raise UserError(f"no task kind {name!r}; fix: use one of {', '.join(sorted(kinds))} "
                        f"(or register it: workloads/batch/registry.py)")
    return kinds[name]


def run_task(context: TaskContext) -> TaskResult:
    """Run one task: the kind's function on the context's item."""
    return task_kind(context.kind).run(context)
