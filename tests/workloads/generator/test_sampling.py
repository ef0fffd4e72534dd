"""The generated population: its statistics, determinism, chunk independence, ids and schema.

Statistical tolerances are 5 standard errors for the sample size used (a false alarm
about once in 1.7 million checks), against exact expectations from the profile.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import norm

from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.generator.profile import GENES, Profile, find_profile
from workloads.generator.sampling import BLOCK_ROWS, generate_batches, patient_ids

N = 200_000
Z = 5.0


def generate(profile: Profile, rows: int, seed: int = 7, chunk_rows: int = 50_000) -> pa.Table:
    return pa.Table.from_batches(list(generate_batches(profile, rows, seed, chunk_rows=chunk_rows)))


@pytest.fixture(scope="module", params=["us", "eu"])
def sample(request: pytest.FixtureRequest) -> tuple[Profile, dict[str, np.ndarray]]:
    profile = find_profile(request.param)
    table = generate(profile, N, seed=2024)
    return profile, {name: table[name].to_numpy() for name in table.column_names}


def within_rate(observed: np.ndarray, p: float, what: str) -> None:
    n = len(observed)
    se = np.sqrt(p * (1 - p) / n)
    assert abs(observed.mean() - p) <= Z * se, f"{what}: {observed.mean():.5f} vs {p:.5f} (n={n})"


def clipped_normal_mean(mean: float, sd: float, low: float, high: float) -> float:
    a, b = (low - mean) / sd, (high - mean) / sd
    inside = mean * (norm.cdf(b) - norm.cdf(a)) + sd * (norm.pdf(a) - norm.pdf(b))
    return float(low * norm.cdf(a) + inside + high * norm.sf(b))


def test_values_stay_in_their_domains(sample: tuple[Profile, dict[str, np.ndarray]]) -> None:
    profile, cols = sample
    assert cols["age"].min() >= profile.age.low and cols["age"].max() <= profile.age.high
    assert cols["bmi"].min() >= profile.bmi.low and cols["bmi"].max() <= profile.bmi.high
    assert np.array_equal(np.round(cols["bmi"], 1), cols["bmi"])  # one decimal
    for gene in GENES:
        assert set(np.unique(cols[f"variant_{gene}"])) <= {0, 1, 2}
    assert set(np.unique(cols["diagnosis_cancer"])) == {0, 1}


def test_allele_frequencies_match_the_profile(
    sample: tuple[Profile, dict[str, np.ndarray]],
) -> None:
    profile, cols = sample
    for gene in GENES:
        for count, p in enumerate(profile.alleles[gene]):
            within_rate(cols[f"variant_{gene}"] == count, p, f"{profile.node} {gene}={count}")


def test_age_distribution_matches_exactly(sample: tuple[Profile, dict[str, np.ndarray]]) -> None:
    profile, cols = sample
    ages, pmf = profile.age_pmf()
    mean = float(np.sum(ages * pmf))
    sd = float(np.sqrt(np.sum((ages - mean) ** 2 * pmf)))
    assert abs(cols["age"].mean() - mean) <= Z * sd / np.sqrt(N)
    # The clipped tails pile up on the bounds exactly as the profile says.
    within_rate(cols["age"] == ages[0], float(pmf[0]), "age at lower bound")
    within_rate(cols["age"] == ages[-1], float(pmf[-1]), "age at upper bound")


def test_bmi_mean_matches_the_clipped_normal(
    sample: tuple[Profile, dict[str, np.ndarray]],
) -> None:
    profile, cols = sample
    b = profile.bmi
    expected = clipped_normal_mean(b.mean, b.sd, b.low, b.high)
    # + 1e-3: rounding to 0.1 shifts the mean by far less than that for a smooth density.
    assert abs(cols["bmi"].mean() - expected) <= Z * b.sd / np.sqrt(N) + 1e-3
    assert cols["bmi"].std() == pytest.approx(b.sd, rel=0.05)


def test_cancer_rate_matches_the_exact_expectation(
    sample: tuple[Profile, dict[str, np.ndarray]],
) -> None:
    profile, cols = sample
    within_rate(cols["diagnosis_cancer"], profile.expected_prevalence(), f"{profile.node} cancer")


def test_risk_follows_the_logit_coefficients(
    sample: tuple[Profile, dict[str, np.ndarray]],
) -> None:
    """Within each allele count, the rate matches the model conditioned on that count."""
    profile, cols = sample
    for gene in GENES:
        for count in (0, 2):
            one_hot = tuple(1.0 if k == count else 0.0 for k in range(3))
            given = replace(profile, alleles={**profile.alleles, gene: one_hot})
            rows = cols[f"variant_{gene}"] == count
            within_rate(cols["diagnosis_cancer"][rows], given.expected_prevalence(),
                        f"{profile.node} cancer | {gene}={count}")


def test_same_seed_same_data_other_seed_other_data() -> None:
    us = find_profile("us")
    a, b, c = generate(us, 3000, seed=1), generate(us, 3000, seed=1), generate(us, 3000, seed=2)
    assert a.equals(b)
    assert not a.equals(c)
    assert a["patient_id"].equals(c["patient_id"])  # ids are positions, not random


def test_output_does_not_depend_on_the_chunk_size() -> None:
    us = find_profile("us")
    rows = 2 * BLOCK_ROWS + 1234  # crosses block boundaries inside chunks
    reference = generate(us, rows, chunk_rows=rows)
    for chunk_rows in (1000, 7777, BLOCK_ROWS, BLOCK_ROWS + 1):
        assert generate(us, rows, chunk_rows=chunk_rows).equals(reference), chunk_rows


def test_a_larger_run_extends_a_smaller_one() -> None:
    us = find_profile("us")
    small, large = generate(us, 70_000), generate(us, 140_000)
    assert large.slice(0, 70_000).equals(small)


def test_nodes_with_the_same_seed_get_independent_streams() -> None:
    us = find_profile("us")
    twin = replace(us, node="sg", id_prefix="SG")  # same parameters, other node
    a, b = generate(us, 5000), generate(twin, 5000)
    assert not np.array_equal(a["age"].to_numpy(), b["age"].to_numpy())
    corr = np.corrcoef(a["bmi"].to_numpy(), b["bmi"].to_numpy())[0, 1]
    assert abs(corr) < Z / np.sqrt(5000)


def test_batches_have_the_table_schema_and_chunk_sizes() -> None:
    batches = list(generate_batches(find_profile("eu"), 25_000, 3, chunk_rows=10_000))
    assert [b.num_rows for b in batches] == [10_000, 10_000, 5_000]
    for batch in batches:
        assert batch.schema == PATIENT_GENOMIC_DATA.arrow_schema()
        assert batch.schema.names == [
            "patient_id", "age", "variant_brca1", "variant_tp53", "variant_apoe4", "bmi",
            "diagnosis_cancer",
        ]


def test_ids_are_unique_and_well_formed_beyond_9999() -> None:
    ids = generate(find_profile("eu"), 12_345)["patient_id"].to_pylist()
    assert ids[:2] == ["EU-0001", "EU-0002"]
    assert ids[9998:10001] == ["EU-9999", "EU-10000", "EU-10001"]
    assert ids[-1] == "EU-12345"
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"EU-(\d{4}|[1-9]\d{4,})", i) for i in ids)
    assert [int(i[3:]) for i in ids] == list(range(1, 12_346))


def test_ids_across_digit_boundaries() -> None:
    ids = patient_ids("SG", 999_997, 5)
    ids.validate(full=True)
    assert ids.to_pylist() == ["SG-999998", "SG-999999", "SG-1000000", "SG-1000001", "SG-1000002"]


@pytest.mark.parametrize(
    ("rows", "seed", "chunk", "message"),
    [(0, 1, 10, "--rows 0"), (-5, 1, 10, "--rows -5"), (10, -1, 10, "--seed -1"),
     (10, 1, 0, "--chunk-rows 0")],
)
def test_bad_counts_are_user_errors(rows: int, seed: int, chunk: int, message: str) -> None:
    with pytest.raises(UserError, match=message):
        next(generate_batches(find_profile("us"), rows, seed, chunk_rows=chunk))
