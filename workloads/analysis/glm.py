"""Generalised linear models fitted over nodes: each node runs one SQL aggregate per round
(`node_aggregate`), the hub sums them (`combine`) and takes a Newton step (`GlmFitter`).

The three families use their canonical links (logit, identity, log), so Newton's method and
Fisher scoring (IRLS) coincide: gradient X'(y - mu), information X'WX with W = mu(1 - mu),
1 or mu. Terms are scaled by public constants (spec.Term) and the result is unscaled at the
end, so the hub never needs the data to condition the problem. The transport (in-process
here, signed and masked messages in workloads/federation) only moves `Aggregate` vectors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats as scipy_stats

from workloads.analysis import sql
from workloads.analysis.spec import AnalysisSpec, Design, Family, validate
from workloads.contracts.catalogue import ANALYSABLE
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table

Kind = Literal["count", "sum"]


class FitError(UserError):
    """The model cannot be fitted as specified (separation, collinearity, divergence)."""


@dataclass(frozen=True)
class Slot:
    """What one released number is, for the guard: a count or a sum, and how much one row
    can change it (L-infinity, after clipping to the declared bounds; None: unbounded)."""

    name: str
    kind: Kind
    sensitivity: float | None


@dataclass(frozen=True)
class Aggregate:
    """One node's answer for one round: sizes depend on the terms, never on the rows."""

    n: int  # rows used by the model
    cohort_rows: int  # rows in the cohort (n plus rows with missing or undeclared values)
    deviance: float
    gradient: np.ndarray  # X'(y - mu), scaled terms
    information: np.ndarray  # X'WX, scaled terms (symmetric)
    # For the node's own guard, never in the released vector: the largest |linear
    # predictor| of a row, and the rows whose IRLS weight is at least sql.EFFECTIVE_WEIGHT.
    max_abs_eta: float = 0.0
    effective_rows: int = 0

    def to_vector(self) -> np.ndarray:
        """n, cohort_rows, deviance, gradient, upper triangle of X'WX: the masked upload."""
        upper = self.information[np.triu_indices(len(self.gradient))]
        head = [float(self.n), float(self.cohort_rows), self.deviance]
        return np.concatenate([head, self.gradient, upper])

    @staticmethod
    def from_vector(values: Sequence[float] | np.ndarray, p: int) -> Aggregate:
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (3 + p + p * (p + 1) // 2,):
            raise UserError(f"aggregate of {values.shape} values for {p} terms")
        info = np.zeros((p, p))
        info[np.triu_indices(p)] = values[3 + p:]
        info = info + np.triu(info, 1).T
        return Aggregate(round(values[0]), round(values[1]), float(values[2]),
                         values[3:3 + p].copy(), info)


def slots(design: Design, *, clipped: bool) -> list[Slot]:
    """The meaning of each entry of `Aggregate.to_vector()`, in order.

    With the covariates clipped to their bounds every scaled term lies in [-1, 1]; the
    logistic residual y - mu in [-1, 1] and weight mu(1 - mu) <= 1/4 bound what one row adds.
    Linear and Poisson residuals, and every deviance, have no bound (None): a DP guard must
    not release them without clipping of its own.
    """
    family = design.spec.family
    residual = 1.0 if family == "logistic" else None  # |y - mu| for a 0/1 outcome
    weight = {"logistic": 0.25, "linear": 1.0, "poisson": None}[family]  # max of W

    def term_bound(j: int) -> float | None:  # max |x_j| of a scaled term
        return 1.0 if clipped or design.terms[j].kind != "numeric" else None

    def product(*factors: float | None) -> float | None:
        known = [f for f in factors if f is not None]
        return math.prod(known) if len(known) == len(factors) else None

    out = [Slot("n", "count", 1.0), Slot("cohort_rows", "count", 1.0),
           Slot("deviance", "sum", None)]
    out += [Slot(f"gradient[{t.name}]", "sum", product(residual, term_bound(j)))
            for j, t in enumerate(design.terms)]
    p = len(design.terms)
    out += [Slot(f"information[{design.terms[j].name},{design.terms[k].name}]", "sum",
                 product(weight, term_bound(j), term_bound(k)))
            for j in range(p) for k in range(j, p)]
    return out


def node_aggregate(
    warehouse: Any,
    spec: AnalysisSpec,
    beta: Sequence[float] | np.ndarray,
    *,
    tables: Sequence[Table] = ANALYSABLE,
    clip: bool = False,
) -> Aggregate:
    """The node side of one round: validate the spec against this node's own catalogue,
    then run ONE aggregate query in the node's warehouse. No row reaches Python."""
    design = validate(spec, tables)
    query = sql.glm_query(design, sql.table_expression(warehouse, design.table), beta, clip=clip)
    result = warehouse.query(sql.render(query, sql.dialect_of(warehouse)))
    row = {name: result.column(name)[0].as_py() for name in result.column_names}
    p = len(design.terms)
    info = np.zeros((p, p))
    for j in range(p):
        for k in range(j, p):
            info[j, k] = info[k, j] = _float(row[f"h{j}_{k}"])
    return Aggregate(
        n=int(row["n"]),
        cohort_rows=int(row["cohort_rows"]),
        deviance=_float(row["deviance"]),
        gradient=np.array([_float(row[f"g{j}"]) for j in range(p)]),
        information=info,
        max_abs_eta=_float(row["max_abs_eta"]),
        effective_rows=int(row["effective_rows"] or 0),
    )


def _float(value: Any) -> float:
    return 0.0 if value is None else float(value)  # SUM over no rows is NULL


@dataclass(frozen=True)
class Step:
    """The summed aggregates at `beta` and the Newton step from there (scaled terms)."""

    beta: np.ndarray
    total: Aggregate
    delta: np.ndarray


def combine(aggregates: Sequence[Aggregate], beta: Sequence[float] | np.ndarray,
            names: Sequence[str] = ()) -> Step:
    """The hub side of one round: sum the nodes' aggregates and solve for the Newton step."""
    if not aggregates:
        raise FitError("no node answered; fix: check the nodes hold the table")
    beta = np.asarray(beta, dtype=np.float64)
    total = Aggregate(
        n=sum(a.n for a in aggregates),
        cohort_rows=sum(a.cohort_rows for a in aggregates),
        deviance=float(sum(a.deviance for a in aggregates)),
        gradient=np.sum([a.gradient for a in aggregates], axis=0),
        information=np.sum([a.information for a in aggregates], axis=0),
    )
    _check_information(total, names or [f"term {j}" for j in range(len(beta))])
    delta = np.linalg.solve(total.information, total.gradient)
    return Step(beta, total, delta)


def _check_information(total: Aggregate, names: Sequence[str]) -> None:
    if total.n == 0:
        raise FitError("the cohort has no usable rows on any node; fix: widen the cohort")
    info = total.information
    diag = np.diag(info)
    empty = [names[j] for j in range(len(diag)) if diag[j] <= 0]
    if empty:
        raise FitError(
            f"term(s) {', '.join(empty)} have no information (no rows at that level, or every "
            f"fitted weight is zero); fix: drop them or merge levels"
        )
    # Relative conditioning on the unit-diagonal correlation form.
    d = 1.0 / np.sqrt(diag)
    eig = np.linalg.eigvalsh(info * np.outer(d, d))
    if eig[0] < 1e-10 * eig[-1]:
        vec = np.linalg.eigh(info * np.outer(d, d))[1][:, 0]
        involved = [names[j] for j in np.argsort(-np.abs(vec))[:3] if abs(vec[j]) > 0.1]
        raise FitError(
            f"terms {', '.join(involved)} are collinear (or separate the outcome) in the "
            f"cohort; fix: drop one of them"
        )


_MU_AT_ZERO: dict[Family, float] = {"logistic": 0.5, "linear": 0.0, "poisson": 1.0}


@dataclass
class GlmFitter:
    """Newton's method with step halving over summed aggregates, independent of transport.

    `beta` is what the nodes compute at next; `observe(step)` takes the combined answer
    and returns False when the fit is done. Round 1 at beta = 0 gives the outcome's mean
    (from the intercept's gradient), which starts the intercept at link(mean).
    """

    design: Design
    beta: np.ndarray = field(init=False)
    rounds: int = 0
    converged: bool = False
    history: list[float] = field(default_factory=list)  # deviance per round
    last: Step | None = None
    _best: Step | None = None
    _halvings: int = 0

    def __post_init__(self) -> None:
        self.beta = np.zeros(len(self.design.terms))

    @property
    def names(self) -> list[str]:
        return self.design.names

    def observe(self, step: Step) -> bool:
        spec, family = self.design.spec, self.design.spec.family
        self.rounds += 1
        self.history.append(step.total.deviance)
        self.last = step
        if self.rounds == 1 and family != "linear":
            mean_y = (step.total.gradient[0] + step.total.n * _MU_AT_ZERO[family]) / step.total.n
            if family == "logistic" and not 0 < mean_y < 1:
                raise FitError(
                    f"the outcome {spec.outcome} is {'always' if mean_y >= 1 else 'never'} 1 "
                    f"in the cohort; fix: widen the cohort"
                )
        if self.rounds == 1 and family == "poisson":
            if mean_y <= 0:
                raise FitError(f"the outcome {spec.outcome} is 0 on every row; fix: widen it")
            self.beta = np.zeros_like(self.beta)
            self.beta[0] = math.log(mean_y)
            self._best = None
            return self._more()
        best = self._best
        if best is not None and step.total.deviance > best.total.deviance * (1 + 1e-12) + 1e-9:
            # The step went uphill: go back halfway towards the best point.
            self._halvings += 1
            if self._halvings > 30:
                raise FitError(self._diverged("step halving could not lower the deviance"))
            self.beta = best.beta + (step.beta - best.beta) / 2
            return self._more()
        self._halvings = 0
        self._best = step
        self.beta = step.beta + step.delta
        if not np.all(np.isfinite(self.beta)):
            raise FitError(self._diverged("the coefficients became infinite"))
        if np.max(np.abs(step.delta)) < spec.tolerance:
            self.converged = True
            self.beta = step.beta  # the estimate is where the information was computed
            return False
        return self._more()

    def _more(self) -> bool:
        if self.rounds >= self.design.spec.max_iter:
            raise FitError(self._diverged(f"no convergence after {self.rounds} rounds"))
        return True

    def _diverged(self, what: str) -> str:
        scaled = np.abs(self.beta)
        j = int(np.argmax(scaled[1:]) + 1) if len(scaled) > 1 else 0
        hint = ""
        if self.design.spec.family == "logistic" and scaled[j] > 15:
            hint = (f"; term {self.names[j]} has a coefficient of {self.beta[j]:.3g} on the "
                    f"scaled axis: the outcome looks (quasi-)completely separated by it")
        fix = ("drop or merge that term or its rare levels" if hint else
               f"raise max_iter (now {self.design.spec.max_iter}) or simplify the model")
        spec = self.design.spec
        return f"{spec.family} fit of {spec.outcome}: {what}{hint}; fix: {fix}"



# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TermResult:
    name: str
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    ratio: float | None  # odds ratio (logistic) or rate ratio (Poisson) per unit
    ratio_low: float | None
    ratio_high: float | None


@dataclass(frozen=True)
class FitResult:
    spec: AnalysisSpec
    family: Family
    terms: tuple[TermResult, ...]
    covariance: np.ndarray  # original scale
    deviance: float
    dispersion: float  # 1 for logistic and Poisson; residual variance for linear
    n: int
    rows_per_node: Mapping[str, int]  # as released
    excluded_per_node: Mapping[str, int]  # cohort rows with missing / undeclared values
    iterations: int
    converged: bool

    @property
    def coefficients(self) -> np.ndarray:
        return np.array([t.estimate for t in self.terms])

    @property
    def std_errors(self) -> np.ndarray:
        return np.array([t.std_error for t in self.terms])

    def term(self, name: str) -> TermResult:
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        ratio_name = {"logistic": "odds_ratio", "poisson": "rate_ratio"}.get(self.family)
        terms = []
        for t in self.terms:
            row: dict[str, Any] = {
                "term": t.name, "estimate": t.estimate, "std_error": t.std_error,
                "ci95": [t.ci_low, t.ci_high], "z": t.z, "p_value": t.p_value,
            }
            if ratio_name and t.name != "intercept":
                row[ratio_name] = t.ratio
                row[f"{ratio_name}_ci95"] = [t.ratio_low, t.ratio_high]
            terms.append(row)
        return {
            "spec": self.spec.to_dict(),
            "family": self.family,
            "terms": terms,
            "deviance": self.deviance,
            "dispersion": self.dispersion,
            "n": self.n,
            "rows_per_node": dict(self.rows_per_node),
            "excluded_rows_per_node": dict(self.excluded_per_node),
            "iterations": self.iterations,
            "converged": self.converged,
        }


def unscale_matrix(design: Design) -> np.ndarray:
    """A with beta_original = A beta_scaled (x_scaled = (x - centre) / scale)."""
    p = len(design.terms)
    a = np.eye(p)
    for j, term in enumerate(design.terms):
        if term.kind == "numeric":
            a[j, j] = 1.0 / term.scale
            a[0, j] = -term.centre / term.scale
    return a


def result_of(fitter: GlmFitter, rows: Mapping[str, Aggregate]) -> FitResult:
    """Coefficients, standard errors, intervals and ratios on the columns' own units."""
    design = fitter.design
    step = fitter.last
    assert step is not None and fitter.converged
    total = step.total
    p = len(design.terms)
    if design.spec.family == "linear":
        if total.n <= p:
            raise FitError(f"{total.n} rows for {p} terms; fix: widen the cohort or drop terms")
        dispersion = total.deviance / (total.n - p)
    else:
        dispersion = 1.0
    a = unscale_matrix(design)
    beta = a @ step.beta
    cov = a @ np.linalg.inv(total.information) @ a.T * dispersion
    se = np.sqrt(np.diag(cov))
    zq = float(scipy_stats.norm.ppf(0.975))
    exp_ratio = design.spec.family in ("logistic", "poisson")
    out = []
    for j, term in enumerate(design.terms):
        z = beta[j] / se[j]
        low, high = beta[j] - zq * se[j], beta[j] + zq * se[j]
        out.append(TermResult(
            term.name, float(beta[j]), float(se[j]), float(low), float(high), float(z),
            float(2 * scipy_stats.norm.sf(abs(z))),
            float(np.exp(beta[j])) if exp_ratio else None,
            float(np.exp(low)) if exp_ratio else None,
            float(np.exp(high)) if exp_ratio else None,
        ))
    return FitResult(
        spec=design.spec, family=design.spec.family, terms=tuple(out), covariance=cov,
        deviance=total.deviance, dispersion=dispersion, n=total.n,
        rows_per_node={node: agg.n for node, agg in rows.items()},
        excluded_per_node={node: agg.cohort_rows - agg.n for node, agg in rows.items()},
        iterations=fitter.rounds, converged=fitter.converged,
    )


def run_local_fit(
    nodes: Mapping[str, Any],
    spec: AnalysisSpec,
    *,
    tables: Sequence[Table] = ANALYSABLE,
    clip: bool = False,
) -> FitResult:
    """Fit over warehouses in this process (node name -> warehouse): the same node query
    and hub step the federation runs, without a transport. Validated at the hub first."""
    design = validate(spec, tables)
    fitter = GlmFitter(design)
    answers: dict[str, Aggregate] = {}
    while True:
        beta = fitter.beta.copy()
        answers = {
            name: node_aggregate(warehouse, spec, beta, tables=tables, clip=clip)
            for name, warehouse in nodes.items()
        }
        if not fitter.observe(combine(list(answers.values()), beta, design.names)):
            break
    return result_of(fitter, answers)
