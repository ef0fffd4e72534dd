"""Every key and consistency rule of the robotics domain as SQL over the node's warehouse.

Each check counts the rows that break its rule; a consistent fleet scores 0 everywhere.
The tests run them all on a small generated fleet, and break the data on purpose to show
that each one fires. `robotics summary` reports them too.
"""

from __future__ import annotations

from collections.abc import Iterable

from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.contracts.tables.robotics import (
    PERFORMED_STATUSES,
    PROCEDURE_OUTCOMES,
    PROCEDURE_TELEMETRY,
    ROBOT_MAINTENANCE_LOGS,
    ROBOTICS,
    SURGICAL_PROCEDURES,
    SURGICAL_ROBOTS,
    UNIQUE_COLUMNS,
)
from workloads.warehouse.base import Warehouse

PERFORMED = "(" + ", ".join(f"'{s}'" for s in PERFORMED_STATUSES) + ")"
# A complication shows in the telemetry as a tissue-force spike well above the baseline.
SPIKE_N = 6.0

_RULES: dict[str, str] = {
    "patient is the node's own, with its age": """
        SELECT count(*) FROM {procedures} p LEFT JOIN {patients} g ON g.patient_id = p.patient_id
        WHERE g.patient_id IS NULL OR g.age <> p.patient_age""",
    "patient's gender is the same in every procedure": """
        SELECT count(*) FROM (SELECT patient_id FROM {procedures} GROUP BY patient_id
                              HAVING count(DISTINCT patient_gender) > 1)""",
    "performed procedures have an end after their start and the matching duration": f"""
        SELECT count(*) FROM {{procedures}} WHERE status IN {PERFORMED} AND (end_time IS NULL
          OR end_time <= start_time OR abs(duration_minutes
             - epoch(end_time - start_time) / 60.0) > 0.01)""",
    "procedures not performed have no end, duration or telemetry": f"""
        SELECT count(*) FROM {{procedures}} p WHERE status NOT IN {PERFORMED} AND (
          end_time IS NOT NULL OR duration_minutes IS NOT NULL
          OR EXISTS (SELECT 1 FROM {{telemetry}} t WHERE t.procedure_id = p.procedure_id))""",
    "an outcome exists exactly for performed procedures": f"""
        SELECT count(*) FROM {{procedures}} p FULL JOIN {{outcomes}} o
          ON o.procedure_id = p.procedure_id
        WHERE (p.status IN {PERFORMED}) IS DISTINCT FROM (o.procedure_id IS NOT NULL)""",
    "no procedure before installation or on or after retirement": """
        SELECT count(*) FROM {procedures} p JOIN {robots} r ON r.robot_id = p.robot_id
        WHERE CAST(p.start_time AS DATE) < r.installation_date
           OR (r.retired_date IS NOT NULL AND CAST(p.start_time AS DATE) >= r.retired_date)""",
    "no procedure performed while its robot is under maintenance": f"""
        SELECT count(*) FROM {{procedures}} p JOIN {{maintenance}} m ON m.robot_id = p.robot_id
        WHERE p.status IN {PERFORMED} AND p.start_time < m.started_at
              + to_microseconds(CAST(m.downtime_hours * 3600e6 AS BIGINT))
          AND p.end_time > m.started_at""",
    "no two performed procedures overlap on one robot": f"""
        SELECT count(*) FROM {{procedures}} a JOIN {{procedures}} b
          ON a.robot_id = b.robot_id AND a.procedure_id < b.procedure_id
        WHERE a.status IN {PERFORMED} AND b.status IN {PERFORMED}
          AND a.start_time < b.end_time AND b.start_time < a.end_time""",
    "robot total_procedures is its count of performed procedures": f"""
        SELECT count(*) FROM {{robots}} r LEFT JOIN (SELECT robot_id, count(*) AS n
          FROM {{procedures}} WHERE status IN {PERFORMED} GROUP BY robot_id) p
          ON p.robot_id = r.robot_id
        WHERE r.total_procedures <> coalesce(p.n, 0)""",
    "robot last_maintenance_date is its latest maintenance": """
        SELECT count(*) FROM {robots} r LEFT JOIN (SELECT robot_id,
          max(maintenance_date) AS d FROM {maintenance} GROUP BY robot_id) m
          ON m.robot_id = r.robot_id
        WHERE r.last_maintenance_date IS DISTINCT FROM m.d""",
    "robot status matches retirement and the maintenance at the snapshot": """
        SELECT count(*) FROM {robots} r
        WHERE (r.status = 'retired') <> (r.retired_date IS NOT NULL)
           OR (r.status <> 'retired' AND (r.status = 'maintenance') <> EXISTS (
               SELECT 1 FROM {maintenance} m WHERE m.robot_id = r.robot_id
               AND m.started_at <= r.updated_at AND r.updated_at < m.started_at
                   + to_microseconds(CAST(m.downtime_hours * 3600e6 AS BIGINT))))""",
    "emergency maintenance follows a procedure of the same robot": """
        SELECT count(*) FROM {maintenance} m LEFT JOIN {procedures} p
          ON p.procedure_id = m.trigger_procedure_id
        WHERE (m.maintenance_type = 'emergency') <> (m.trigger_procedure_id IS NOT NULL)
           OR (m.trigger_procedure_id IS NOT NULL AND (p.robot_id <> m.robot_id
               OR p.end_time > m.started_at))""",
    "maintenance date is the day it started and next maintenance is later": """
        SELECT count(*) FROM {maintenance} WHERE next_maintenance_date <= maintenance_date
          OR started_at < CAST(maintenance_date AS TIMESTAMPTZ) - INTERVAL 1 DAY
          OR started_at > CAST(maintenance_date AS TIMESTAMPTZ) + INTERVAL 2 DAY""",
    "success status follows complications and aborts": """
        SELECT count(*) FROM {outcomes} o JOIN {procedures} p ON p.procedure_id = o.procedure_id
        WHERE (o.success_status = 'successful') <> (len(o.complications) = 0
                                                   AND p.status = 'completed')
           OR (p.status = 'aborted' AND o.success_status <> 'failed')""",
    "telemetry lies within its procedure and its date is the sample's UTC day": """
        SELECT count(*) FROM {telemetry} t JOIN {procedures} p ON p.procedure_id = t.procedure_id
        WHERE t.timestamp < p.start_time OR t.timestamp > p.end_time
           OR t.date <> CAST(timezone('UTC', t.timestamp) AS DATE)""",
    "complications show as force spikes and only they do": f"""
        SELECT count(*) FROM {{outcomes}} o JOIN (SELECT procedure_id, max(sqrt(
            force_feedback_x ^ 2 + force_feedback_y ^ 2 + force_feedback_z ^ 2)) AS peak
          FROM {{telemetry}} GROUP BY procedure_id) f ON f.procedure_id = o.procedure_id
        WHERE (len(o.complications) > 0) <> (f.peak > {SPIKE_N})""",
}


def _key_rules() -> dict[str, str]:
    rules: dict[str, str] = {}
    for table in ROBOTICS.tables:
        for cols in (table.primary_key, *((c,) for c in UNIQUE_COLUMNS.get(table.name, ()))):
            key = ", ".join(cols)
            rules[f"{table.name}: {key} is unique and not null"] = (
                f"SELECT count(*) - count(DISTINCT ({key})) + count(*) FILTER (WHERE "
                + " OR ".join(f"{c} IS NULL" for c in cols) + f") FROM {{{table.name}}}")
        for fk in table.foreign_keys:
            on = " AND ".join(f"p.{r} = c.{c}" for c, r in zip(fk.columns, fk.referenced,
                                                                strict=True))
            rules[f"{table.name}: {', '.join(fk.columns)} references {fk.table}"] = (
                f"SELECT count(*) FROM {{{table.name}}} c LEFT JOIN {{{fk.table}}} p ON {on} "
                f"WHERE c.{fk.columns[0]} IS NOT NULL AND p.{fk.referenced[0]} IS NULL")
        for col in table.columns:
            if col.bounds is not None:
                low, high = col.bounds
                rules[f"{table.name}.{col.name} within its public bounds {low:g}-{high:g}"] = (
                    f"SELECT count(*) FROM {{{table.name}}} "
                    f"WHERE {col.name} < {low} OR {col.name} > {high}")
            if col.levels and col.mode != "REPEATED":
                levels = ", ".join(f"'{v}'" for v in col.levels)
                rules[f"{table.name}.{col.name} is one of its levels"] = (
                    f"SELECT count(*) FROM {{{table.name}}} WHERE {col.name} NOT IN ({levels})")
            elif col.levels:
                levels = ", ".join(f"'{v}'" for v in col.levels)
                rules[f"{table.name}.{col.name} holds only its levels"] = (
                    f"SELECT count(*) FROM {{{table.name}}} "
                    f"WHERE len(list_filter({col.name}, x -> x NOT IN ({levels}))) > 0")
    return rules


RULES: dict[str, str] = {**_key_rules(), **_RULES}


def run_checks(warehouse: Warehouse, only: Iterable[str] | None = None) -> dict[str, int]:
    """Rule -> number of rows breaking it (0 everywhere for a consistent fleet); `only`
    names the rules to run (default: all)."""
    refs = {
        "robots": warehouse.table_ref(SURGICAL_ROBOTS),
        "procedures": warehouse.table_ref(SURGICAL_PROCEDURES),
        "outcomes": warehouse.table_ref(PROCEDURE_OUTCOMES),
        "maintenance": warehouse.table_ref(ROBOT_MAINTENANCE_LOGS),
        "telemetry": warehouse.table_ref(PROCEDURE_TELEMETRY),
        "patients": warehouse.table_ref(PATIENT_GENOMIC_DATA),
        **{t.name: warehouse.table_ref(t) for t in ROBOTICS.tables},
    }
    names = list(RULES) if only is None else list(only)
    return {name: int(warehouse.query(RULES[name].format(**refs)).column(0)[0].as_py())
            for name in names}
