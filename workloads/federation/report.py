"""Plain-text rendering of federated results, and the pooled reference fit.

The pooled fit reads every node's rows into one place: it exists only to verify the
federated result on a local machine (tests, demo, benchmark), never in a deployment.
"""

from __future__ import annotations

import numpy as np

from workloads.federation.coordinator import FitResult, StatsRow
from workloads.federation.local_stats import COEFFICIENT_NAMES, NodeData


def stats_table(rows: list[StatsRow], k: int) -> str:
    columns = list(rows[0].values)
    lines = [
        f"Federated statistics (cells with fewer than {k} patients, cases or non-cases are "
        f"suppressed: '*')",
        f"{'cell':<18}" + "".join(f"{c:>26}" for c in columns),
        f"{'':<18}" + "".join(f"{'n   rate  age   bmi':>26}" for _ in columns),
    ]
    for row in rows:
        cells = []
        for column in columns:
            value = row.values[column]
            if value is None:
                cells.append(f"{'*':>26}")
            else:
                n, _cases, rate, age, bmi = value
                cells.append(f"{n:>10.0f} {rate:>6.1%} {age:>4.1f} {bmi:>4.1f}")
        lines.append(f"{row.label:<18}" + "".join(cells))
    return "\n".join(lines)


def fit_table(fit: FitResult, pooled: np.ndarray | None = None) -> str:
    lines = [
        f"Federated logistic regression of diagnosis_cancer ({fit.rounds} Newton rounds, "
        f"{'converged' if fit.converged else 'NOT converged'}, nodes: "
        f"{', '.join(fit.participants)}"
        + (f", DP epsilon {fit.epsilon:.2f}" if fit.epsilon is not None else "")
        + ")",
        f"{'term':<15}{'coef':>12}{'std err':>12}"
        + (f"{'pooled':>12}{'|diff|':>10}" if pooled is not None else ""),
    ]
    for i, name in enumerate(COEFFICIENT_NAMES):
        line = f"{name:<15}{fit.coefficients[i]:>12.6f}{fit.standard_errors[i]:>12.6f}"
        if pooled is not None:
            line += f"{pooled[i]:>12.6f}{abs(fit.coefficients[i] - pooled[i]):>10.1e}"
        lines.append(line)
    lines.append(
        "AUC per node (computed inside each node): "
        + ", ".join(f"{node} {value:.3f}" for node, value in fit.auc.items())
    )
    return "\n".join(lines)


def pooled_fit(datasets: list[NodeData]) -> tuple[np.ndarray, np.ndarray]:
    """statsmodels Logit on the union of the rows (original scale): coefficients, errors."""
    import statsmodels.api as sm

    x = np.vstack([d.x for d in datasets])
    y = np.concatenate([d.y for d in datasets])
    result = sm.Logit(y, sm.add_constant(x, has_constant="add")).fit(disp=0, tol=1e-12)
    return np.asarray(result.params), np.asarray(result.bse)
