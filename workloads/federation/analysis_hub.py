"""The hub side of a researcher-specified GLM over the federation (issue #11).

Each Newton round is one `Coordinator.aggregate` of the `analysis_glm` algorithm: every
node answers with its pushed-down aggregate through its own guard and secure aggregation;
the hub reads only the sum and takes the analysis library's step (`glm.combine`,
`glm.GlmFitter`), then reports with `glm.result_of`, exactly as the in-process library does.

Rows per node are not released (secure aggregation hides each node's count), so results
carry one entry: the masked sum over the nodes that answered.

With DP (logistic only: see analysis_glm.py) the run spends exactly its planned releases:
each round's noisy information is floored to positive definite, the step is limited to a
trust region (post-processing, costs no privacy), and the result says "not converged"
because a fixed number of noisy rounds is not a convergence test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from workloads.analysis import glm, statistics
from workloads.analysis.spec import AnalysisSpec, validate
from workloads.contracts.catalogue import ANALYSABLE
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.federation import coordinator as hub
from workloads.federation.analysis_glm import AnalysisGLM, AnalysisGLMParams
from workloads.federation.analysis_stats import AnalysisStats, AnalysisStatsParams
from workloads.federation.analysis_stats import combine as combine_cells
from workloads.federation.protocol import MAX_VALUES

# Sums cross the wire in fixed point (2^-28 per node and value): Newton steps below ~1e-10
# are rounding, not progress. At a step of 1e-8 (scaled) Newton's error is ~1e-16.
FIXED_POINT_TOLERANCE = 1e-8


def rows_label(nodes: Sequence[str]) -> str:
    return f"masked sum of {', '.join(nodes)}"


def fit_spec(
    coordinator: hub.Coordinator, spec: AnalysisSpec, tables: Sequence[Table] = ANALYSABLE
) -> glm.FitResult:
    """Federated GLM of `spec`; raises FitError / FederationStoppedError with the reason."""
    spec = replace(spec, tolerance=max(spec.tolerance, FIXED_POINT_TOLERANCE))
    design = validate(spec, tables)  # at the hub first; each node checks again
    algorithm = AnalysisGLM(tables)
    dp = coordinator.config.dp
    params = AnalysisGLMParams.of(spec, dp.noise_multiplier if dp else 0.0)
    p = len(design.terms)
    fitter = glm.GlmFitter(design)
    if dp is not None:
        return _dp_fit(coordinator, algorithm, params, fitter)
    total = None
    while True:
        beta = fitter.beta.copy()
        vector, survivors = coordinator.aggregate(algorithm, params, tuple(map(float, beta)))
        total = glm.Aggregate.from_vector(vector, p)
        if not fitter.observe(glm.combine([total], beta, design.names)):
            break
    return glm.result_of(fitter, {rows_label(survivors): total})


def _dp_fit(
    coordinator: hub.Coordinator, algorithm: AnalysisGLM, params: AnalysisGLMParams,
    fitter: glm.GlmFitter,
) -> glm.FitResult:
    dp = coordinator.config.dp
    assert dp is not None
    design = fitter.design
    p = len(design.terms)
    rounds = dp.releases - len(coordinator.dp_multipliers)
    if rounds < 1:
        coordinator.stop(f"the run's DP plan of {dp.releases} releases is spent; fix: plan "
                         f"more (--dp-rounds) in a new run")
    beta = np.zeros(p)
    total = None
    survivors: tuple[str, ...] = ()
    for _ in range(rounds):
        vector, survivors = coordinator.aggregate(algorithm, params, tuple(map(float, beta)))
        noisy = glm.Aggregate.from_vector(vector, p)
        information = hub._positive_definite(noisy.information)
        total = glm.Aggregate(max(noisy.n, p + 1), max(noisy.cohort_rows, 0), 0.0,
                              noisy.gradient, information)
        step = np.linalg.solve(information, noisy.gradient)
        step = step * min(1.0, hub.DP_MAX_STEP / max(float(np.linalg.norm(step)), 1e-12))
        beta = beta + step
    assert total is not None
    fitter.rounds, fitter.converged = rounds, True
    fitter.last = glm.Step(beta, total, np.zeros(p))
    result = glm.result_of(fitter, {rows_label(survivors): total})
    return replace(result, converged=False)


def stats_spec(
    coordinator: hub.Coordinator, spec: statistics.StatsSpec,
    tables: Sequence[Table] = ANALYSABLE,
) -> tuple[statistics.StatsResult, np.ndarray]:
    """Federated statistics: the combined cells (a StatsResult without per-node values) and
    the mask of the published ones (every node passed them, or above k on noisy sums)."""
    algorithm = AnalysisStats(tables)
    stats_plan = statistics.plan(spec, tables)  # at the hub first; each node checks again
    dp = coordinator.config.dp
    params = AnalysisStatsParams.of(spec, coordinator.config.k, dp.noise_multiplier if dp else 0.0)
    if algorithm.dimension(params) > MAX_VALUES:
        raise UserError(f"stats: {len(stats_plan.cells)} cells; fix: ask for at most "
                        f"{MAX_VALUES // 2} over the federation")
    total, survivors = coordinator.aggregate(algorithm, params)
    values, shown = combine_cells(stats_plan, total, len(survivors), coordinator.config.k,
                                  dp is not None)
    published = np.where(shown, values, np.nan)
    return statistics.StatsResult(stats_plan, {}, published), shown
