"""The pooled reference fit, for the local demo and the tests only: it reads the model's
rows out of every local warehouse into this process (which a real federation never does)
and fits statsmodels' GLM on them, to show the federated fit is the same model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import statsmodels.api as sm

from workloads.analysis import sql
from workloads.analysis.glm import unscale_matrix
from workloads.analysis.report import Estimates
from workloads.analysis.spec import AnalysisSpec, validate
from workloads.contracts.catalogue import ANALYSABLE
from workloads.contracts.schema import Table

_FAMILIES = {"logistic": sm.families.Binomial, "linear": sm.families.Gaussian,
             "poisson": sm.families.Poisson}


def pooled_estimates(
    warehouses: Mapping[str, Any], spec: AnalysisSpec, tables: Sequence[Table] = ANALYSABLE
) -> Estimates:
    design = validate(spec, tables)
    xs, ys = [], []
    for warehouse in warehouses.values():
        table = sql.table_expression(warehouse, design.table)
        rows = sql.model_rows_query(design, table)
        data = warehouse.query(sql.render(rows, sql.dialect_of(warehouse)))
        names = [f"x{j}" for j in range(len(design.terms))]
        xs.append(np.column_stack([data.column(n).to_numpy().astype(float) for n in names]))
        ys.append(data.column("y").to_numpy().astype(float))
    a = unscale_matrix(design)
    fit = sm.GLM(np.concatenate(ys), np.vstack(xs), family=_FAMILIES[spec.family]()).fit(
        tol=1e-12, maxiter=100)
    beta = a @ np.asarray(fit.params)
    se = np.sqrt(np.diag(a @ np.asarray(fit.cov_params()) @ a.T))
    return Estimates("pooled (statsmodels)", {
        t.name: (float(b), float(b - 1.959963984540054 * s), float(b + 1.959963984540054 * s))
        for t, b, s in zip(design.terms, beta, se, strict=True)
    })

