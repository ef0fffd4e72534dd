"""The researcher-specified GLM (workloads/analysis) as a federation algorithm.

The hub sends the analysis spec as typed parameters; each node re-parses it with the
analysis library's own parser (the cohort text through its tokenizer and allow-list),
re-validates it against its OWN catalogue, and answers one round with `node_aggregate`:
one SQL aggregate in its warehouse (no row reaches Python). The vector goes through the
node's guard (release log, odometer, participants) and secure aggregation like any other
algorithm's. The hub sums and takes the analysis library's Newton step (`combine`,
`GlmFitter`).

Released per round: n, cohort rows, deviance, gradient and X'WX (`Aggregate.to_vector`).
Checks before release, per the node's policy: coefficients finite and bounded; logistic and
Poisson scores inside +-max_abs_score; at least min_rows rows with non-saturated weight
(which also refuses cohorts smaller than min_rows).

Differential privacy: only the logistic family. With the covariates clipped to their
declared bounds every scaled term is in [-1, 1] and at most 1 + |covariates| +
|categoricals| terms of a row are non-zero (one dummy per categorical), so one row moves the
gradient by at most sqrt(q), X'WX by at most q / 4 (W <= 1/4) and each count by 1; the
deviance is not released (zeroed). Linear and Poisson rows move the residual and the weight
by amounts no declared bound caps (a Poisson mean, a linear residual at the hub's
coefficients), so a node refuses a DP request for them: they are released only as exact
masked sums, which the node's policy must allow (`exact_releases` lists `masked_sums`, the
default).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np

from workloads.analysis import glm
from workloads.analysis.spec import AnalysisSpec, from_dict, validate
from workloads.contracts.catalogue import ANALYSABLE
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.federation import data as node_data
from workloads.federation.guard import NodePolicy, RefusedError, ReleaseClass

MAX_ABS_COEFFICIENT = 1e3  # scaled coefficients beyond this (x outcome scale) are a probe


@runtime_checkable
class PushDown(Protocol):
    """An algorithm whose node side runs inside the node's warehouse (no rows in Python)."""

    def for_catalogue(self, tables: Sequence[Table]) -> Any:
        """The same algorithm resolving table names against this node's own catalogue."""
        ...

    def compute_in(
        self, warehouse: Any, params: Any, model: np.ndarray, policy: NodePolicy
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class AnalysisGLMParams:
    """An analysis spec on the wire: each field one JSON value, re-checked by the node."""

    table: str = ""
    outcome: str = ""
    family: str = "logistic"  # logistic | linear | poisson
    covariates: tuple[str, ...] = ()  # numeric, with public bounds
    categorical: tuple[str, ...] = ()  # "column:reference" ("column:" = first level)
    cohort: str = ""  # the cohort language; "" = every row
    noise_multiplier: float = 0.0  # 0: exact masked sums; else DP (logistic only)

    @staticmethod
    def of(spec: AnalysisSpec, noise_multiplier: float = 0.0) -> AnalysisGLMParams:
        return AnalysisGLMParams(
            spec.table, spec.outcome, spec.family, spec.covariates,
            tuple(f"{c}:{'' if r is None else r}" for c, r in spec.categorical),
            spec.cohort, noise_multiplier,
        )

    def spec(self) -> AnalysisSpec:
        """Parsed by the analysis library's own parser (raises UserError naming the fault)."""
        return from_dict({
            "table": self.table, "outcome": self.outcome, "family": self.family,
            "covariates": list(self.covariates), "categorical": list(self.categorical),
            "cohort": self.cohort,
        }, where="hub's analysis parameters")

    @property
    def dp(self) -> bool:
        return self.noise_multiplier > 0


T = TypeVar("T")


def warehouse_answer(run: Callable[[], T], table: str) -> T:
    """Run the node's query; an engine error (e.g. the table is not loaded here) becomes a
    refusal the hub sees at once (a signed abort), named by its type only: engine messages
    can quote stored values."""
    try:
        return run()
    except (RefusedError, UserError):
        raise
    except Exception as exc:
        raise RefusedError(
            f"this node's warehouse could not answer over {table} ({type(exc).__name__}); "
            f"fix: check the table is loaded on this node"
        ) from None


def size(params: AnalysisGLMParams, tables: Sequence[Table] = ANALYSABLE) -> int:
    return len(validate(params.spec(), tables).terms)


class AnalysisGLM:
    name: ClassVar[str] = "analysis_glm"
    params_type: ClassVar[type[Any]] = AnalysisGLMParams
    release_class: ClassVar[ReleaseClass] = "masked_sums"

    def __init__(self, tables: Sequence[Table] = ANALYSABLE) -> None:
        # The model size depends on the catalogue (levels): the hub resolves the spec against
        # its own, each node against its own (`for_catalogue`).
        self.tables = tuple(tables)

    def for_catalogue(self, tables: Sequence[Table]) -> AnalysisGLM:
        return AnalysisGLM(tables)

    def columns(self, params: AnalysisGLMParams) -> tuple[str, ...]:
        return (params.outcome, *params.covariates, *(c.partition(":")[0]
                                                      for c in params.categorical))

    def model_size(self, params: AnalysisGLMParams) -> int:
        return size(params, self.tables)

    def dimension(self, params: AnalysisGLMParams) -> int:
        p = self.model_size(params)
        return 3 + p + p * (p + 1) // 2

    def sensitivity(self, params: AnalysisGLMParams) -> float:
        """L2 change of the DP release (logistic, clipped) from one row added or removed."""
        q = 1 + len(params.covariates) + len(params.categorical)  # non-zero terms of a row
        return math.sqrt(2.0 + q + (q / 4.0) ** 2)

    def compute(
        self, data: node_data.NodeData, params: AnalysisGLMParams, model: np.ndarray,
        policy: NodePolicy,
    ) -> np.ndarray:
        # The worker calls compute_in with its warehouse (PushDown); rows are never loaded.
        raise RefusedError(f"{self.name} runs in the warehouse, not on rows in memory")

    def compute_in(
        self, warehouse: Any, params: AnalysisGLMParams, model: np.ndarray, policy: NodePolicy
    ) -> np.ndarray:
        tables = self.tables
        try:
            spec = params.spec()
            design = validate(spec, tables)  # against this node's own catalogue
        except UserError as exc:
            raise RefusedError(f"the analysis is refused: {exc}") from None
        if params.dp and spec.family != "logistic":
            raise RefusedError(
                f"a DP {spec.family} fit: one row's contribution to its residuals and "
                f"weights has no declared bound, so no noise can be calibrated; this node "
                f"releases {spec.family} fits only as exact masked sums (ask without DP) "
                f"or DP for logistic models"
            )
        p = len(design.terms)
        if model.shape != (p,) or not np.all(np.isfinite(model)):
            raise RefusedError(f"expected {p} finite coefficients")
        limit = MAX_ABS_COEFFICIENT
        if spec.family == "linear" and design.outcome.bounds is not None:
            limit *= max(1.0, *(abs(float(b)) for b in design.outcome.bounds))
        if np.max(np.abs(model)) > limit:
            raise RefusedError(f"coefficients beyond +-{limit:g} (scaled): a probe, not a model")
        aggregate = warehouse_answer(
            lambda: glm.node_aggregate(warehouse, spec, model, tables=tables, clip=params.dp),
            spec.table)
        if spec.family != "linear" and aggregate.max_abs_eta > policy.max_abs_score:
            raise RefusedError(
                f"the model pushes a row's score to {aggregate.max_abs_eta:.1f} (policy limit "
                f"{policy.max_abs_score:g}): its terms would single out rows; the fit is "
                f"separating (diverging) or the model is a probe"
            )
        if aggregate.effective_rows < policy.min_rows:
            raise RefusedError(
                f"only {aggregate.effective_rows} rows of the cohort have non-saturated "
                f"weights (policy minimum {policy.min_rows}): the terms would reveal "
                f"individual rows; fix: widen the cohort"
            )
        if params.dp:
            aggregate = glm.Aggregate(aggregate.n, aggregate.cohort_rows, 0.0,
                                      aggregate.gradient, aggregate.information)
        return aggregate.to_vector()
