"""The DP is real: the accountant's epsilon for the documented budget, the split, the
sensitivities (an adversarial extra row), and the node's refusal of garbage marginals.
The noise itself is the node guard's (workloads/federation/privacy.py); test_copula checks
its scale on the hub's totals, test_protocol the charges over the protocol."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.federation import privacy
from workloads.federation.guard import RefusedError
from workloads.synthetic.columns import synth_columns
from workloads.synthetic.federated import (
    FLOOR_MULTIPLIER,
    Request,
    SynthMarginals,
    SynthParams,
    SynthProducts,
    check_marginals,
    histograms,
    multipliers,
    normal_scores,
)

COLUMNS = synth_columns(PATIENT_GENOMIC_DATA)
D = len(COLUMNS)


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 3.0, 10.0])
@pytest.mark.parametrize("rounds", [1, 3])
def test_the_accountant_spends_exactly_the_documented_budget(epsilon: float, rounds: int
                                                             ) -> None:
    m_hist, m_prod = multipliers(epsilon, 1e-6, 0.5, rounds)
    spent = privacy.epsilon([m_hist, m_prod] * rounds, 1e-6)  # the guard's own accountant
    assert spent == pytest.approx(epsilon, rel=1e-4)


def test_the_split_between_marginals_and_dependence_is_as_stated() -> None:
    m_hist, m_prod = multipliers(1.0, 1e-6, 0.3, 1)
    m = privacy.calibrate(1.0, 1, 1e-6)
    # Gaussian RDP is alpha / (2 m^2): the shares of 1/m^2 are the shares of the budget
    assert (1 / m_hist**2) / (1 / m**2) == pytest.approx(0.3, rel=1e-9)
    assert (1 / m_prod**2) / (1 / m**2) == pytest.approx(0.7, rel=1e-9)
    params = SynthParams.of(PATIENT_GENOMIC_DATA, COLUMNS, clip=3.0, noise_multiplier=1.0)
    assert SynthMarginals().sensitivity(params) == pytest.approx(math.sqrt(D))
    assert SynthProducts().sensitivity(params) == pytest.approx(9.0 * math.sqrt(D * (D - 1) / 2))
    assert multipliers(math.inf, 1e-6, 0.5, 1) == (FLOOR_MULTIPLIER, FLOOR_MULTIPLIER)
    with pytest.raises(UserError):
        multipliers(1.0, 1e-6, 1.0, 1)


def test_a_fixed_noise_multiplier_that_overspends_is_refused() -> None:
    with pytest.raises(UserError, match="spends epsilon"):
        Request(PATIENT_GENOMIC_DATA, COLUMNS, 1.0, noise_multiplier=0.5).multipliers()
    assert Request(PATIENT_GENOMIC_DATA, COLUMNS, 100.0,
                   noise_multiplier=2.0).multipliers() == (2.0, 2.0)


class _Source:
    def __init__(self, data: pd.DataFrame) -> None:
        self.con = duckdb.connect()
        self.con.register("patient_genomic_data", data)

    def table_ref(self, table: object) -> str:
        return "patient_genomic_data"

    def render(self, sql: str) -> list[str]:  # DuckDB, the table registered by name
        return [sql]

    def query(self, sql: str) -> object:
        return self.con.execute(sql).to_arrow_table()


def test_sensitivities_hold_for_an_adversarial_extra_row(three_sites: dict[str, pd.DataFrame]
                                                          ) -> None:
    """One extra row moves each histogram by exactly one count, no other row's score, and
    the product sums by at most the stated L2 sensitivity, even at the bounds' extremes."""
    base = three_sites["a"]
    extreme = base.iloc[:1].copy()
    extreme["patient_id"] = "EXTRA"
    extreme[["age", "bmi", "variant_brca1", "variant_tp53", "variant_apoe4",
             "diagnosis_cancer"]] = [500, -3.0, 2, 2, 2, 1]  # out of bounds: clamped
    with_row = pd.concat([extreme, base], ignore_index=True)  # first: shifts every row
    h0 = histograms(_Source(base), PATIENT_GENOMIC_DATA, COLUMNS)
    h1 = histograms(_Source(with_row), PATIENT_GENOMIC_DATA, COLUMNS)
    for a, b in zip(h0, h1, strict=True):
        assert np.abs(b - a).sum() == 1
    marginals = [np.full(c.bins, 1.0 / c.bins) for c in COLUMNS]
    z0 = normal_scores(_Source(base), PATIENT_GENOMIC_DATA, COLUMNS, marginals, 3.0, 11)
    z1 = normal_scores(_Source(with_row), PATIENT_GENOMIC_DATA, COLUMNS, marginals, 3.0, 11)
    assert np.abs(z1).max() <= 3.0
    # each row's jitter is keyed by its own id: the other rows score exactly as before
    np.testing.assert_array_equal(z1[1:], z0)
    iu = np.triu_indices(D, k=1)
    moved = (z1.T @ z1)[iu] - (z0.T @ z0)[iu]
    params = SynthParams.of(PATIENT_GENOMIC_DATA, COLUMNS, clip=3.0, noise_multiplier=1.0)
    assert np.linalg.norm(moved) <= SynthProducts().sensitivity(params) + 1e-9
    worst = np.full(D, 3.0)  # a row at the clip in every column attains the bound
    assert np.linalg.norm(np.outer(worst, worst)[iu]) == pytest.approx(
        SynthProducts().sensitivity(params))


def test_a_node_refuses_garbage_marginals_from_the_hub() -> None:
    good = [np.full(c.bins, 1.0 / c.bins) for c in COLUMNS]
    check_marginals(good, COLUMNS)
    for bad in (good[:-1], [g * 2 for g in good], [np.full_like(g, np.nan) for g in good],
                [-g if i == 0 else g for i, g in enumerate(good)]):
        with pytest.raises(RefusedError):
            check_marginals(bad, COLUMNS)
