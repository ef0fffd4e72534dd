"""Federation algorithms: what a node computes, how the hub combines it.

The coordinator (coordinator.py) runs rounds, keys, deadlines and dropouts; it knows no
statistics. An algorithm (like a Flower Strategy) says, for its typed parameters:
- which table and columns a node reads (`columns`),
- what a node computes from its rows and the public model (`compute`), refusing with a
  reason when the answer would reveal individual rows,
- the released dimension and its L2 sensitivity to adding or removing one row
  (`dimension`, `sensitivity`), from the columns' public bounds,
- how the release is protected: a masked sum (`masked_sums`) or a per-node value
  (`metrics`), which the node guard judges,
- what identifies the question for the release log (`query`: not the noise, not k).

Parameters are frozen dataclasses; on the wire each field is one JSON value (`to_wire`,
`from_wire` check every field's type). Algorithms are looked up in REGISTRY by name, so a
new one (e.g. a GLM of another family over another declared table) is a class, not an if.
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.federation import data as node_data
from workloads.federation.analysis_glm import AnalysisGLM
from workloads.federation.analysis_stats import AnalysisStats
from workloads.federation.defaults import DEFAULT_K
from workloads.federation.guard import NodePolicy, RefusedError, ReleaseClass, query_digest
from workloads.federation.table_counts import TableCounts
from workloads.robotics.federated import RoboticsCells
from workloads.synthetic.federated import SynthMarginals, SynthMixture, SynthProducts

P = TypeVar("P")
PATIENTS = PATIENT_GENOMIC_DATA.name
OUTCOME = "diagnosis_cancer"
FEATURES = ("age", "bmi", "variant_brca1", "variant_tp53", "variant_apoe4")
MAX_ABS_COEFFICIENT = 1e3  # scaled coefficients beyond this are not a model, they are a probe


# --- typed parameters on the wire -----------------------------------------------------------


def to_wire(params: object) -> dict[str, str]:
    return {k: json.dumps(v) for k, v in asdict(params).items()}  # type: ignore[call-overload]


def from_wire(kind: type[P], wire: dict[str, str]) -> P:
    """Rebuild typed parameters; raises ValueError naming a missing, extra or mistyped field."""
    hints = typing.get_type_hints(kind)
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    if extra := set(wire) - names:
        raise ValueError(f"unknown parameters {sorted(extra)}")
    values: dict[str, Any] = {}
    for name in names:
        if name not in wire:
            raise ValueError(f"parameter {name!r} is missing")
        try:
            value = json.loads(wire[name])
        except ValueError:
            raise ValueError(f"parameter {name!r} is not JSON") from None
        hint = hints[name]
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if typing.get_origin(hint) is tuple:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"parameter {name!r} must be a list of names")
            value = tuple(value)
        elif not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ValueError(f"parameter {name!r} must be {hint.__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"parameter {name!r} must be finite")
        values[name] = value
    return kind(**values)


# --- the interface --------------------------------------------------------------------------


class Algorithm(Protocol):
    name: ClassVar[str]
    params_type: ClassVar[type[Any]]
    release_class: ClassVar[ReleaseClass]

    def columns(self, params: Any) -> tuple[str, ...]: ...

    def dimension(self, params: Any) -> int: ...

    def sensitivity(self, params: Any) -> float: ...

    def model_size(self, params: Any) -> int:
        """Length of the public model the hub sends with a round (0: none)."""
        ...

    def compute(
        self, data: node_data.NodeData, params: Any, model: np.ndarray, policy: NodePolicy
    ) -> np.ndarray: ...


def query(algorithm: Algorithm, params: Any, model: tuple[float, ...]) -> str:
    """The release log's identity of a question: algorithm, what it reads, the model."""
    ignored = {"k", "noise_multiplier"}  # do not change the underlying sums
    ignored |= set(getattr(algorithm, "query_ignores", ()))  # same sums under other names
    wire = {k: v for k, v in to_wire(params).items() if k not in ignored}
    return query_digest(algorithm.name, wire, model)


def noise_of(params: Any) -> float | None:
    multiplier = float(getattr(params, "noise_multiplier", 0.0))
    return multiplier if multiplier > 0 else None


# --- descriptive statistics -----------------------------------------------------------------


@dataclass(frozen=True)
class StatsParams:
    table: str = PATIENTS
    outcome: str = OUTCOME
    means: tuple[str, ...] = ("age", "bmi")  # averaged per cell
    groups: tuple[str, ...] = ("variant_brca1", "variant_tp53", "variant_apoe4")  # by level
    k: int = DEFAULT_K  # small-cell threshold (a node applies at least its own policy's min_k)
    noise_multiplier: float = 0.0  # 0: exact masked sums; else DP (sigma / sensitivity)


class Stats:
    """Per cell (all patients, each level of each group column): patients, cases, means.

    A node sends, masked, per cell: n, cases, the sum of each mean column scaled to [0, 1]
    by its public bounds, and 1 if the cell passes its own threshold. Exact releases: a cell
    that fails (fewer than k patients, cases or non-cases) is zeroed, and so is the
    smallest other level of its group if it is the only failing one; the hub publishes a
    combined cell only if every participant passed it (the indicators sum to the count of
    participants). DP releases: nothing is zeroed, the hub suppresses on noisy counts.
    """

    name: ClassVar[str] = "stats"
    params_type: ClassVar[type[Any]] = StatsParams
    release_class: ClassVar[ReleaseClass] = "masked_sums"

    def cells(self, params: StatsParams) -> list[tuple[str, float | None]]:
        out: list[tuple[str, float | None]] = [("all", None)]
        for group in params.groups:
            levels = node_data.column(params.table, group).levels
            if not levels:
                raise UserError(f"{params.table}.{group} has no public levels to group by")
            out += [(group, float(level)) for level in levels]
        return out

    def fields(self, params: StatsParams) -> int:
        return 3 + len(params.means)  # n, cases, sums..., passes

    def columns(self, params: StatsParams) -> tuple[str, ...]:
        return (params.outcome, *params.means, *params.groups)

    def dimension(self, params: StatsParams) -> int:
        return len(self.cells(params)) * self.fields(params)

    def model_size(self, params: StatsParams) -> int:
        return 0

    def sensitivity(self, params: StatsParams) -> float:
        # One row is in "all" and one level per group; it adds at most 1 to n, to cases and
        # to each scaled sum of those cells (the pass indicator is constant under DP).
        return math.sqrt((1 + len(params.groups)) * (2 + len(params.means)))

    def compute(
        self, data: node_data.NodeData, params: StatsParams, model: np.ndarray, policy: NodePolicy
    ) -> np.ndarray:
        k = max(params.k, policy.min_k)
        y = data.get(params.outcome)
        scaled = []
        for name in params.means:
            low, high = node_data.bounds(params.table, name)
            scaled.append((data.get(name) - low) / (high - low))
        rows = []
        for group, level in self.cells(params):
            inside = np.ones(data.n, dtype=bool) if level is None else data.get(group) == level
            n, cases = float(inside.sum()), float(y[inside].sum())
            rows.append([n, cases, *[float(s[inside].sum()) for s in scaled], 1.0])
        cells = np.asarray(rows)
        if noise_of(params) is None:
            hidden = self.suppressed(cells[:, 0], cells[:, 1], k, params)
            cells[hidden] = 0.0
        return cells.reshape(-1)

    def suppressed(
        self, n: np.ndarray, cases: np.ndarray, k: int, params: StatsParams
    ) -> np.ndarray:
        """Primary (below k) plus the within-group complement rule."""
        hidden: np.ndarray = (n < k) | (cases < k) | (n - cases < k)
        if hidden[0]:
            hidden[:] = True
            return hidden
        labels = self.cells(params)
        for group in params.groups:
            rows = [i for i, (g, _) in enumerate(labels) if g == group]
            failing = [i for i in rows if hidden[i]]
            if len(failing) == 1:
                hidden[min((i for i in rows if not hidden[i]), key=lambda i: n[i])] = True
        return hidden

    def combine(
        self, total: np.ndarray, params: StatsParams, participants: int, dp: bool
    ) -> list[tuple[str, tuple[float, ...] | None]]:
        """Combined (n, cases, rate, means...) per cell; None where suppressed."""
        width = self.fields(params)
        cells = total.reshape(-1, width)
        n, cases = cells[:, 0], cells[:, 1]
        if dp:
            hidden = self.suppressed(n, cases, params.k, params)
        else:
            n, cases = np.rint(n), np.rint(cases)
            everyone = np.rint(cells[:, -1]) == participants
            hidden = ~everyone | self.suppressed(n, cases, params.k, params)
        out: list[tuple[str, tuple[float, ...] | None]] = []
        for i, (group, level) in enumerate(self.cells(params)):
            label = "all" if level is None else f"{group}={level:g}"
            if hidden[i] or n[i] <= 0:
                out.append((label, None))
                continue
            means = []
            for j, name in enumerate(params.means):
                low, high = node_data.bounds(params.table, name)
                means.append(low + (high - low) * min(max(cells[i, 2 + j] / n[i], 0.0), 1.0))
            rate = min(max(cases[i] / n[i], 0.0), 1.0)
            out.append((label, (float(n[i]), float(cases[i]), rate, *means)))
        return out


# --- logistic regression (a binomial GLM), Newton-Raphson ------------------------------------


@dataclass(frozen=True)
class GLMParams:
    table: str = PATIENTS
    outcome: str = OUTCOME
    covariates: tuple[str, ...] = FEATURES
    family: str = "binomial"
    noise_multiplier: float = 0.0


class GLM:
    """Newton terms of a GLM (binomial, logit link) at the hub's current coefficients.

    The design is an intercept plus covariates scaled into [-1, 1] by their public bounds,
    so each row's design vector has L2 norm at most sqrt(1 + p): no clipping is needed. One
    row moves the gradient by at most sqrt(1 + p) and the Hessian (Frobenius) by at most
    (1 + p) / 4; the log-likelihood is released only when exact.
    """

    name: ClassVar[str] = "glm"
    params_type: ClassVar[type[Any]] = GLMParams
    release_class: ClassVar[ReleaseClass] = "masked_sums"

    def columns(self, params: GLMParams) -> tuple[str, ...]:
        if params.family != "binomial":
            raise UserError(f"GLM family {params.family!r} is not implemented; fix: binomial")
        return (params.outcome, *params.covariates)

    def size(self, params: GLMParams) -> int:
        return 1 + len(params.covariates)

    def model_size(self, params: GLMParams) -> int:
        return self.size(params)

    def dimension(self, params: GLMParams) -> int:
        p = self.size(params)
        return p + p * (p + 1) // 2 + 1

    def sensitivity(self, params: GLMParams) -> float:
        norm2 = float(self.size(params))
        return math.sqrt(norm2 + (norm2 / 4.0) ** 2)

    def design(self, data: node_data.NodeData, params: GLMParams) -> np.ndarray:
        """Intercept plus the publicly scaled covariates (computed once per loaded data)."""
        key = ("glm-design", params.table, params.covariates)
        if key not in data.derived:
            centre, scale = node_data.centre_scale(params.table, params.covariates)
            x = np.column_stack([data.get(c) for c in params.covariates])
            data.derived[key] = np.column_stack([np.ones(data.n), (x - centre) / scale])
        return data.derived[key]

    def check_model(self, model: np.ndarray, params: GLMParams) -> None:
        if model.shape != (self.size(params),):
            raise RefusedError(f"expected {self.size(params)} coefficients, got {model.size}")
        if not np.all(np.isfinite(model)) or np.max(np.abs(model)) > MAX_ABS_COEFFICIENT:
            raise RefusedError(f"coefficients beyond +-{MAX_ABS_COEFFICIENT:g} (scaled)")

    def compute(
        self, data: node_data.NodeData, params: GLMParams, model: np.ndarray, policy: NodePolicy
    ) -> np.ndarray:
        self.check_model(model, params)
        design = self.design(data, params)
        y = data.get(params.outcome)
        eta = design @ model
        worst = float(np.max(np.abs(eta)))
        if worst > policy.max_abs_score:
            raise RefusedError(
                f"the model pushes a row's score to {worst:.1f} (policy limit "
                f"{policy.max_abs_score:g}): its terms would single out rows; the fit is "
                f"separating (diverging) or the model is a probe"
            )
        p = 1.0 / (1.0 + np.exp(-eta))
        weight = p * (1.0 - p)
        effective = int(np.sum(weight >= 1e-4))
        if effective < policy.min_rows:
            raise RefusedError(
                f"only {effective} rows have non-saturated scores (policy minimum "
                f"{policy.min_rows}): the terms would reveal individual rows"
            )
        gradient = design.T @ (y - p)
        hessian = (design * weight[:, None]).T @ design
        loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
        if noise_of(params) is not None:
            loglik = 0.0  # not released under DP
        return np.concatenate([gradient, upper(hessian), [loglik]])

    def split(self, total: np.ndarray, params: GLMParams) -> tuple[np.ndarray, np.ndarray, float]:
        p = self.size(params)
        return total[:p], from_upper(total[p:-1], p), float(total[-1])

    def to_original_scale(self, params: GLMParams) -> np.ndarray:
        """beta_original = A @ beta_scaled for x_scaled = (x - centre) / scale."""
        centre, scale = node_data.centre_scale(params.table, params.covariates)
        p = self.size(params)
        transform = np.zeros((p, p))
        transform[0, 0] = 1.0
        transform[0, 1:] = -centre / scale
        transform[1:, 1:] = np.diag(1.0 / scale)
        return transform


def upper(matrix: np.ndarray) -> np.ndarray:
    result: np.ndarray = matrix[np.triu_indices(matrix.shape[0])]
    return result


def from_upper(values: np.ndarray, dim: int) -> np.ndarray:
    matrix = np.zeros((dim, dim))
    matrix[np.triu_indices(dim)] = values
    return matrix + np.triu(matrix, 1).T


# --- evaluation: AUC of a run's final model -------------------------------------------------


@dataclass(frozen=True)
class AUCParams:
    table: str = PATIENTS
    outcome: str = OUTCOME
    covariates: tuple[str, ...] = FEATURES
    family: str = "binomial"
    noise_multiplier: float = 0.0  # 0: exact if the node's policy allows exact metrics


class AUC:
    """Area under the ROC curve of the final model of a run, on the node's own rows.

    A per-node release (class `metrics`): a node answers it once per run, only for the
    model of the last GLM round it answered in that run (never for coefficients of the
    hub's choosing), noised unless its policy allows exact metrics. Adding or removing one
    row moves the AUC by at most 1 / (rows of the smaller class); the node refuses when
    that class has fewer than its policy's metric_min_class rows, so the sensitivity is
    1 / metric_min_class.
    """

    name: ClassVar[str] = "auc"
    params_type: ClassVar[type[Any]] = AUCParams
    release_class: ClassVar[ReleaseClass] = "metrics"

    def columns(self, params: AUCParams) -> tuple[str, ...]:
        return (params.outcome, *params.covariates)

    def model_size(self, params: AUCParams) -> int:
        return 1 + len(params.covariates)

    def dimension(self, params: AUCParams) -> int:
        return 1

    def sensitivity_for(self, policy: NodePolicy) -> float:
        return 1.0 / policy.metric_min_class

    def sensitivity(self, params: AUCParams) -> float:
        return 1.0 / NodePolicy().metric_min_class

    def compute(
        self, data: node_data.NodeData, params: AUCParams, model: np.ndarray, policy: NodePolicy
    ) -> np.ndarray:
        glm_params = GLMParams(params.table, params.outcome, params.covariates, params.family)
        GLM().check_model(model, glm_params)
        score = GLM().design(data, glm_params) @ model
        positives = data.get(params.outcome) == 1
        n_pos, n_neg = int(positives.sum()), int((~positives).sum())
        if min(n_pos, n_neg) < policy.metric_min_class:
            raise RefusedError(
                f"AUC needs at least {policy.metric_min_class} rows of each outcome class "
                f"(this node's policy)"
            )
        return np.array([auc(score, positives)])


def auc(score: np.ndarray, positives: np.ndarray) -> float:
    """Mann-Whitney U with average ranks for ties."""
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    ranks = np.empty(len(score))
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


REGISTRY: dict[str, Algorithm] = {a.name: a for a in (Stats(), GLM(), AUC())}
REGISTRY[AnalysisGLM.name] = AnalysisGLM()  # a researcher's spec, pushed down (issue #11)
REGISTRY[AnalysisStats.name] = AnalysisStats()
REGISTRY[TableCounts.name] = TableCounts()  # `federate nodes`: DP row counts per table
REGISTRY[RoboticsCells.name] = RoboticsCells()  # robotics domain: workloads/robotics/federated.py
REGISTRY[SynthMarginals.name] = SynthMarginals()  # synthesis: workloads/synthetic/federated.py
REGISTRY[SynthProducts.name] = SynthProducts()
REGISTRY[SynthMixture.name] = SynthMixture()


def lookup(name: str) -> Algorithm:
    if name not in REGISTRY:
        raise RefusedError(f"unknown algorithm {name!r} (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name]
