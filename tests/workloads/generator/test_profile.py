"""Profiles: the seed's values as data, validation naming file/key/fix, solved intercepts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from workloads.contracts.errors import UserError
from workloads.generator.profile import (
    expected_prevalence,
    find_profile,
    load_profile,
    solve_intercept,
)

WriteProfile = Callable[..., Path]  # the write_profile fixture (conftest.py)


def test_builtin_profiles_carry_the_seeds_parameters() -> None:
    us, eu = find_profile("us"), find_profile("eu")
    assert (us.id_prefix, us.age.mean, us.bmi.mean) == ("US", 52.0, 28.5)
    assert (eu.id_prefix, eu.age.mean, eu.bmi.mean) == ("EU", 48.0, 25.0)
    assert us.alleles["brca1"] == (0.85, 0.12, 0.03)
    assert eu.alleles["brca1"] == (0.92, 0.06, 0.02)
    for p in (us, eu):
        assert (p.age.sd, p.bmi.sd, p.age.low, p.age.high) == (12.0, 4.0, 25, 80)
        assert (p.bmi.low, p.bmi.high) == (18.5, 40.0)
        assert p.alleles["tp53"] == (0.90, 0.08, 0.02)
        assert p.alleles["apoe4"] == (0.80, 0.15, 0.05)
        assert p.intercept == -3.0 and p.target_prevalence is None
        assert dict(p.coefficients) == {"age": 0.03, "brca1": 0.8, "tp53": 0.5, "apoe4": 0.0}
        assert p.age_center == 50.0


def test_seed_formula_gives_about_7_and_5_percent_not_15_and_10() -> None:
    # The seed's verification table claims ~15% (US) and ~10% (EU) under this formula.
    assert find_profile("us").expected_prevalence() == pytest.approx(0.0684, abs=5e-4)
    assert find_profile("eu").expected_prevalence() == pytest.approx(0.0567, abs=5e-4)


def test_age_distribution_is_exact() -> None:
    profile = find_profile("us")
    ages, p = profile.age_pmf()
    assert ages[0] == 25 and ages[-1] == 80 and p.sum() == pytest.approx(1.0, abs=1e-12)
    assert p[0] == pytest.approx(norm.cdf(26, 52, 12))  # everything below 26 floors/clips to 25
    assert p[-1] == pytest.approx(norm.sf(80, 52, 12))
    assert p[30] == pytest.approx(norm.cdf(56, 52, 12) - norm.cdf(55, 52, 12))  # age 55


def test_target_prevalence_is_solved_for_the_intercept(write_profile: WriteProfile) -> None:
    path = write_profile("sg", {"intercept = -3.0 ": "target_prevalence = 0.15"})
    profile = load_profile(path)
    assert profile.target_prevalence == 0.15
    assert profile.expected_prevalence() == pytest.approx(0.15, abs=1e-10)
    assert -3.0 < profile.intercept < 0.0
    # Deterministic: the same file always gives the same intercept.
    assert load_profile(path).intercept == profile.intercept


def test_solver_recovers_the_seed_intercept() -> None:
    us = find_profile("us")
    assert solve_intercept(us, expected_prevalence(us, -3.0)) == pytest.approx(-3.0, abs=1e-9)
    rates = [expected_prevalence(us, b) for b in np.linspace(-6, 2, 9)]
    assert rates == sorted(rates)  # monotone, so the root is unique


def test_new_node_is_just_a_file(write_profile: WriteProfile) -> None:
    path = write_profile("sg", {"mean = 52.0": "mean = 45.0"})
    profile = find_profile("sg", path.parent)
    assert (profile.node, profile.id_prefix, profile.age.mean) == ("sg", "SG", 45.0)
    assert profile.source == path


def test_profile_dir_overrides_builtin(write_profile: WriteProfile) -> None:
    path = write_profile("us", {"mean = 52.0": "mean = 60.0"})
    assert find_profile("us", path.parent).age.mean == 60.0
    assert find_profile("us").age.mean == 52.0


def test_unknown_node_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown node 'jp'.*known: eu, sg, us.*--profile-dir"):
        find_profile("jp")
    with pytest.raises(UserError, match=r"profile folder .* does not exist"):
        find_profile("us", tmp_path / "missing")


BAD = [
    ({"brca1 = [0.85, 0.12, 0.03]": "brca1 = [0.85, 0.12, 0.04]"},
     r"alleles\.brca1: .*sum to 1\.01"),
    ({"brca1 = [0.85, 0.12, 0.03]": "brca1 = [0.85, 0.15]"}, r"alleles\.brca1: .*list of 3"),
    ({"tp53 = [0.90, 0.08, 0.02]": "tp53 = [1.1, -0.1, 0.0]"}, r"alleles\.tp53: .*outside"),
    ({"sd = 12.0": "sd = 0"}, r"age\.sd: 0\.0 is not > 0"),
    ({"sd = 4.0": "sd = -1.5"}, r"bmi\.sd: -1\.5 is not > 0"),
    ({"min = 25": "min = 90"}, r"age\.min/max: min 90\.0 is not below max 80\.0"),
    ({"min = 25": "min = 25.5"}, r"age\.min/max: must be whole numbers"),
    ({"max = 40.0": "max = 18.0"}, r"bmi\.min/max: .*not below"),
    # The columns' public bounds (workloads/contracts/tables/genomics.py) bound every profile.
    ({"min = 25": "min = 18"},
     r"age\.min/max: \[18, 80\] leaves the public bounds \[25, 80\] of patient_genomic_data"),
    ({"max = 40.0": "max = 45.0"},
     r"bmi\.min/max: \[18\.5, 45\] leaves the public bounds \[18\.5, 40\] of "),
    ({"intercept = -3.0 ": "target_prevalence = 0.2\nintercept = -3.0 "},
     r"diagnosis: needs exactly one of intercept and target_prevalence"),
    ({"intercept = -3.0 ": "# no intercept "}, r"diagnosis: needs exactly one"),
    ({"intercept = -3.0 ": "target_prevalence = 1.5"}, r"target_prevalence: 1\.5 is not in"),
    ({"intercept = -3.0 ": 'intercept = "low"'}, r"diagnosis\.intercept: 'low' is not a finite"),
    ({"age = 0.03": "agee = 0.03"}, r"diagnosis\.agee: unknown key"),
    ({'description = "United States (HIPAA)"': "colour = 1"}, r"colour: unknown key"),
    ({"[bmi]": "[bmi_x]"}, r"bmi_x: unknown key"),
    ({"mean = 28.5": "mean = nan"}, r"bmi\.mean: nan is not a finite number"),
    ({"[alleles]": "[alleles"}, r"not valid TOML"),
]


@pytest.mark.parametrize(("replace", "message"), BAD)
def test_bad_profiles_name_file_key_and_fix(
    write_profile: WriteProfile, replace: dict[str, str], message: str
) -> None:
    path = write_profile("sg", replace)
    with pytest.raises(UserError, match=message) as err:
        load_profile(path)
    text = str(err.value)
    assert str(path) in text and "fix:" in text and "\n" not in text


def test_probabilities_may_be_off_by_rounding_only(write_profile: WriteProfile) -> None:
    near = write_profile("sg", {"0.12, 0.03]": "0.12, 0.0300000000005]"})
    assert load_profile(near).alleles["brca1"][2] == 0.0300000000005
    far = write_profile("sg", {"0.12, 0.03]": "0.12, 0.030000001]"})
    with pytest.raises(UserError, match="not 1"):
        load_profile(far)


def test_bad_prefix_and_file_name(write_profile: WriteProfile, tmp_path: Path) -> None:
    path = write_profile("sg", {'id_prefix = "SG"': 'id_prefix = "sg-1"'})
    with pytest.raises(UserError, match=r"id_prefix: 'sg-1' is not 1-8 capital"):
        load_profile(path)
    odd = tmp_path / "Bad-Name.toml"
    odd.write_text((path.parent / "sg.toml").read_text())
    with pytest.raises(UserError, match="the file name 'Bad-Name' is the node name"):
        load_profile(odd)
    with pytest.raises(UserError, match="does not exist"):
        load_profile(tmp_path / "nope.toml")


def test_profile_checks_follow_the_column_contract(
    write_profile: WriteProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bounds are read from the table's columns, not restated: narrow a column's public
    bounds and a profile that was fine is refused."""
    from dataclasses import replace as with_changes

    import workloads.generator.profile as profile_module
    from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA

    age = PATIENT_GENOMIC_DATA.column("age")
    assert (age.bounds, PATIENT_GENOMIC_DATA.column("bmi").bounds) == ((25, 80), (18.5, 40.0))
    assert profile_module.GENES == ("brca1", "tp53", "apoe4")
    assert len(PATIENT_GENOMIC_DATA.column("variant_tp53").levels) == profile_module.ALLELE_COUNTS
    path = write_profile("sg")
    load_profile(path)
    narrower = {**profile_module._RANGE_COLUMNS, "age": with_changes(age, bounds=(30, 80))}
    monkeypatch.setattr(profile_module, "_RANGE_COLUMNS", narrower)
    with pytest.raises(UserError, match=r"public bounds \[30, 80\]"):
        load_profile(path)
