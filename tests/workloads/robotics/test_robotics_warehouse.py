"""The fleet in a node's encrypted warehouse: every rule holds, each check catches what it
is for, the keys are enforced, re-runs are idempotent, a crash leaves the old fleet."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest

from workloads.contracts.errors import UserError
from workloads.contracts.tables.robotics import PROCEDURE_TELEMETRY, ROBOTICS
from workloads.local_node import LocalNode
from workloads.objectstore.folder import FolderStore
from workloads.robotics import run as run_module
from workloads.robotics.checks import RULES, run_checks
from workloads.robotics.profile import FleetConfig, FleetProfile
from workloads.robotics.run import generate_fleet, write_lake
from workloads.robotics.telemetry import telemetry_chunks
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

from .conftest import SMALL, add_patients

Stressed = tuple[FleetProfile, FleetConfig, Path]


class _RollbackError(Exception):
    pass


def test_every_key_and_rule_holds(warehouse: DuckDBWarehouse) -> None:
    results = run_checks(warehouse)
    assert len(results) == len(RULES) > 40
    assert {rule: n for rule, n in results.items() if n} == {}


def test_the_stress_fleet_exercises_every_rule(warehouse: DuckDBWarehouse) -> None:
    def one(sql: str) -> int:
        return int(warehouse.query(sql).column(0)[0].as_py())

    robots, procs, logs = (warehouse.table_ref(n) for n in (
        "surgical_robots", "surgical_procedures", "robot_maintenance_logs"))
    assert one(f"SELECT count(*) FROM {robots} WHERE status = 'retired'") > 0
    assert one(f"SELECT count(*) FROM {robots} WHERE status = 'maintenance'") > 0
    assert one(f"SELECT count(*) FROM {logs} WHERE maintenance_type = 'emergency'") > 0
    assert one(f"SELECT count(*) FROM {procs} WHERE status = 'aborted'") > 0
    assert one(f"SELECT count(*) FROM {procs} WHERE status = 'cancelled'") > 0


# Each corruption breaks one rule; the check named must count it.
CORRUPTIONS = {
    "robot total_procedures is its count of performed procedures":
        "UPDATE {surgical_robots} SET total_procedures = total_procedures + 1 "
        "WHERE robot_id = (SELECT min(robot_id) FROM {surgical_robots})",
    "robot last_maintenance_date is its latest maintenance":
        "UPDATE {surgical_robots} SET last_maintenance_date = DATE '2000-01-01' "
        "WHERE robot_id = (SELECT min(robot_id) FROM {surgical_robots})",
    "no procedure performed while its robot is under maintenance":
        "UPDATE {robot_maintenance_logs} SET started_at = (SELECT start_time FROM "
        "{surgical_procedures} p WHERE p.robot_id = {robot_maintenance_logs}.robot_id AND "
        "p.status = 'completed' ORDER BY p.start_time LIMIT 1) "
        "WHERE maintenance_id = (SELECT min(maintenance_id) FROM {robot_maintenance_logs} m "
        "WHERE maintenance_type <> 'emergency' AND EXISTS (SELECT 1 FROM {surgical_procedures} "
        "p WHERE p.robot_id = m.robot_id AND p.status = 'completed'))",
    "no procedure before installation or on or after retirement":
        "UPDATE {surgical_robots} SET installation_date = DATE '2030-01-01' "
        "WHERE robot_id = (SELECT min(robot_id) FROM {surgical_procedures})",
    "an outcome exists exactly for performed procedures":
        "UPDATE {surgical_procedures} SET status = 'cancelled' WHERE procedure_id = "
        "(SELECT min(procedure_id) FROM {procedure_outcomes})",
    "success status follows complications and aborts":
        "UPDATE {procedure_outcomes} SET success_status = 'successful' "
        "WHERE len(complications) > 0",
    "complications show as force spikes and only they do":
        "UPDATE {procedure_outcomes} SET complications = ['ileus'], success_status = "
        "'complicated' WHERE outcome_id = (SELECT min(outcome_id) FROM {procedure_outcomes} "
        "WHERE len(complications) = 0)",
    "patient is the node's own, with its age":
        "UPDATE {surgical_procedures} SET patient_age = patient_age + 1 "
        "WHERE procedure_id = (SELECT min(procedure_id) FROM {surgical_procedures})",
    "telemetry lies within its procedure and its date is the sample's UTC day":
        "UPDATE {procedure_telemetry} SET timestamp = timestamp + INTERVAL 1 DAY "
        "WHERE telemetry_id = (SELECT max(telemetry_id) FROM {procedure_telemetry})",
    "procedure_telemetry: telemetry_id is unique and not null":
        "INSERT INTO {procedure_telemetry} SELECT * FROM {procedure_telemetry} LIMIT 1",
    "procedure_telemetry: procedure_id references surgical_procedures":
        "UPDATE {procedure_telemetry} SET procedure_id = 'US-P999999' "
        "WHERE telemetry_id = (SELECT max(telemetry_id) FROM {procedure_telemetry})",
    "procedure_telemetry.grip_pressure within its public bounds 0-30":
        "UPDATE {procedure_telemetry} SET grip_pressure = 31 "
        "WHERE telemetry_id = (SELECT max(telemetry_id) FROM {procedure_telemetry})",
    "procedure_telemetry.tool_type is one of its levels":
        "UPDATE {procedure_telemetry} SET tool_type = 'laser' "
        "WHERE telemetry_id = (SELECT max(telemetry_id) FROM {procedure_telemetry})",
    "emergency maintenance follows a procedure of the same robot":
        "UPDATE {robot_maintenance_logs} SET maintenance_type = 'emergency' "
        "WHERE maintenance_id = (SELECT min(maintenance_id) FROM {robot_maintenance_logs} "
        "WHERE maintenance_type = 'routine')",
    "robot status matches retirement and the maintenance at the snapshot":
        "UPDATE {surgical_robots} SET status = 'operational' WHERE status = 'maintenance'",
    "no two performed procedures overlap on one robot":
        "UPDATE {surgical_procedures} SET end_time = end_time + INTERVAL 400 DAY, "
        "duration_minutes = duration_minutes + 576000 WHERE procedure_id = (SELECT "
        "min(procedure_id) FROM {surgical_procedures} WHERE status = 'completed')",
}


@pytest.mark.parametrize("rule", sorted(CORRUPTIONS))
def test_each_check_catches_its_violation(warehouse: DuckDBWarehouse, rule: str) -> None:
    assert rule in RULES
    refs = {t.name: warehouse.table_ref(t) for t in ROBOTICS.tables}
    with pytest.raises(_RollbackError), warehouse.transaction() as con:
        con.execute(CORRUPTIONS[rule].format(**refs))
        assert run_checks(warehouse, [rule])[rule] > 0, rule
        raise _RollbackError  # leave the module's fleet as it was
    assert run_checks(warehouse, [rule])[rule] == 0


@pytest.mark.parametrize("sql", [
    "INSERT INTO {surgical_robots} SELECT * FROM {surgical_robots} LIMIT 1",
    "UPDATE {surgical_robots} SET robot_serial_number = 'X' WHERE robot_id IN "
    "(SELECT robot_id FROM {surgical_robots} ORDER BY robot_id LIMIT 2)",
    "UPDATE {procedure_outcomes} SET procedure_id = 'US-P999999' WHERE outcome_id = "
    "(SELECT min(outcome_id) FROM {procedure_outcomes})",
    "INSERT INTO {procedure_outcomes} SELECT * REPLACE ('US-O999999' AS outcome_id) "
    "FROM {procedure_outcomes} LIMIT 1",
])
def test_the_warehouse_enforces_keys(warehouse: DuckDBWarehouse, sql: str) -> None:
    refs = {t.name: warehouse.table_ref(t) for t in ROBOTICS.tables}
    with pytest.raises(duckdb.ConstraintException), warehouse.transaction() as con:
        con.execute(sql.format(**refs))


def test_rerun_is_idempotent_and_a_new_seed_replaces(stressed: Stressed) -> None:
    profile, config, root = stressed
    again = generate_fleet(profile, config, seed=7, root=root, progress=False)
    assert not again.changed
    other = generate_fleet(profile, config, seed=8, root=root, progress=False)
    assert other.changed
    with LocalNode("us", root).open_warehouse(create=False) as wh:
        assert {r: n for r, n in run_checks(wh).items() if n} == {}
        counts = {t.name: wh.query(f"SELECT count(*) FROM {wh.table_ref(t)}").column(0)[0]
                  .as_py() for t in ROBOTICS.tables}
    assert counts == other.rows  # replaced, not added to
    back = generate_fleet(profile, config, seed=7, root=root, progress=False)
    assert back.changed and back.rows == again.rows


def test_a_crash_mid_load_leaves_the_old_fleet(stressed: Stressed,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    profile, config, root = stressed
    with LocalNode("us", root).open_warehouse(create=False) as wh:
        before = wh.query(f"SELECT * FROM {wh.table_ref('surgical_procedures')} ORDER BY 1")

    def crash(*args: object, **kwargs: object) -> object:
        real = telemetry_chunks(*args, **kwargs)  # type: ignore[arg-type]
        yield next(real)
        raise RuntimeError("disk full")

    monkeypatch.setattr(run_module, "telemetry_chunks", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_fleet(profile, config, seed=99, root=root, chunk_rows=1000, progress=False)
    with LocalNode("us", root).open_warehouse(create=False) as wh:
        after = wh.query(f"SELECT * FROM {wh.table_ref('surgical_procedures')} ORDER BY 1")
        assert after.equals(before)
        assert {r: n for r, n in run_checks(wh).items() if n} == {}
    assert not generate_fleet(profile, config, seed=7, root=root, progress=False).changed
    with LocalNode("us", root).open_warehouse(create=False) as wh:
        tables = wh.query("SELECT table_name FROM duckdb_tables()").column(0).to_pylist()
    assert run_module.STAGING not in tables  # the crash's staging table is gone


def test_a_node_without_patients_gets_the_fix(stressed: Stressed, tmp_path: Path) -> None:
    profile, config, _ = stressed
    with pytest.raises(UserError, match=r"no warehouse .*fix: "):
        generate_fleet(profile, config, seed=1, root=tmp_path, progress=False)
    LocalNode("us", tmp_path).open_warehouse().close()  # a warehouse, but no patients
    with pytest.raises(UserError, match=r"no patients .*fix: generate them first"):
        generate_fleet(profile, config, seed=1, root=tmp_path, progress=False)


def test_lake_is_hive_partitioned_parquet_with_the_tables_columns(
        stressed: Stressed, tmp_path: Path) -> None:
    profile, config, root = stressed
    store = FolderStore(tmp_path / "bucket")
    from workloads.robotics.fleet import build_fleet
    from workloads.robotics.run import read_patients

    with LocalNode("us", root).open_warehouse(create=False) as wh:
        fleet = build_fleet(profile, config, read_patients(wh, "us"), 7)
        local = wh.query(f"SELECT * FROM {wh.table_ref(PROCEDURE_TELEMETRY)} "
                         "ORDER BY telemetry_id")
    for chunk in telemetry_chunks(fleet.plans, config.hz, 7, "us", chunk_rows=50_000):
        write_lake(store, "us", chunk)
    keys = store.list("robotics/telemetry/")
    assert keys and all(k.split("/")[2].startswith("date=") for k in keys)
    lake = ds.dataset(tmp_path / "bucket" / "robotics" / "telemetry", format="parquet",
                      partitioning="hive", schema=PROCEDURE_TELEMETRY.arrow_schema())
    table = lake.to_table().sort_by("telemetry_id")
    assert table.num_rows == local.num_rows
    assert table.equals(local.cast(table.schema))


def test_more_procedures_than_patients_reuse_patients(tmp_path: Path,
                                                      stressed: Stressed) -> None:
    profile = stressed[0]
    add_patients(tmp_path, "us", rows=20)
    config = profile.config(**{**SMALL, "procedures": 60, "hz": 1.0})
    result = generate_fleet(profile, config, seed=2, root=tmp_path, progress=False)
    assert result.rows["surgical_procedures"] == 60
