"""The researcher-specified statistics (workloads/analysis/statistics.py) as a federation
algorithm: `analysis_stats`.

A node re-parses the spec (typed parameters) with the analysis library, re-validates it
against its own catalogue, runs ONE aggregate in its warehouse (`node_statistics`) and
releases through its guard and secure aggregation. The vector is the cells followed by one
pass indicator per cell.

Exact releases (small-cell control, before masking): a count cell with 1 to k-1 rows fails;
a group (all rows, or a level of `by`) whose row count fails hides all its cells; a numeric
column whose count fails hides its count, sums and bins; within a family of complementary
cells (one column's bins, one cross-tab, the levels of `by`) a single failing cell also
hides the smallest other non-zero cell (it could be recovered from the total). Hidden cells
are zeroed and their indicator is 0; the hub publishes a cell only where every participant
passed it. Under DP nothing is zeroed; the hub hides counts below k on the noisy sums.

DP sensitivity (add/remove one row, values clamped into their public bounds): a row is in
"all" and at most one level of `by`; in each it adds 1 to rows, per numeric column 1 to its
count, at most max|bound| to its sum, max bound^2 to its sum of squares and 1 to one bin,
and 1 to one cell per cross-tab.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from workloads.analysis import statistics
from workloads.contracts.catalogue import ANALYSABLE
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.federation import data as node_data
from workloads.federation.analysis_glm import warehouse_answer
from workloads.federation.defaults import DEFAULT_K
from workloads.federation.guard import NodePolicy, RefusedError, ReleaseClass


@dataclass(frozen=True)
class AnalysisStatsParams:
    table: str = ""
    numeric: tuple[str, ...] = ()
    bins: int = 10
    crosstabs: tuple[str, ...] = ()  # "a,b"
    by: str = ""
    cohort: str = ""
    k: int = DEFAULT_K
    noise_multiplier: float = 0.0

    @staticmethod
    def of(spec: statistics.StatsSpec, k: int, noise_multiplier: float = 0.0
           ) -> AnalysisStatsParams:
        if spec.edges:
            raise UserError("stats: explicit 'edges' are not sent over the federation yet; "
                            "fix: use 'bins' (equal width over the public bounds)")
        return AnalysisStatsParams(spec.table, spec.numeric, spec.bins,
                                   tuple(f"{a},{b}" for a, b in spec.crosstabs),
                                   spec.by or "", spec.cohort, k, noise_multiplier)

    def spec(self) -> statistics.StatsSpec:
        return statistics.from_dict({
            "table": self.table, "numeric": list(self.numeric), "bins": self.bins,
            "crosstabs": list(self.crosstabs), "by": self.by or None, "cohort": self.cohort,
        }, where="hub's statistics parameters")


def families(stats_plan: statistics.StatsPlan) -> list[list[int]]:
    """Groups of complementary count cells (their sum is released elsewhere)."""
    out: dict[tuple[str, str], list[int]] = {}
    for i, cell in enumerate(stats_plan.cells):
        if ":bin[" in cell.statistic:
            out.setdefault((cell.group, cell.statistic.split(":")[0]), []).append(i)
        elif "=" in cell.statistic:
            names = tuple(part.split("=")[0] for part in cell.statistic.split(","))
            out.setdefault((cell.group, ",".join(names)), []).append(i)
    by_rows = [i for i, c in enumerate(stats_plan.cells) if c.statistic == "rows"
               and c.group != "all"]
    return [*out.values(), *([by_rows] if by_rows else [])]


def suppressed(stats_plan: statistics.StatsPlan, values: np.ndarray, k: int) -> np.ndarray:
    cells = stats_plan.cells
    counts = np.array([c.kind == "count" for c in cells])
    hidden: np.ndarray = counts & (values > 0) & (values < k)
    for family in families(stats_plan):  # complementary suppression
        failing = [i for i in family if hidden[i]]
        others = [i for i in family if not hidden[i] and values[i] > 0]
        if len(failing) == 1 and others:
            hidden[min(others, key=lambda i: values[i])] = True
    for i, cell in enumerate(cells):  # a hidden group or column count hides what it covers
        if not hidden[i]:
            continue
        if cell.statistic == "rows":
            hidden |= np.array([c.group == cell.group for c in cells])
        elif cell.statistic.endswith(":count"):
            column = cell.statistic.split(":")[0]
            hidden |= np.array([c.group == cell.group and c.statistic.startswith(f"{column}:")
                                for c in cells])
    return hidden


class AnalysisStats:
    name: ClassVar[str] = "analysis_stats"
    params_type: ClassVar[type[Any]] = AnalysisStatsParams
    release_class: ClassVar[ReleaseClass] = "masked_sums"

    def __init__(self, tables: Sequence[Table] = ANALYSABLE) -> None:
        self.tables = tuple(tables)

    def for_catalogue(self, tables: Sequence[Table]) -> AnalysisStats:
        return AnalysisStats(tables)

    def plan(self, params: AnalysisStatsParams) -> statistics.StatsPlan:
        return statistics.plan(params.spec(), self.tables)

    def columns(self, params: AnalysisStatsParams) -> tuple[str, ...]:
        return tuple(params.numeric)

    def model_size(self, params: AnalysisStatsParams) -> int:
        return 0

    def dimension(self, params: AnalysisStatsParams) -> int:
        return 2 * len(self.plan(params).cells)

    def sensitivity(self, params: AnalysisStatsParams) -> float:
        stats_plan = self.plan(params)
        per_group = 1.0 + len(stats_plan.spec.crosstabs)
        for name in stats_plan.spec.numeric:
            bounds = stats_plan.table.column(name).bounds
            assert bounds is not None  # plan() refuses numeric columns without bounds
            top = max(abs(float(bounds[0])), abs(float(bounds[1])))
            per_group += 1.0 + top**2 + top**4 + 1.0
        groups = 2 if stats_plan.spec.by else 1
        return math.sqrt(groups * per_group)

    def compute(self, data: node_data.NodeData, params: AnalysisStatsParams,
                model: np.ndarray, policy: NodePolicy) -> np.ndarray:
        raise RefusedError(f"{self.name} runs in the warehouse, not on rows in memory")

    def compute_in(self, warehouse: Any, params: AnalysisStatsParams, model: np.ndarray,
                   policy: NodePolicy) -> np.ndarray:
        try:
            spec = params.spec()
            stats_plan = statistics.plan(spec, self.tables)  # this node's own catalogue
        except UserError as exc:
            raise RefusedError(f"the statistics are refused: {exc}") from None
        values = warehouse_answer(
            lambda: statistics.node_statistics(warehouse, spec, self.tables), spec.table)
        passed = np.ones(len(values))
        if params.noise_multiplier <= 0:
            hidden = suppressed(stats_plan, values, max(params.k, policy.min_k))
            values = np.where(hidden, 0.0, values)
            passed = np.where(hidden, 0.0, 1.0)
        return np.concatenate([values, passed])


def combine(stats_plan: statistics.StatsPlan, total: np.ndarray, participants: int,
            k: int, dp: bool) -> tuple[np.ndarray, np.ndarray]:
    """Combined cells and a mask of the published ones."""
    size = len(stats_plan.cells)
    values, passes = total[:size], total[size:]
    if dp:
        shown = ~suppressed(stats_plan, np.maximum(values, 0.0), k)
        shown &= np.array([c.kind != "count" or v >= k for c, v in
                           zip(stats_plan.cells, values, strict=True)])
    else:
        values = np.where([c.kind == "count" for c in stats_plan.cells], np.rint(values), values)
        shown = np.rint(passes) == participants
    return values, shown
