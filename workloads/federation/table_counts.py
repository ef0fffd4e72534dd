"""`federate nodes`: each node's declared tables and their released row counts.

A row count per node is a per-node release (no secure aggregation can hide it: the question
is "how many rows does *this* node hold"), so it passes the node's guard like any other
release, over the same signed protocol (in-process or Pub/Sub). DataSHIELD's `ds.dim`
returns each study's exact dimensions; here a count is differentially private instead,
because an exact count is a differencing tool: asked before and after one patient is added
(or, with a cohort, for two cohorts differing by one patient) it tells whether that patient
is there.

Per table, at the node:
- the table must be in the node's own catalogue with at least one releasable column (a
  table whose columns may never leave the node does not have its size released either);
- the exact count gets discrete Gaussian noise of at least the node's
  `count_noise_multiplier` rows (one row changes a count by 1: sensitivity 1), whatever
  the hub asks, and the release is charged to that table's lifetime odometer (the same
  odometer as the table's other DP releases; refused once the cap would be passed);
- then, as post-processing (free): a noisy count below the node's `min_rows` is released
  only as "below min_rows", and the rest is rounded to the node's `count_rounding`.

Asking again costs budget again and draws fresh noise; averaging answers is bounded by the
lifetime cap (docs/analysis.md has the numbers). A repeated delivery of the same step gets
the very same bytes (the worker's answer cache), so it is neither charged nor re-noised.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from workloads.contracts.catalogue import ANALYSABLE
from workloads.contracts.schema import Table
from workloads.federation import privacy, secure_agg
from workloads.federation.guard import (
    ODOMETER,
    Guard,
    NodePolicy,
    RefusedError,
    Release,
    ReleaseClass,
    query_digest,
)

RELEASED, BELOW, NOT_LOADED, NOT_DECLARED, REFUSED = (
    "released", "below", "not loaded", "not declared", "refused")


def countable(tables: Sequence[Table] = ANALYSABLE) -> tuple[str, ...]:
    """Tables whose size a node may release: those with a releasable column."""
    return tuple(t.name for t in tables if any(c.releasable for c in t.columns))


@dataclass(frozen=True)
class TableCountsParams:
    tables: tuple[str, ...] = ()
    noise_multiplier: float = 0.0  # asked for; a node applies at least its policy's


@dataclass(frozen=True)
class Count:
    """One node's answer for one table."""

    status: str  # released | below | not loaded | not declared | refused
    value: float | None = None  # the rounded noisy count when released
    detail: str = ""  # the node's reason or threshold

    def text(self) -> str:
        if self.status == RELEASED and self.value is not None:
            return f"{self.value:,.0f}"
        if self.status == BELOW:
            return f"< {self.detail}"
        return self.status


class TableCounts:
    name: ClassVar[str] = "table_counts"
    params_type: ClassVar[type[Any]] = TableCountsParams
    release_class: ClassVar[ReleaseClass] = "metrics"

    def __init__(self, tables: Sequence[Table] = ANALYSABLE) -> None:
        self.tables = tuple(tables)

    def for_catalogue(self, tables: Sequence[Table]) -> TableCounts:
        return TableCounts(tables)

    def columns(self, params: TableCountsParams) -> tuple[str, ...]:
        return ()

    def model_size(self, params: TableCountsParams) -> int:
        return 0

    def dimension(self, params: TableCountsParams) -> int:
        return len(params.tables)

    def sensitivity(self, params: TableCountsParams) -> float:
        return 1.0  # per table: one row added or removed moves its count by 1

    def compute(self, data: Any, params: TableCountsParams, model: np.ndarray,
                policy: NodePolicy) -> np.ndarray:
        raise RefusedError(f"{self.name} is a per-node release judged table by table")

    def compute_in(self, warehouse: Any, params: TableCountsParams, model: np.ndarray,
                   policy: NodePolicy) -> np.ndarray:
        raise RefusedError(f"{self.name} is a per-node release judged table by table")

    def answer(self, warehouse: Any, guard: Guard, node: str, params: TableCountsParams,
               run_id: str, step: int) -> tuple[tuple[float, ...], dict[str, str]]:
        """The node side: values and statuses (one per asked table) for a `release` reply."""
        if len(params.tables) > 64 or len(set(params.tables)) != len(params.tables):
            raise RefusedError("ask for at most 64 distinct tables")
        allowed = set(countable(self.tables))
        values: list[float] = []
        statuses: list[list[str]] = []
        for table in params.tables:
            value, status, detail = 0.0, NOT_DECLARED, ""
            if table in allowed:
                exact = _exact_count(warehouse, table)
                status = NOT_LOADED
                if exact is not None:
                    value, status, detail = self._release(guard, node, params, table, exact,
                                                          run_id, step)
            values.append(value)
            statuses.append([status, detail[:300]])
        return tuple(values), {"status": json.dumps(statuses)}

    def _release(self, guard: Guard, node: str, params: TableCountsParams, table: str,
                 exact: float, run_id: str, step: int) -> tuple[float, str, str]:
        policy = guard.policy
        multiplier = max(params.noise_multiplier, policy.count_noise_multiplier)
        spent = _count_multipliers(guard, table, self.name)
        if privacy.epsilon([*spent, multiplier], policy.lifetime_delta) > policy.count_epsilon:
            return 0.0, REFUSED, (
                f"this table's row counts have spent their budget (epsilon "
                f"{privacy.epsilon(spent, policy.lifetime_delta):.3f} of this node's "
                f"count_epsilon {policy.count_epsilon:g})")
        release = Release(
            dataset=table, algorithm=self.name,
            query=query_digest(self.name, {"table": table}, ()),
            release_class="metrics", participants=(node,), run_id=run_id, step=step,
            sensitivity=1.0, noise_multiplier=multiplier,
        )
        try:  # admitted, charged to the odometer and noised by the guard
            noisy = float(secure_agg.decode(guard.release(release, np.array([exact])))[0])
        except RefusedError as exc:
            return 0.0, REFUSED, str(exc)
        if noisy < policy.min_rows:  # post-processing of the noisy value: free
            return 0.0, BELOW, str(policy.min_rows)
        step_size = max(1, policy.count_rounding)
        return float(round(noisy / step_size) * step_size), RELEASED, ""


def _exact_count(warehouse: Any, table: str) -> float | None:
    """The table's rows inside the node; None when it is not loaded here (any engine: the
    query fails). A declared view is created first in a local warehouse."""
    from workloads.analysis import sql

    try:
        if sql.dialect_of(warehouse) == "duckdb":
            sql.local_view(warehouse, table)
        return float(warehouse.query(
            f"SELECT count(*) FROM {warehouse.table_ref(table)}").column(0)[0].as_py())
    except Exception:  # not loaded on this node (engines name the table, never rows)
        return None


def _count_multipliers(guard: Guard, table: str, algorithm: str) -> list[float]:
    """This table's earlier count releases, from the node's odometer (wherever the guard
    keeps it)."""
    with guard._open() as ledger:
        return [float(v) for v in ledger.query(
            f"SELECT noise_multiplier FROM {ledger.table_ref(ODOMETER)} WHERE dataset = ? AND "
            f"algorithm = ?", [table, algorithm]).column(0).to_pylist()]


def node_counts(coordinator: Any, tables: Sequence[str] | None = None,
                noise_multiplier: float = 0.0) -> dict[str, dict[str, Count]]:
    """The hub side: per node, per table, what the node released (or why not)."""
    from workloads.federation.protocol import Message

    asked = tuple(tables) if tables is not None else countable()
    params = TableCountsParams(asked, noise_multiplier)
    if not coordinator.adverts:
        coordinator.setup()  # a run's nodes first prove their keys (signed adverts)
    answers: dict[str, Message]
    answers, refusals = coordinator.per_node(TableCounts(), params, ())
    out: dict[str, dict[str, Count]] = {}
    for node, message in answers.items():
        try:
            statuses = json.loads(message.params.get("status", "[]"))
        except ValueError:
            statuses = []
        if not isinstance(statuses, list) or len(statuses) != len(asked) or len(
                message.values) != len(asked):
            coordinator._reject(f"node {node}: table counts of the wrong shape")
            continue
        row = {}
        for table, value, entry in zip(asked, message.values, statuses, strict=True):
            status, detail = (str(entry[0]), str(entry[1])) if isinstance(entry, list) and len(
                entry) == 2 else (REFUSED, "malformed")
            row[table] = Count(status, float(value) if status == RELEASED else None, detail)
        out[node] = row
    for node, reason in refusals.items():
        out[node] = {table: Count(REFUSED, None, reason) for table in asked}
    return dict(sorted(out.items()))


def format_counts(counts: dict[str, dict[str, Count]], tables: Sequence[str]) -> str:
    nodes = list(counts)
    width = max([len(t) for t in tables] + [5]) + 2
    lines = [f"{'table':<{width}}" + "".join(f"{n:>14}" for n in nodes)]
    for table in tables:
        lines.append(f"{table:<{width}}" + "".join(
            f"{counts[n][table].text():>14}" for n in nodes))
    return "\n".join(lines)
