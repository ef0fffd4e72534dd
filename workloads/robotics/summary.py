"""`robotics summary`: a node's fleet in a few lines, every number computed by SQL inside
that node's own warehouse, with the consistency checks' verdict."""

from __future__ import annotations

from pathlib import Path

from workloads.contracts.errors import UserError
from workloads.contracts.tables.robotics import (
    PROCEDURE_OUTCOMES,
    PROCEDURE_TELEMETRY,
    ROBOT_MAINTENANCE_LOGS,
    SURGICAL_PROCEDURES,
    SURGICAL_ROBOTS,
)
from workloads.local_node import LocalNode
from workloads.robotics.aggregate import ROW_LEVELS, node_cell_counts
from workloads.robotics.checks import run_checks
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse


def _counts(warehouse: DuckDBWarehouse, table: str, column: str) -> str:
    rows = warehouse.query(f"SELECT {column}, count(*) AS n FROM {warehouse.table_ref(table)} "
                           f"GROUP BY ALL ORDER BY n DESC, {column}").to_pylist()
    return ", ".join(f"{r[column]} {r['n']:,}" for r in rows) or "none"


def summarize_fleet(warehouse: DuckDBWarehouse) -> list[str]:
    tables = {r["table_name"] for r in warehouse.query(
        "SELECT table_name FROM duckdb_tables()").to_pylist()}
    if SURGICAL_ROBOTS.name not in tables:
        raise UserError(f"node {warehouse.node!r} has no robot fleet; fix: python -m workloads "
                        f"robotics generate --node {warehouse.node}")
    telemetry = warehouse.query(
        f"SELECT count(*) AS n, count(DISTINCT procedure_id) AS p, min(timestamp) AS a, "
        f"max(timestamp) AS b FROM {warehouse.table_ref(PROCEDURE_TELEMETRY)}").to_pylist()[0]
    lines = [
        f"node {warehouse.node}",
        f"  robots       {_counts(warehouse, SURGICAL_ROBOTS.name, 'status')}",
        f"  procedures   {_counts(warehouse, SURGICAL_PROCEDURES.name, 'status')}",
        f"  outcomes     {_counts(warehouse, PROCEDURE_OUTCOMES.name, 'success_status')}",
        f"  maintenance  {_counts(warehouse, ROBOT_MAINTENANCE_LOGS.name, 'maintenance_type')}",
        f"  telemetry    {telemetry['n']:,} samples over {telemetry['p']:,} procedures "
        f"({telemetry['a']} .. {telemetry['b']})",
        "  complication rate by robot model (performed procedures):",
    ]
    cells = node_cell_counts(warehouse)
    for i, model in enumerate(ROW_LEVELS):
        n = int(cells.counts["procedures"][i].sum())
        if n:
            c = int(cells.counts["with_complications"][i].sum())
            lines.append(f"    {model:<12} {c:>5,} / {n:>6,} = {c / n:6.1%}")
    failed = {rule: n for rule, n in run_checks(warehouse).items() if n}
    if failed:
        lines.append(f"  checks       {len(failed)} rules broken:")
        lines += [f"    {n:,} rows: {rule}" for rule, n in failed.items()]
    else:
        lines.append("  checks       every key and consistency rule holds")
    return lines


def summarize_node(root: Path, node: str) -> list[str]:
    with LocalNode(node, root).open_warehouse(create=False) as warehouse:
        return summarize_fleet(warehouse)
