"""The federated fit equals statsmodels' GLM on the pooled rows, for all three families,
on three nodes of very different sizes, with a categorical covariate and a cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from tests.workloads.analysis.analysis_data import TABLES, VISITS, pooled_frame, pooled_glm
from workloads.analysis import glm
from workloads.analysis.spec import from_dict, validate
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

TOL = 1e-6


def _same(fed: glm.FitResult, ref: sm.GLM, names: list[str]) -> None:
    np.testing.assert_allclose(fed.coefficients, ref.params[names].to_numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(fed.std_errors, ref.bse[names].to_numpy(), rtol=0, atol=TOL)
    np.testing.assert_allclose(fed.deviance, ref.deviance, rtol=1e-9)
    for term in fed.terms:
        assert term.p_value == pytest.approx(float(ref.pvalues[term.name]), rel=1e-5, abs=1e-12)
        low, high = ref.conf_int().loc[term.name]
        assert (term.ci_low, term.ci_high) == pytest.approx((low, high), abs=TOL)
    assert fed.converged and fed.n == int(ref.nobs)


def test_logistic_equals_pooled(warehouses: dict[str, DuckDBWarehouse]) -> None:
    spec = from_dict({
        "table": "patient_genomic_data", "outcome": "diagnosis_cancer",
        "covariates": ["age", "bmi"], "categorical": {"variant_brca1": "0"},
        "cohort": "age BETWEEN 30 AND 75 AND NOT variant_tp53 = 2", "family": "logistic",
    })
    fed = glm.run_local_fit(warehouses, spec)
    frame = pooled_frame(warehouses, PATIENT_GENOMIC_DATA)
    ref, rows = pooled_glm(
        frame, lambda f: f.age.between(30, 75) & (f.variant_tp53 != 2), "diagnosis_cancer",
        ["age", "bmi"], {"variant_brca1": [0, 1, 2]}, sm.families.Binomial())
    names = ["intercept", "age", "bmi", "variant_brca1[1]", "variant_brca1[2]"]
    assert [t.name for t in fed.terms] == names
    _same(fed, ref, names)
    assert fed.rows_per_node == rows.groupby("node").size().to_dict()
    assert fed.term("age").ratio == pytest.approx(np.exp(ref.params["age"]), rel=1e-6)
    # Node sizes really differ (the point of three unequal nodes).
    sizes = sorted(fed.rows_per_node.values())
    assert sizes[-1] > 10 * sizes[0]


def test_poisson_count_outcome_equals_pooled(warehouses: dict[str, DuckDBWarehouse]) -> None:
    spec = from_dict({
        "table": VISITS.name, "outcome": "visits", "covariates": ["age"],
        "categorical": {"sex": "M", "region": None, "smoker": None},
        "cohort": "region IN ('north', 'east') OR age >= 60", "family": "poisson",
    })
    fed = glm.run_local_fit(warehouses, spec, tables=TABLES)
    frame = pooled_frame(warehouses, VISITS)
    ref, _ = pooled_glm(
        frame, lambda f: f.region.isin(["north", "east"]) | (f.age >= 60), "visits", ["age"],
        {"sex": ["M", "F"], "region": ["north", "south", "east"], "smoker": [0, 1]},
        sm.families.Poisson())
    names = ["intercept", "age", "sex[F]", "region[south]", "region[east]", "smoker[1]"]
    assert [t.name for t in fed.terms] == names
    _same(fed, ref, names)
    assert fed.term("smoker[1]").ratio == pytest.approx(np.exp(ref.params["smoker[1]"]))
    # Rows with a missing age are counted, not silently dropped.
    assert sum(fed.excluded_per_node.values()) > 0


def test_linear_equals_pooled(warehouses: dict[str, DuckDBWarehouse]) -> None:
    spec = from_dict({
        "table": VISITS.name, "outcome": "sbp", "covariates": ["age"],
        "categorical": ["smoker", "sex:F"], "cohort": "NOT (sex = 'F' AND age < 25)",
        "family": "gaussian",
    })
    fed = glm.run_local_fit(warehouses, spec, tables=TABLES)
    ref, _ = pooled_glm(
        pooled_frame(warehouses, VISITS), lambda f: ~((f.sex == "F") & (f.age < 25)), "sbp",
        ["age"], {"smoker": [0, 1], "sex": ["F", "M"]}, sm.families.Gaussian())
    names = ["intercept", "age", "smoker[1]", "sex[M]"]
    _same(fed, ref, names)
    assert fed.dispersion == pytest.approx(ref.scale, rel=1e-9)
    assert fed.terms[0].ratio is None  # no ratios on the identity link


def test_aggregate_size_does_not_depend_on_rows(warehouses: dict[str, DuckDBWarehouse]) -> None:
    spec = from_dict({"table": "patient_genomic_data", "outcome": "diagnosis_cancer",
                      "covariates": ["age"], "categorical": ["variant_brca1"]})
    design = validate(spec)
    sizes = set()
    for warehouse in warehouses.values():
        agg = glm.node_aggregate(warehouse, spec, np.zeros(len(design.terms)))
        vector = agg.to_vector()
        sizes.add(vector.shape)
        again = glm.Aggregate.from_vector(vector, len(design.terms))
        np.testing.assert_array_equal(again.information, agg.information)
    assert sizes == {(3 + 4 + 10,)}
    assert len(glm.slots(design, clipped=True)) == 3 + 4 + 10


def test_separation_is_an_error_not_coefficients(
    warehouses: dict[str, DuckDBWarehouse],
) -> None:
    # In this cohort nobody carries two BRCA1 variants but... use a level that perfectly
    # predicts: restrict to rows where the outcome follows a covariate exactly.
    spec = from_dict({
        "table": "patient_genomic_data", "outcome": "diagnosis_cancer", "covariates": ["age"],
        "categorical": ["variant_brca1"],
        "cohort": "(diagnosis_cancer = 1 AND variant_brca1 = 2) OR variant_brca1 IN (0, 1)",
    })
    # variant_brca1 = 2 rows are all cases here: complete separation of that level.
    with pytest.raises(glm.FitError, match=r"variant_brca1\[2\]"):
        glm.run_local_fit(warehouses, spec)


def test_empty_level_is_named(warehouses: dict[str, DuckDBWarehouse]) -> None:
    spec = from_dict({
        "table": "patient_genomic_data", "outcome": "diagnosis_cancer",
        "categorical": ["variant_tp53"], "cohort": "variant_tp53 IN (0, 1)",
    })
    with pytest.raises(glm.FitError, match=r"variant_tp53\[2\].*no information"):
        glm.run_local_fit(warehouses, spec)


def test_iteration_limit_is_an_error(warehouses: dict[str, DuckDBWarehouse]) -> None:
    spec = from_dict({"table": "patient_genomic_data", "outcome": "diagnosis_cancer",
                      "covariates": ["age"], "max_iter": 2})
    with pytest.raises(glm.FitError, match="no convergence after 2 rounds"):
        glm.run_local_fit(warehouses, spec)


def test_unscaling_is_exact() -> None:
    design = validate(from_dict({"table": "patient_genomic_data",
                                 "outcome": "diagnosis_cancer", "covariates": ["age", "bmi"]}))
    scaled = np.array([0.3, -1.2, 0.7])
    x = pd.DataFrame({"age": [30.0, 61.0], "bmi": [20.0, 33.5]})
    xs = np.column_stack([np.ones(2), *((x[t.name] - t.centre) / t.scale
                                        for t in design.terms[1:])])
    xo = np.column_stack([np.ones(2), x.age, x.bmi])
    np.testing.assert_allclose(xs @ scaled, xo @ (glm.unscale_matrix(design) @ scaled))


def test_constant_outcome_is_an_error(warehouses: dict[str, DuckDBWarehouse]) -> None:
    spec = from_dict({"table": "patient_genomic_data", "outcome": "diagnosis_cancer",
                      "covariates": ["age"], "cohort": "diagnosis_cancer = 0"})
    with pytest.raises(glm.FitError, match="diagnosis_cancer is never 1 in the cohort"):
        glm.run_local_fit(warehouses, spec)
    poisson = from_dict({"table": VISITS.name, "outcome": "visits", "family": "poisson",
                         "covariates": ["age"], "cohort": "visits = 0"})
    with pytest.raises(glm.FitError, match="visits is 0 on every row"):
        glm.run_local_fit(warehouses, poisson, tables=TABLES)


def test_empty_cohort_is_an_error(warehouses: dict[str, DuckDBWarehouse]) -> None:
    spec = from_dict({"table": "patient_genomic_data", "outcome": "diagnosis_cancer",
                      "cohort": "age > 200"})
    with pytest.raises(glm.FitError, match="no usable rows"):
        glm.run_local_fit(warehouses, spec)


def test_guard_inputs_match_the_rows(warehouses: dict[str, DuckDBWarehouse]) -> None:
    """max |eta| and the rows with IRLS weight >= 1e-4, for the node's guard."""
    spec = from_dict({"table": "patient_genomic_data", "outcome": "diagnosis_cancer",
                      "covariates": ["age", "bmi"]})
    design = validate(spec)
    beta = np.array([-2.0, 9.0, -1.5])
    agg = glm.node_aggregate(warehouses["eu"], spec, beta)
    rows = pooled_frame({"eu": warehouses["eu"]}, PATIENT_GENOMIC_DATA)
    x = np.column_stack([np.ones(len(rows))] + [(rows[t.name] - t.centre) / t.scale
                                                for t in design.terms[1:]])
    eta = x @ beta
    mu = 1 / (1 + np.exp(-eta))
    assert agg.max_abs_eta == pytest.approx(np.max(np.abs(eta)), rel=1e-12)
    assert agg.effective_rows == int(np.sum(mu * (1 - mu) >= 1e-4))
    assert 0 < agg.effective_rows < agg.n  # the chosen beta saturates some rows
