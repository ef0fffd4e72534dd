"""The hub's repair (a valid correlation, never a silent fallback to independence) and the
sampler (declared types and ranges; the dependence survives the round trip)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.synthetic import SecureAggregator, create_federated_generator
from workloads.synthetic.api import FederatedGenerator
from workloads.synthetic.columns import synth_columns
from workloads.synthetic.copula import (
    CopulaModel,
    CorrelationRepairError,
    correlation_from_products,
    is_correlation,
    nearest_correlation,
)
from workloads.synthetic.federated import histograms

COLUMNS = synth_columns(PATIENT_GENOMIC_DATA)


def test_repair_makes_an_indefinite_noisy_matrix_a_correlation() -> None:
    bad = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert np.linalg.eigvalsh(bad).min() < 0
    fixed = nearest_correlation(bad)
    assert is_correlation(fixed)
    assert np.abs(fixed - bad).max() < 0.5  # near, not the identity
    assert abs(fixed[0, 1]) > 0.3
    asymmetric = np.array([[1.2, 0.5], [0.3, 0.9]])
    assert is_correlation(nearest_correlation(asymmetric))


def test_repair_leaves_a_valid_correlation_alone() -> None:
    good = np.array([[1.0, 0.4, 0.1], [0.4, 1.0, -0.2], [0.1, -0.2, 1.0]])
    np.testing.assert_allclose(nearest_correlation(good), good, atol=1e-8)


def test_impossible_repairs_are_errors_not_independence() -> None:
    with pytest.raises(CorrelationRepairError):
        nearest_correlation(np.array([[1.0, math.nan], [math.nan, 1.0]]))
    # a noisy row count <= 0: the noise swamped the data
    with pytest.raises(CorrelationRepairError, match="raise epsilon"):
        correlation_from_products(np.array([5.0]), 2, -3.0, 3.0)
    with pytest.raises(CorrelationRepairError, match="not finite"):
        correlation_from_products(np.array([math.inf]), 2, 100.0, 3.0)


def _sites(n: int, rho: float, seed: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    out = {}
    for i, name in enumerate(("us", "eu")):
        z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], n)
        data = pd.DataFrame({
            "patient_id": [f"{name}-{k}" for k in range(n)],
            "age": np.clip(np.round(52 + 12 * z[:, 0]), 25, 80).astype(int),
            "bmi": np.clip(27 + 4 * z[:, 1] + i, 18.5, 40.0),
            "variant_brca1": rng.binomial(2, 0.1, n),
            "variant_tp53": rng.binomial(2, 0.05, n),
            "variant_apoe4": (z[:, 0] > 1).astype(int) + (z[:, 0] > 1.8).astype(int),
            "diagnosis_cancer": (z[:, 1] > 1.2).astype(int),
        })
        out[name] = data
    return out


def _trained(sites: dict[str, pd.DataFrame], epsilon: float) -> FederatedGenerator:
    generator = create_federated_generator(
        sites, aggregator=SecureAggregator(epsilon=epsilon), privacy_budget=math.inf)
    generator.train()
    return generator


def _exact(data: pd.DataFrame) -> list[np.ndarray]:
    import duckdb

    con = duckdb.connect()
    con.register("patient_genomic_data", data)

    class Source:
        def table_ref(self, table: object) -> str:
            return "patient_genomic_data"

        def render(self, sql: str) -> list[str]:  # DuckDB, the table registered by name
            return [sql]

        def query(self, sql: str) -> object:
            return con.execute(sql).to_arrow_table()

    return histograms(Source(), PATIENT_GENOMIC_DATA, COLUMNS)


def test_samples_have_the_declared_types_ranges_and_dependence() -> None:
    nodes = _sites(4000, 0.7, seed=3)
    model = _trained(nodes, math.inf).model()
    assert isinstance(model, CopulaModel) and is_correlation(model.correlation)
    sample = model.sample(20_000, np.random.default_rng(1))
    assert list(sample.columns) == [c.name for c in COLUMNS]
    assert sample["age"].dtype == np.int64
    assert sample["age"].between(25, 80).all()
    assert sample["bmi"].dtype == np.float64 and sample["bmi"].between(18.5, 40.0).all()
    for name in ("variant_brca1", "variant_tp53", "variant_apoe4"):
        assert sample[name].dtype == np.int64 and set(sample[name].unique()) <= {0, 1, 2}
    assert set(sample["diagnosis_cancer"].unique()) == {0, 1}
    # the pooled dependence survives (Spearman of age and BMI ~ 0.68 for rho 0.7)
    assert sample[["age", "bmi"]].corr(method="spearman").iloc[0, 1] == pytest.approx(0.68,
                                                                                        abs=0.05)
    real = pd.concat(nodes.values())
    for pair in (["age", "variant_apoe4"], ["bmi", "diagnosis_cancer"]):
        want = real[pair].corr(method="spearman").iloc[0, 1]
        assert want > 0.3
        assert sample[pair].corr(method="spearman").iloc[0, 1] == pytest.approx(want, abs=0.06)
    # the marginals match: the share of apoe4 carriers, the mean BMI
    assert (sample["variant_apoe4"] > 0).mean() == pytest.approx(
        (real["variant_apoe4"] > 0).mean(), abs=0.01)
    assert sample["bmi"].mean() == pytest.approx(real["bmi"].mean(), abs=0.15)


def test_without_noise_the_hub_sum_is_the_pooled_histogram() -> None:
    nodes = _sites(500, 0.3, seed=4)
    training = _trained(nodes, math.inf).aggregator.trainings[-1]
    pooled = [a + b for a, b in zip(_exact(nodes["us"]), _exact(nodes["eu"]), strict=True)]
    for got, want in zip(training.histogram_total, pooled, strict=True):
        np.testing.assert_allclose(got, want, atol=0.05)  # noise at the guard's floor (1e-3)
    assert training.model is not None
    assert training.model.rows_estimate == pytest.approx(1000, abs=0.05)


def test_the_attenuation_series_matches_the_closed_form() -> None:
    """Two median splits: E[g g] = (2/pi)^2 arcsin(r) (the orthant probability)."""
    from workloads.synthetic.copula import hermite_coefficients, latent_correlation

    c = hermite_coefficients(np.array([0.5, 0.5]), discrete=True)
    for r in (-0.6, 0.2, 0.5, 0.9):
        series = float(np.sum(c * c * r ** np.arange(1, len(c) + 1)))
        assert series == pytest.approx((2 / np.pi) ** 2 * np.arcsin(r), abs=1e-6)
    # and the inversion recovers the latent r from the attenuated observation
    binary = synth_columns(PATIENT_GENOMIC_DATA)[-1]
    observed = np.array([[1.0, (2 / np.pi) ** 2 * np.arcsin(0.5)], [0.0, 1.0]])
    latent = latent_correlation(observed, (binary, binary),
                                (np.array([0.5, 0.5]), np.array([0.5, 0.5])))
    assert latent[0, 1] == pytest.approx(0.5, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 7).flatmap(
    lambda d: st.lists(st.floats(-1.5, 1.5), min_size=d * d, max_size=d * d)))
def test_any_noisy_square_input_repairs_to_a_correlation(values: list[float]) -> None:
    d = round(len(values) ** 0.5)
    noisy = np.asarray(values).reshape(d, d)
    np.fill_diagonal(noisy, 1.0)
    assert is_correlation(nearest_correlation(noisy))


def test_the_released_totals_carry_the_planned_noise() -> None:
    """At epsilon 1 the hub's totals differ from the exact pooled histograms by noise of
    variance nodes x (multiplier x sqrt(d))^2: the guard really adds it, at that scale."""
    nodes = _sites(500, 0.3, seed=5)
    pooled = np.concatenate([a + b for a, b in zip(_exact(nodes["us"]), _exact(nodes["eu"]),
                                                   strict=True)])
    generator = create_federated_generator(nodes, privacy_budget=math.inf)
    errors = []
    for _ in range(5):
        generator.train()
        errors.append(np.concatenate(generator.aggregator.trainings[-1].histogram_total)
                      - pooled)
    errors_all = np.concatenate(errors)  # 5 runs x 107 bins
    m_hist = generator.aggregator.trainings[-1].multipliers[0]
    scale = m_hist * math.sqrt(len(COLUMNS))  # sigma = multiplier x L2 sensitivity
    assert np.var(errors_all) == pytest.approx(2 * scale**2, rel=0.25)
