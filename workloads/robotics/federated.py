"""Federated robotics statistics: complication rate by robot model x procedure category.

The federation engine knows no robotics: this module is one more algorithm in its
registry (`workloads.federation.algorithms.REGISTRY["robotics_cells"]`). A node computes
its cells by SQL in its own warehouse (`aggregate.node_cell_counts`), extends them with
the margins (per model, per category, all), and releases them only through its guard
(masked sum over >= 3 nodes, release log, DP odometer). The table published by the hub
has the same shape; suppressed cells are None.

Disclosure control (exact releases), applied by each node to its own table before masking
and again by the hub to the combined table:
- primary: a cell (interior or margin) with fewer than k procedures, k with complications
  or k without (and, if `failed` is asked for, k failed or k not failed) is suppressed,
  unless it is empty (no procedures: it describes no patient);
- secondary: every row and column of the extended table states "interior cells sum to the
  margin". Cells are added to the suppressed set (the smallest count in a line of the
  offending cell) until (a) no suppressed cell is determined by those equations and the
  published cells (linear algebra: the cell's unit vector is not in the row space of the
  equations over the suppressed cells), and (b) in every line whose margin is published,
  the suppressed cells sum to at least k in each measure (what a reader learns of a line
  is that sum; below k it would bound each of them below k).
Under DP nothing is zeroed by the nodes (the noise protects every cell); the hub applies
the primary rule to the noisy combined counts (post-processing, for readability: a cell
derived from noisy margins is only another noisy value, so no secondary step is needed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from workloads.contracts.tables.robotics import SURGICAL_PROCEDURES
from workloads.federation.defaults import DEFAULT_K
from workloads.federation.guard import NodePolicy, RefusedError, ReleaseClass
from workloads.robotics.aggregate import COLUMN_LEVELS, MEASURES, ROW_LEVELS, node_cell_counts
from workloads.warehouse.base import Warehouse

ROWS, COLS = len(ROW_LEVELS) + 1, len(COLUMN_LEVELS) + 1  # the last row/column: margins
CELLS = ROWS * COLS
ALL = "all"
RATE_MEASURES = ("procedures", "with_complications")  # what the complication rate needs


@dataclass(frozen=True)
class RoboticsParams:
    table: str = SURGICAL_PROCEDURES.name  # the dataset charged on the node's odometer
    # Which of MEASURES (procedures always). `failed` is rare: it gets its own pattern
    # (k failed and k not failed besides the rate's rules), which hides more cells.
    measures: tuple[str, ...] = RATE_MEASURES
    max_per_patient: int = 0  # count each patient's first m procedures; 0: all (exact only)
    # The hub's threshold on the combined table; each node suppresses its own at its
    # policy's min_k (a pattern that moved with the request could be combined with another).
    k: int = DEFAULT_K
    noise_multiplier: float = 0.0  # 0: exact masked sums; else DP (sigma / sensitivity)


def check(params: RoboticsParams) -> None:
    """Refuse parameters a node must not answer (raised inside the node: RefusedError)."""
    if params.table != SURGICAL_PROCEDURES.name:
        raise RefusedError(f"robotics_cells reads {SURGICAL_PROCEDURES.name}, not {params.table}")
    if "procedures" not in params.measures or not set(params.measures) <= set(MEASURES) or len(
        set(params.measures)
    ) != len(params.measures):
        raise RefusedError(f"measures must be distinct names among {', '.join(MEASURES)}, "
                           f"including procedures")
    if params.max_per_patient < 0:
        raise RefusedError("max_per_patient must be >= 0 (0: every procedure)")
    if params.noise_multiplier > 0 and params.max_per_patient < 1:
        raise RefusedError("a DP release needs a per-patient cap (max_per_patient >= 1): "
                           "without it one patient's contribution is unbounded")


def ordered(measures: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(m for m in MEASURES if m in measures)


def extend(cells: np.ndarray) -> np.ndarray:
    """models x categories -> (models + 1) x (categories + 1) with the margins."""
    out = np.zeros((ROWS, COLS), dtype=cells.dtype)
    out[:-1, :-1] = cells
    out[:-1, -1] = cells.sum(axis=1)
    out[-1, :-1] = cells.sum(axis=0)
    out[-1, -1] = cells.sum()
    return out


def lines() -> list[list[tuple[int, int]]]:
    """Each row and each column of the extended table: interior cells, then the margin."""
    rows = [[(i, j) for j in range(COLS)] for i in range(ROWS)]
    cols = [[(i, j) for i in range(ROWS)] for j in range(COLS)]
    return rows + cols


def determined(hidden: np.ndarray) -> list[tuple[int, int]]:
    """Suppressed cells a reader can compute exactly from the published cells and the
    margin equations: those whose unit vector lies in the equations' row space."""
    unknown = [tuple(c) for c in np.argwhere(hidden)]
    if not unknown:
        return []
    index = {c: n for n, c in enumerate(unknown)}
    equations = []
    for line in lines():
        row = np.zeros(len(unknown))
        for position, cell in enumerate(line):
            if cell in index:
                row[index[cell]] = -1.0 if position == len(line) - 1 else 1.0
        if row.any():
            equations.append(row)
    if not equations:
        return []
    a = np.array(equations)
    rank = np.linalg.matrix_rank(a)
    found = []
    for cell, n in index.items():
        unit = np.zeros(len(unknown))
        unit[n] = 1.0
        if np.linalg.matrix_rank(np.vstack([a, unit])) == rank:
            found.append((int(cell[0]), int(cell[1])))
    return found


def primary(counts: dict[str, np.ndarray], k: int) -> np.ndarray:
    n = counts["procedures"]
    hidden: np.ndarray = n < k
    for measure in ("with_complications", "failed"):
        if measure in counts:
            hidden |= (counts[measure] < k) | (n - counts[measure] < k)
    # An empty cell (no procedures: e.g. a knee robot in cardiac surgery) describes no
    # patient; publishing it as 0 keeps the table readable.
    return hidden & (n > 0)


def suppress(counts: dict[str, np.ndarray], k: int, hidden: np.ndarray | None = None
             ) -> np.ndarray:
    """The suppressed cells of an extended table (see the module docstring)."""
    hidden = primary(counts, k) if hidden is None else hidden | primary(counts, k)
    n = counts["procedures"]
    measures = [*counts.values()]
    if "with_complications" in counts:
        measures.append(n - counts["with_complications"])
    if "failed" in counts:
        measures.append(n - counts["failed"])
    while True:
        # (a suppressed cell to protect, the lines in which to add a partner)
        need = [(c, [line for line in lines() if c in line]) for c in determined(hidden)]
        for line in lines():
            inside = [c for c in line if hidden[c]]
            if inside and not hidden[line[-1]] and any(
                sum(int(v[c]) for c in inside) < k for v in measures
            ):
                need.append((inside[0], [line]))
        if not need:
            return hidden
        _, where = need[0]
        # Suppress the smallest published cell in such a line (interior cells first); never
        # an empty one: a reader may know it is empty (what the fleet's models can do). If
        # those lines have none left, look one step further: the lines of the suppressed
        # cells in them (e.g. a model used in one category: its cell equals its margin).
        candidates: list[tuple[int, int]] = []
        while not candidates:
            candidates = [c for line in where for c in line if not hidden[c] and n[c] > 0]
            wider = [line for line in lines()
                     if any(hidden[c] and c in line for w in where for c in w)]
            if not candidates and len(wider) == len(where):
                hidden[:] = True  # nothing left to pair with: suppress the table
                return hidden
            where = wider
        hidden[min(candidates, key=lambda c: (c[0] == ROWS - 1 or c[1] == COLS - 1, n[c]))] = True


def patterns(counts: dict[str, np.ndarray], k: int,
             start: dict[str, np.ndarray] | None = None, *, secondary: bool = True
             ) -> dict[str, np.ndarray]:
    """The suppressed cells of each measure. procedures and with_complications share one
    pattern (the rate needs both), always computed from both, whatever was asked, so the
    pattern does not depend on the request; failed has its own (its rare events add k failed
    and k not failed), which contains the first."""
    none = np.zeros((ROWS, COLS), dtype=bool)
    begin = start or {}

    def rule(table: dict[str, np.ndarray], hidden: np.ndarray) -> np.ndarray:
        return suppress(table, k, hidden) if secondary else hidden | primary(table, k)

    rate = {m: counts[m] for m in RATE_MEASURES if m in counts}
    first = rule(rate, begin.get("procedures", none).copy())
    out = {m: first for m in rate}
    if "failed" in counts:
        out["failed"] = rule({"procedures": counts["procedures"], "failed": counts["failed"]},
                             first | begin.get("failed", none))
    return out


class RoboticsCells:
    """Per extended cell: the requested measures and a pass indicator (1 if the node did
    not suppress it). Computed in the node's warehouse (`compute_in`, a push-down)."""

    name: ClassVar[str] = "robotics_cells"
    params_type: ClassVar[type[Any]] = RoboticsParams
    release_class: ClassVar[ReleaseClass] = "masked_sums"
    # The release log's question is "robotics cells of this node", whatever the cap or the
    # measures: a cap above every patient's count, or a subset of the measures, gives the
    # same sums, which must not be answered over another node set either.
    query_ignores: ClassVar[tuple[str, ...]] = ("measures", "max_per_patient")

    def columns(self, params: RoboticsParams) -> tuple[str, ...]:
        return ()  # computed by SQL in the warehouse: no rows are loaded

    def dimension(self, params: RoboticsParams) -> int:
        return 2 * len(set(params.measures)) * CELLS  # values, then pass indicators

    def model_size(self, params: RoboticsParams) -> int:
        return 0

    def sensitivity(self, params: RoboticsParams) -> float:
        # One patient adds at most m procedures; each adds <= 1 to an interior cell, its row
        # and column margins and the grand total, in every measure; worst case all m land in
        # one cell: 4 cells per measure move by m. The pass indicator is constant under DP.
        m = max(params.max_per_patient, 1)
        return m * math.sqrt(4 * len(set(params.measures)))

    def compute(self, data: Any, params: RoboticsParams, model: np.ndarray,
                policy: NodePolicy) -> np.ndarray:
        raise RefusedError("robotics_cells is computed in the node's warehouse")

    # Push-down (workloads.federation.analysis_glm.PushDown): the worker hands the node's
    # open warehouse instead of loading rows.
    def for_catalogue(self, tables: Any) -> RoboticsCells:
        return self  # reads the robotics domain's declared view, the same on every node

    def compute_in(self, warehouse: Warehouse, params: RoboticsParams, model: np.ndarray,
                   policy: NodePolicy) -> np.ndarray:
        check(params)
        measures = ordered(params.measures)
        cells = node_cell_counts(warehouse, params.max_per_patient or None)
        counts = {m: extend(cells.counts[m]) for m in MEASURES}
        passes = {m: np.ones((ROWS, COLS)) for m in measures}
        if params.noise_multiplier <= 0:
            # The node's own floor, not the hub's k: a pattern that moved with the request
            # would let two answers to the same question be combined.
            hidden = patterns(counts, policy.min_k)
            for m in measures:
                counts[m] = np.where(hidden[m], 0, counts[m])
                passes[m][hidden[m]] = 0.0
        return np.concatenate([*(counts[m].ravel().astype(float) for m in measures),
                               *(passes[m].ravel() for m in measures)])


@dataclass(frozen=True)
class RoboticsTable:
    """The hub's published table: rows ROW_LEVELS + "all", columns COLUMN_LEVELS + "all"."""

    measures: tuple[str, ...]
    counts: dict[str, list[list[float | None]]]  # None: suppressed
    k: int
    nodes: tuple[str, ...]
    dp: bool
    max_per_patient: int

    def rate(self, i: int, j: int) -> float | None:
        if "with_complications" not in self.counts:
            return None
        n, c = self.counts["procedures"][i][j], self.counts["with_complications"][i][j]
        if n is None or c is None or n <= 0:
            return None
        return min(max(c / n, 0.0), 1.0)

    def to_json(self) -> dict[str, Any]:
        rows, cols = [*ROW_LEVELS, ALL], [*COLUMN_LEVELS, ALL]
        return {
            "statistic": "complication rate by robot model x procedure category",
            "nodes": list(self.nodes), "k": self.k, "dp": self.dp,
            "max_per_patient": self.max_per_patient or None,
            "rows": rows, "columns": cols,
            "cells": [
                {"robot_model": rows[i], "procedure_category": cols[j],
                 "suppressed": self.counts["procedures"][i][j] is None,
                 **{m: self.counts[m][i][j] for m in self.measures},
                 "complication_rate": self.rate(i, j)}
                for i in range(ROWS) for j in range(COLS)
            ],
        }

    def text(self) -> str:
        cols = [*COLUMN_LEVELS, ALL]
        width = max(12, *(len(c) + 1 for c in cols))
        lines_ = [
            f"Federated complication rate by robot model x procedure category (nodes: "
            f"{', '.join(self.nodes)}; {'DP-noised counts' if self.dp else 'exact counts'}; "
            f"'*' suppressed: fewer than {self.k} procedures, complicated or uncomplicated, "
            f"or derivable from the margins)",
            f"{'model':<24}" + "".join(f"{c:>{width}}" for c in cols),
        ]
        for i, model in enumerate([*ROW_LEVELS, ALL]):
            cells = []
            for j in range(COLS):
                rate, n = self.rate(i, j), self.counts["procedures"][i][j]
                text = "*" if n is None else (
                    f"{rate:.1%} of {n:.0f}" if rate is not None else f"n={n:.0f}")
                cells.append(f"{text:>{width}}")
            lines_.append(f"{model:<24}" + "".join(cells))
        return "\n".join(lines_)


def combine(total: np.ndarray, params: RoboticsParams, participants: tuple[str, ...],
            dp: bool) -> RoboticsTable:
    """The hub's table from the sum of the nodes' releases."""
    measures = ordered(params.measures)
    parts = total.reshape(2 * len(measures), ROWS, COLS)
    counts = {m: np.rint(parts[i]).astype(np.int64) for i, m in enumerate(measures)}
    if dp:
        # Every noisy cell is already DP; a cell derived from noisy margins is only another
        # noisy value: primary suppression only, for readability (no secondary needed).
        counts = {m: np.maximum(v, 0) for m, v in counts.items()}
        hidden = patterns(counts, params.k, secondary=False)
    else:
        # A cell is shown only if every node passed it (each node applied all its rules,
        # also those of measures not asked for: its pass flags say so).
        failing = {m: np.rint(parts[len(measures) + i]) != len(participants)
                   for i, m in enumerate(measures)}
        hidden = patterns(counts, params.k, failing)
    published = {m: [[None if hidden[m][i, j] else float(v[i, j]) for j in range(COLS)]
                     for i in range(ROWS)] for m, v in counts.items()}
    return RoboticsTable(measures, published, params.k, participants, dp, params.max_per_patient)


def run(coordinator: Any, *, max_per_patient: int = 0,
        measures: tuple[str, ...] = RATE_MEASURES) -> RoboticsTable:
    """One robotics_cells aggregation on a coordinator (its run's k and DP request)."""
    dp = coordinator.config.dp
    params = RoboticsParams(measures=measures, max_per_patient=max_per_patient,
                            k=coordinator.config.k,
                            noise_multiplier=dp.noise_multiplier if dp else 0.0)
    total, survivors = coordinator.aggregate(RoboticsCells(), params)
    return combine(total, params, tuple(survivors), dp is not None)
