"""The fleet generator without a warehouse: vocabulary, determinism, plausibility."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from workloads.contracts.catalogue import DOMAINS, table_named
from workloads.contracts.errors import UserError
from workloads.contracts.tables.robotics import (
    COMPLICATIONS,
    MANUFACTURERS,
    PROCEDURE_CATEGORIES,
    PROCEDURE_TELEMETRY,
    PROCEDURE_TYPES,
    ROBOT_MODELS,
    ROBOTICS,
    TOOLS,
)
from workloads.robotics.fleet import FEMALE_ONLY, MALE_ONLY, Patients, build_fleet
from workloads.robotics.profile import find_profile
from workloads.robotics.telemetry import procedure_columns, telemetry_chunks

PATIENTS = Patients([f"US-{i:04d}" for i in range(1, 501)],
                    np.random.default_rng(0).integers(25, 81, 500))


def test_vocabulary_is_the_issues() -> None:
    assert len(ROBOT_MODELS) == 10 and len(MANUFACTURERS) == 7
    assert sum(len(t) for t in PROCEDURE_TYPES.values()) == 27 and len(PROCEDURE_CATEGORIES) == 6
    assert len(TOOLS) == 8 and len(COMPLICATIONS) == 8  # plus "none" = the empty list
    assert ROBOTICS in DOMAINS and ROBOTICS.dataset == "surgical_robotics"
    assert table_named("procedure_telemetry") is PROCEDURE_TELEMETRY


def test_keys_and_external_table_are_declared() -> None:
    names = {t.name for t in ROBOTICS.tables}
    for table in ROBOTICS.tables:
        assert table.primary_key, table.name
        for fk in table.foreign_keys:
            assert fk.table in names
            assert table_named(fk.table).primary_key == fk.referenced
    ext = PROCEDURE_TELEMETRY.external
    assert ext is not None and ext.prefix == "robotics/telemetry/"
    assert ext.hive_partition_keys == ("date",)
    assert PROCEDURE_TELEMETRY.column_names[-1] == "date"


def test_views_are_bigquery_sql_over_the_dataset() -> None:
    import sqlglot

    for view in ROBOTICS.views:
        sql = view.sql.format(dataset="surgical_robotics")
        parsed = sqlglot.parse_one(sql, read="bigquery")
        tables = {t.name for t in parsed.find_all(sqlglot.exp.Table)}
        assert tables <= {t.name for t in ROBOTICS.tables}, view.name


def _fleet(seed: int = 3, node: str = "us", **overrides: object) -> object:
    profile = find_profile(node)
    settings = dict(robots=20, facilities=5, procedures=1500, maintenance=60)
    settings.update(overrides)  # type: ignore[arg-type]
    return build_fleet(profile, profile.config(**settings), PATIENTS, seed)


def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    a, b, c = _fleet(3), _fleet(3), _fleet(4)
    for (name, ta), (_, tb), (_, tc) in zip(a.tables(), b.tables(), c.tables(), strict=True):  # type: ignore[attr-defined]
        assert ta.equals(tb), name
        assert not ta.equals(tc), name


def test_us_and_eu_fleets_differ_by_profile() -> None:
    us = _fleet(node="us", robots=50, facilities=10, procedures=3000)
    eu = _fleet(node="eu", robots=50, facilities=10, procedures=3000)
    us_models = us.robots.column("robot_model").to_pylist()  # type: ignore[attr-defined]
    eu_models = eu.robots.column("robot_model").to_pylist()  # type: ignore[attr-defined]
    assert us_models.count("da Vinci Xi") > eu_models.count("da Vinci Xi")
    assert eu_models.count("Hugo RAS") + eu_models.count("Versius") > us_models.count(
        "Hugo RAS") + us_models.count("Versius")
    us_names = set(us.robots.column("facility_name").to_pylist())  # type: ignore[attr-defined]
    eu_names = set(eu.robots.column("facility_name").to_pylist())  # type: ignore[attr-defined]
    assert not us_names & eu_names
    profile = find_profile("us")
    for name in us_names:  # fictional: built from the profile's invented parts
        assert any(name.startswith(p) for p in profile.places)


def test_procedures_are_plausible() -> None:
    fleet = _fleet(robots=30, procedures=3000)
    procs = fleet.procedures.to_pandas()  # type: ignore[attr-defined]
    outs = fleet.outcomes.to_pandas()  # type: ignore[attr-defined]
    local = procs.start_time.dt.tz_convert("Etc/GMT+5")  # the US profile's UTC-5
    minutes = local.dt.hour * 60 + local.dt.minute
    assert ((minutes >= 7 * 60 + 30) & (minutes <= 16 * 60)).all()
    assert (local.dt.weekday < 5).all()
    assert set(procs.patient_id) <= set(PATIENTS.ids)
    gyn = procs[procs.procedure_type.isin(FEMALE_ONLY)]
    assert (gyn.patient_gender == "female").all() and len(gyn) > 0
    assert (procs[procs.procedure_type.isin(MALE_ONLY)].patient_gender == "male").all()
    done = procs[procs.status == "completed"]
    by_complexity = done.groupby(done.complexity_score.round())["duration_minutes"].mean()
    assert by_complexity.is_monotonic_increasing
    merged = outs.merge(procs, on="procedure_id")
    merged["bad"] = merged.success_status != "successful"
    rate = merged.groupby(merged.complexity_score >= 3.5)["bad"].mean()
    assert rate[True] > rate[False] + 0.03  # success falls with complexity
    robots = fleet.robots.to_pandas()  # type: ignore[attr-defined]
    assert (robots.status == "operational").mean() > 0.8


def test_bad_configuration_is_one_clear_error() -> None:
    profile = find_profile("us")
    for settings, text in (
        (dict(procedures=0), "--procedures 0"), (dict(robots=-1), "--robots -1"),
        (dict(start=dt.date(2024, 1, 1), end=dt.date(2023, 1, 1)), "--end"),
        (dict(models=("da Vinci Zz",)), "unknown robot model"), (dict(hz=0.5), "--hz"),
        (dict(hz=31.0), "--hz"),
    ):
        with pytest.raises(UserError, match=text) as info:
            profile.config(**settings)
        assert "; fix: " in str(info.value)
    with pytest.raises(UserError, match="more than the fleet can perform"):
        build_fleet(profile, profile.config(robots=1, facilities=1, procedures=5000,
                                            start=dt.date(2024, 1, 1),
                                            end=dt.date(2024, 1, 31)), PATIENTS, 1)


def test_telemetry_does_not_depend_on_chunking_or_neighbours() -> None:
    fleet = _fleet(robots=4, facilities=2, procedures=30, maintenance=4)
    plans = fleet.plans[:6]  # type: ignore[attr-defined]
    small = pa.concat_tables(list(telemetry_chunks(plans, 2.0, 3, "us", chunk_rows=1000)))
    large = pa.concat_tables(list(telemetry_chunks(plans, 2.0, 3, "us", chunk_rows=10**7)))
    assert small.equals(large)
    alone = pa.concat_tables(list(telemetry_chunks(plans[3:4], 2.0, 3, "us")))
    start = small.column("procedure_id").to_pylist().index(plans[3].procedure_id)
    assert alone.equals(small.slice(start, alone.num_rows))
    assert small.schema.equals(PROCEDURE_TELEMETRY.arrow_schema())


def test_telemetry_signals_are_physical() -> None:
    fleet = _fleet(robots=8, facilities=2, procedures=200, maintenance=8)
    plans = fleet.plans  # type: ignore[attr-defined]
    plan = next(p for p in plans if not p.complication_at_s and p.fault is None)
    cols = procedure_columns(plan, 10.0, 3, "us")
    assert len(cols["telemetry_id"]) == int(plan.duration_s * 10)
    step = np.abs(np.diff(cols["arm_position_x"]))
    assert np.percentile(step, 99) < 10.0  # smooth: under 100 mm/s nearly always
    temp = cols["system_temperature"]
    assert temp[-600:].mean() > temp[:600].mean() + 1.0  # warms up with use
    assert np.abs(cols["force_feedback_z"]).max() < 6.0  # no complication, no spike
    spiky = next(p for p in plans if p.complication_at_s)
    spike = procedure_columns(spiky, 10.0, 3, "us")
    force = np.sqrt(sum(spike[f"force_feedback_{a}"] ** 2 for a in "xyz"))
    at = int(spiky.complication_at_s[0] * 10)
    assert force[max(0, at - 20):at + 20].max() > 7.0
    hot = next((p for p in plans if p.fault == "controller overheating"), None)
    if hot is not None and hot.fault_at_s is not None:
        heat = procedure_columns(hot, 10.0, 3, "us")["system_temperature"]
        i = int(hot.fault_at_s * 10)
        assert heat[i] > heat[max(0, i - 1500)] + 10.0  # overheating before the fault


def test_sex_specific_procedures_need_a_patient_of_that_sex() -> None:
    profile = find_profile("us")
    one_patient = Patients(["US-0001"], np.array([50]))
    for seed in range(4):  # the patient's sex is drawn: both cases occur
        fleet = build_fleet(profile, profile.config(robots=5, facilities=1, procedures=200,
                                                    maintenance=3), one_patient, seed)
        procs = fleet.procedures.to_pandas()
        other = MALE_ONLY if procs.patient_gender.iloc[0] == "female" else FEMALE_ONLY
        assert not procs.procedure_type.isin(other).any()
