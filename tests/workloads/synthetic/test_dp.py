"""The DP is real: the accountant's epsilon for the documented budget, the split, the noise
scale against the sensitivity (empirically), and the sensitivities themselves."""

from __future__ import annotations

import math

import numpy as np
import opendp.prelude as dp
import pandas as pd
import pytest

from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.synthetic.columns import synth_columns
from workloads.synthetic.dp import (
    BudgetExceededError,
    epsilon_of,
    noisy_counts,
    noisy_vector,
    opendp_rho,
    plan,
    rho_for,
)
from workloads.synthetic.ledger import NodeBudget, WarehouseLedger
from workloads.synthetic.node import MemorySource, SynthesisNode

COLUMNS = synth_columns(PATIENT_GENOMIC_DATA)
D = len(COLUMNS)


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 3.0, 10.0])
def test_the_accountant_spends_exactly_the_documented_budget(epsilon: float) -> None:
    p = plan(epsilon, 1e-6, D)
    events = p.events("us", "run", [c.name for c in COLUMNS])
    assert len(events) == D + 1
    spent = epsilon_of([e.rho for e in events], 1e-6)
    assert spent == pytest.approx(epsilon, rel=1e-6)
    # OpenDP's own zCDP -> (epsilon, delta) conversion of the same total agrees
    total = sum(e.rho for e in events)
    gaussian = dp.m.make_gaussian(dp.atom_domain(T=float, nan=False),
                                  dp.absolute_distance(T=float),
                                  scale=math.sqrt(1 / (2 * total)))
    curve = dp.c.make_zCDP_to_approxDP(gaussian).map(1.0)
    assert curve.epsilon(1e-6) == pytest.approx(epsilon, rel=1e-3)


def test_the_split_between_marginals_and_dependence_is_as_stated() -> None:
    p = plan(1.0, 1e-6, D, marginal_share=0.3)
    events = p.events("us", "run", [c.name for c in COLUMNS])
    total = rho_for(1.0, 1e-6)
    marginal = sum(e.rho for e in events if e.query.startswith("histogram("))
    assert marginal == pytest.approx(0.3 * total, rel=1e-9)
    assert events[-1].rho == pytest.approx(0.7 * total, rel=1e-9)
    # every event's rho is what OpenDP itself computes for that measurement
    assert opendp_rho(1, p.marginal_scale, integer=True) == pytest.approx(events[0].rho)
    assert opendp_rho(p.product_sensitivity, p.product_scale, integer=False) == pytest.approx(
        events[-1].rho)
    assert p.product_sensitivity == pytest.approx(3.0**2 * math.sqrt(D * (D - 1) / 2))


def test_noise_has_the_planned_scale() -> None:
    """4,000 draws: the sample variance is within 10% of scale^2 (4.5 standard errors)."""
    p = plan(1.0, 1e-6, D)
    counts = noisy_counts(np.zeros(4000, dtype=np.int64), p.marginal_scale)
    assert counts.dtype == np.int64  # the discrete Gaussian: integer counts
    assert np.var(counts) == pytest.approx(p.marginal_scale**2, rel=0.10)
    assert abs(np.mean(counts)) < 4 * p.marginal_scale / math.sqrt(4000)
    floats = noisy_vector(np.zeros(4000), p.product_scale)
    assert np.var(floats) == pytest.approx(p.product_scale**2, rel=0.10)
    # more epsilon, less noise: the scale follows the budget
    assert plan(10.0, 1e-6, D).marginal_scale < p.marginal_scale / 5


def test_without_noise_only_when_epsilon_is_infinite() -> None:
    p = plan(math.inf, 1e-6, D)
    assert p.marginal_scale == 0 and p.product_scale == 0
    assert all(math.isinf(e.rho) for e in p.events("us", "r", ["a"]))
    assert list(noisy_counts(np.array([5, 7]), 0.0)) == [5, 7]


def test_a_fixed_noise_scale_that_overspends_is_refused() -> None:
    with pytest.raises(BudgetExceededError):
        plan(1.0, 1e-6, D, noise_scale=0.5)
    fixed = plan(100.0, 1e-6, D, noise_scale=2.0)
    assert fixed.marginal_scale == 2.0
    assert fixed.product_scale == pytest.approx(2.0 * fixed.product_sensitivity)
    with pytest.raises(UserError):
        plan(1.0, 1e-6, D, marginal_share=1.0)


def _node(data: pd.DataFrame) -> SynthesisNode:
    source = MemorySource(PATIENT_GENOMIC_DATA, data)
    return SynthesisNode("us", source, PATIENT_GENOMIC_DATA, COLUMNS,
                         WarehouseLedger("us", source, NodeBudget(math.inf)))


def test_sensitivities_hold_for_an_adversarial_extra_row(three_sites: dict[str, pd.DataFrame]
                                                          ) -> None:
    """One extra row moves each histogram by exactly one count, and the product sums by at
    most the stated L2 sensitivity, even for a row at the bounds' extremes."""
    base = three_sites["a"]
    extreme = base.iloc[:1].copy()
    extreme[["age", "bmi", "variant_brca1", "variant_tp53", "variant_apoe4",
             "diagnosis_cancer"]] = [500, -3.0, 2, 2, 2, 1]  # out of bounds: clamped
    with_row = pd.concat([base, extreme], ignore_index=True)
    h0, h1 = _node(base).exact_histograms(), _node(with_row).exact_histograms()
    for a, b in zip(h0, h1, strict=True):
        assert np.abs(b - a).sum() == 1
    p = plan(1.0, 1e-6, D)
    marginals = [np.full(c.bins, 1.0 / c.bins) for c in COLUMNS]
    z0 = _node(base).normal_scores(marginals, p.clip, np.random.default_rng(0))
    z1 = _node(with_row).normal_scores(marginals, p.clip, np.random.default_rng(1))
    assert np.abs(z1).max() <= p.clip
    # a row's score depends only on the row, the public marginals and its own jitter:
    # the continuous column (no jitter) scores the other rows identically
    bmi = [c.name for c in COLUMNS].index("bmi")
    np.testing.assert_allclose(z1[:-1, bmi], z0[:, bmi])
    # so, with the other rows' jitter the same, the sums move by the new row's products
    iu = np.triu_indices(D, k=1)
    last = z1[-1]
    assert np.linalg.norm(np.outer(last, last)[iu]) <= p.product_sensitivity + 1e-9
    worst = np.full(D, p.clip)  # a row at the clip in every column attains the bound
    assert np.linalg.norm(np.outer(worst, worst)[iu]) == pytest.approx(p.product_sensitivity)


def test_a_node_refuses_garbage_marginals_from_the_hub(three_sites: dict[str, pd.DataFrame]
                                                       ) -> None:
    node = _node(three_sites["a"])
    good = [np.full(c.bins, 1.0 / c.bins) for c in COLUMNS]
    node.normal_scores(good, 3.0, np.random.default_rng(0))
    for bad in (good[:-1], [*good[:-1], np.full(2, np.nan)], [*good[:-1], np.array([2.0, -1.0])],
                [*good[:-1], np.full(5, 0.2)]):
        with pytest.raises(UserError, match="refused"):
            node.normal_scores(bad, 3.0, np.random.default_rng(0))
