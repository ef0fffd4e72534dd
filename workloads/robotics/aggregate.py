"""The node-side computation of federated statistics over robotics.

A node reports, for every (robot model, procedure category) cell, the performed
procedures, those with at least one complication and the failed ones, computed by SQL in
its own warehouse through the domain's view `complications_by_model_category`. The cells
come from the columns' declared levels (not from the data), so every node reports the same
cells in the same order, including empty ones: the hub can add the nodes' vectors (masked,
with noise) cell by cell, and a count reveals nothing by being absent. Adding the nodes'
aggregates equals computing the view over the pooled rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workloads.contracts.tables.robotics import (
    COMPLICATIONS_BY_MODEL_CATEGORY,
    SURGICAL_PROCEDURES,
    SURGICAL_ROBOTS,
)
from workloads.warehouse.base import Warehouse

ROW_LEVELS: tuple[str, ...] = tuple(str(v) for v in SURGICAL_ROBOTS.column("robot_model").levels)
COLUMN_LEVELS: tuple[str, ...] = tuple(
    str(v) for v in SURGICAL_PROCEDURES.column("procedure_category").levels)
MEASURES = ("procedures", "with_complications", "failed")


def sensitivity(max_per_patient: int) -> int:
    """L1 sensitivity of the whole vector to one patient when at most `max_per_patient` of
    their procedures are counted: each counted procedure adds 1 to one cell of each measure.
    Without a cap a patient's contribution is unbounded: DP needs the cap."""
    return max_per_patient * len(MEASURES)


@dataclass(frozen=True)
class CellCounts:
    """counts[measure][i, j] for robot model ROW_LEVELS[i] and category COLUMN_LEVELS[j]."""

    counts: dict[str, np.ndarray]  # int64 arrays of shape (len(ROW_LEVELS), len(COLUMN_LEVELS))

    def vector(self) -> np.ndarray:
        """Every measure's cells flattened in a fixed order: what a node contributes."""
        return np.concatenate([self.counts[m].ravel() for m in MEASURES])

    @staticmethod
    def from_vector(vector: np.ndarray) -> CellCounts:
        size = len(ROW_LEVELS) * len(COLUMN_LEVELS)
        return CellCounts({m: np.asarray(vector[i * size:(i + 1) * size], dtype=np.int64)
                           .reshape(len(ROW_LEVELS), len(COLUMN_LEVELS))
                           for i, m in enumerate(MEASURES)})

    def __add__(self, other: CellCounts) -> CellCounts:
        return CellCounts({m: self.counts[m] + other.counts[m] for m in MEASURES})

    def complication_rate(self) -> np.ndarray:
        """with_complications / procedures per cell; NaN where there were no procedures."""
        n = self.counts["procedures"].astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, self.counts["with_complications"] / n, np.nan)


def node_cell_counts(warehouse: Warehouse, max_per_patient: int | None = None) -> CellCounts:
    """This node's counts per (robot model, procedure category), by SQL in its warehouse:
    the domain's view, which the node stack declares in BigQuery and the local load
    creates in DuckDB. `max_per_patient` counts only each patient's first m performed
    procedures (what differential privacy needs: see `sensitivity`); None counts all."""
    if max_per_patient is not None and max_per_patient < 1:
        raise ValueError(f"max_per_patient must be >= 1, not {max_per_patient}")
    view = warehouse.table_ref(COMPLICATIONS_BY_MODEL_CATEGORY.name)
    cap = "" if max_per_patient is None else f" WHERE patient_rank <= {int(max_per_patient)}"
    rows = warehouse.query(f"SELECT * FROM {view}{cap}")
    counts = {m: np.zeros((len(ROW_LEVELS), len(COLUMN_LEVELS)), dtype=np.int64)
              for m in MEASURES}
    row_of = {v: i for i, v in enumerate(ROW_LEVELS)}
    col_of = {v: j for j, v in enumerate(COLUMN_LEVELS)}
    models = rows.column("robot_model").to_pylist()
    categories = rows.column("procedure_category").to_pylist()
    for m in MEASURES:
        values = rows.column(m).to_pylist()
        for model, category, value in zip(models, categories, values, strict=True):
            # A level outside the declared ones is a broken contract, not a new cell.
            counts[m][row_of[model], col_of[category]] += int(value)
    return CellCounts(counts)
