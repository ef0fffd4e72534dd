"""What a node computes on its own rows. Everything returned here is an aggregate whose
size depends on the model's dimension, never on the number of rows."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.local_node import LocalNode

FEATURES = ("age", "bmi", "variant_brca1", "variant_tp53", "variant_apoe4")
OUTCOME = "diagnosis_cancer"
COEFFICIENT_NAMES = ("intercept", *FEATURES)
# Public affine scaling for conditioning (from the table's documented ranges, not from the
# data, so it costs no round and releases nothing): x_scaled = (x - centre) / scale.
CENTRE = np.array([52.5, 27.0, 0.0, 0.0, 0.0])
SCALE = np.array([16.0, 5.0, 1.0, 1.0, 1.0])
ALLELE_LEVELS = (0, 1, 2)
ALLELE_COLUMNS = FEATURES[2:]


@dataclass(frozen=True)
class NodeData:
    """A node's rows in memory, inside the node only."""

    x: np.ndarray  # raw features, n x len(FEATURES)
    y: np.ndarray  # 0/1 outcome

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @cached_property
    def scaled_design(self) -> np.ndarray:
        """Intercept plus publicly scaled features (computed once per run)."""
        return np.column_stack([np.ones(self.n), (self.x - CENTRE) / SCALE])

    def design(self) -> np.ndarray:
        return self.scaled_design


def load(node: LocalNode) -> NodeData:
    """Read the node's own patient table from its encrypted warehouse."""
    warehouse = node.open_warehouse(create=False)
    try:
        table = warehouse.query(
            f"SELECT {', '.join(FEATURES)}, {OUTCOME} "
            f"FROM {warehouse.table_ref(PATIENT_GENOMIC_DATA)}"
        )
    finally:
        warehouse.close()
    if table.num_rows == 0:
        raise UserError(
            f"node {node.name!r}: {PATIENT_GENOMIC_DATA.name} is empty in {node.warehouse_path}; "
            f"fix: load data first (python -m workloads generate --node {node.name})"
        )
    x = np.column_stack([table.column(c).to_numpy().astype(np.float64) for c in FEATURES])
    y = table.column(OUTCOME).to_numpy().astype(np.float64)
    if not np.all(np.isin(y, (0.0, 1.0))):
        raise UserError(f"node {node.name!r}: {OUTCOME} holds values other than 0/1")
    return NodeData(x=x, y=y)


# --- descriptive statistics -------------------------------------------------------------


def stats_cells() -> list[tuple[str, int | None]]:
    """The rows of the statistics table: all patients, then each allele-count level."""
    cells: list[tuple[str, int | None]] = [("all", None)]
    cells += [(column, level) for column in ALLELE_COLUMNS for level in ALLELE_LEVELS]
    return cells


STATS_FIELDS = ("n", "cases", "sum_age", "sum_bmi")


# Public bounds for differential privacy: age and BMI are clamped into them and summed
# as fractions of the range, so one patient adds at most 1 to each field of a cell.
AGE_RANGE = (25.0, 80.0)
BMI_RANGE = (10.0, 60.0)
CELLS_PER_PATIENT = 1 + len(ALLELE_COLUMNS)  # "all" plus one level per allele column


def stats_vector(data: NodeData, *, bounded: bool = False) -> np.ndarray:
    """Per cell: n, cancer cases, sum of age, sum of BMI (flattened). bounded: the sums
    are of age and BMI clamped to their public ranges and scaled to [0, 1]."""
    age, bmi = data.x[:, 0], data.x[:, 1]
    if bounded:
        age = _unit(age, AGE_RANGE)
        bmi = _unit(bmi, BMI_RANGE)
    out = []
    for column, level in stats_cells():
        if column == "all":
            rows = np.ones(data.n, dtype=bool)
        else:
            rows = data.x[:, FEATURES.index(column)] == level
        out += [rows.sum(), data.y[rows].sum(), age[rows].sum(), bmi[rows].sum()]
    return np.asarray(out, dtype=np.float64)


def _unit(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    low, high = bounds
    scaled: np.ndarray = (np.clip(values, low, high) - low) / (high - low)
    return scaled


def cell_summary(cell: np.ndarray, *, bounded: bool = False) -> tuple[float, ...]:
    """(n, cases, cancer rate, mean age, mean BMI) of one cell's (n, cases, sums)."""
    n, cases, sum_age, sum_bmi = (float(v) for v in cell)
    mean_age, mean_bmi = sum_age / n, sum_bmi / n
    if bounded:
        mean_age = AGE_RANGE[0] + (AGE_RANGE[1] - AGE_RANGE[0]) * mean_age
        mean_bmi = BMI_RANGE[0] + (BMI_RANGE[1] - BMI_RANGE[0]) * mean_bmi
    return (n, cases, min(max(cases / n, 0.0), 1.0), mean_age, mean_bmi)


# --- logistic regression ----------------------------------------------------------------


def upper(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.triu_indices(matrix.shape[0])]


def from_upper(values: np.ndarray, dim: int) -> np.ndarray:
    matrix = np.zeros((dim, dim))
    matrix[np.triu_indices(dim)] = values
    return matrix + np.triu(matrix, 1).T


def newton_terms(
    design: np.ndarray, y: np.ndarray, beta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Gradient and Hessian of the log-likelihood's negative, and the log-likelihood."""
    eta = design @ beta
    p = 1.0 / (1.0 + np.exp(-eta))
    gradient = design.T @ (y - p)
    hessian = (design * (p * (1.0 - p))[:, None]).T @ design
    loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    return gradient, hessian, loglik


def newton_vector(data: NodeData, beta: np.ndarray, clip: float | None = None) -> np.ndarray:
    """gradient (p), upper Hessian (p(p+1)/2), log-likelihood (1): the node's upload."""
    design = data.design()
    if clip is not None:
        # Bound each patient's contribution (for differential privacy): scale rows whose
        # norm exceeds the clip norm down to it.
        norms = np.linalg.norm(design, axis=1)
        design = design * np.minimum(1.0, clip / np.maximum(norms, 1e-12))[:, None]
    gradient, hessian, loglik = newton_terms(design, data.y, beta)
    return np.concatenate([gradient, upper(hessian), [loglik]])


def auc(data: NodeData, beta: np.ndarray) -> float:
    """Area under the ROC curve of the model on the node's rows (Mann-Whitney U)."""
    score = data.design() @ beta
    positives = data.y == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    # average ranks for ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
