"""Plain-text rendering of federated results, and the pooled reference fit.

The pooled fit reads every node's rows into one place: it exists only to verify the
federated result on a local machine (tests, demo, benchmark), never in a deployment.
"""

from __future__ import annotations

import numpy as np

from workloads.federation import algorithms
from workloads.federation import data as node_data
from workloads.federation.coordinator import FitResult, StatsRow
from workloads.local_node import LocalNode


def stats_table(rows: list[StatsRow], k: int) -> str:
    columns = list(rows[0].values)
    lines = [
        f"Federated statistics (combined over the nodes; a cell is shown only if every node "
        f"has at least {k} patients, cases and non-cases in it: else '*')",
        f"{'cell':<18}" + "".join(f"{c:>30}" for c in columns),
        f"{'':<18}" + "".join(f"{'n     rate   age    bmi':>30}" for _ in columns),
    ]
    for row in rows:
        cells = []
        for column in columns:
            value = row.values[column]
            if value is None:
                cells.append(f"{'*':>30}")
            else:
                n, _cases, rate, *means = value
                cells.append(f"{n:>12.0f} {rate:>6.1%} " + " ".join(f"{m:>5.1f}" for m in means))
        lines.append(f"{row.label:<18}" + "".join(cells))
    return "\n".join(lines)


def fit_table(fit: FitResult, pooled: np.ndarray | None = None) -> str:
    lines = [
        f"Federated logistic regression of diagnosis_cancer ({fit.rounds} Newton rounds, "
        f"{'converged' if fit.converged else 'NOT converged'}, nodes: "
        f"{', '.join(fit.participants)}"
        + (f", DP epsilon <= {fit.epsilon:.2f} per node" if fit.epsilon is not None else "")
        + ")",
        f"{'term':<15}{'coef':>12}{'std err':>12}"
        + (f"{'pooled':>12}{'|diff|':>10}" if pooled is not None else ""),
    ]
    for i, name in enumerate(fit.names):
        line = f"{name:<15}{fit.coefficients[i]:>12.6f}{fit.standard_errors[i]:>12.6f}"
        if pooled is not None:
            line += f"{pooled[i]:>12.6f}{abs(fit.coefficients[i] - pooled[i]):>10.1e}"
        lines.append(line)
    lines.append(
        "AUC per node (computed once inside each node on the run's final model, noised and "
        "charged to its privacy odometer): "
        + ", ".join(
            [f"{node} {value:.3f}" for node, value in fit.auc.items()]
            + [
                f"{node} not released ({reason})"
                for node, reason in sorted(fit.auc_refused.items())
            ]
        )
    )
    return "\n".join(lines)


def pooled_fit(nodes: list[LocalNode]) -> tuple[np.ndarray, np.ndarray]:
    """statsmodels Logit on the union of the rows (original scale): coefficients, errors."""
    import statsmodels.api as sm

    params = algorithms.GLMParams()
    columns = algorithms.GLM().columns(params)
    datasets = [node_data.load(n, params.table, columns) for n in nodes]
    x = np.vstack([d.values[:, 1:] for d in datasets])
    y = np.concatenate([d.values[:, 0] for d in datasets])
    result = sm.Logit(y, sm.add_constant(x, has_constant="add")).fit(disp=0, tol=1e-12)
    return np.asarray(result.params), np.asarray(result.bse)
