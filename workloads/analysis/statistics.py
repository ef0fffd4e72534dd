"""Descriptive statistics pushed down: counts, means and standard deviations, histograms on
public bins and cross-tabulations of declared categoricals, optionally split by a declared
categorical, within a cohort. One SQL aggregate per node returns one row of numbers.

Every number is a typed `Cell`: a count or a sum (or a sum of squares), with the most one
row can change it (its sensitivity, from the declared public bounds: numeric values are
clamped into them first). Small-cell suppression and DP noise are the federation guard's
job; it reads the kinds and sensitivities from here. Combined cells are sums of node cells.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlglot import exp

from workloads.analysis import cohort as cohort_lang
from workloads.analysis import sql
from workloads.analysis.report import _atomic_write
from workloads.analysis.spec import resolve_table
from workloads.contracts.catalogue import ANALYSABLE
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Column, Table

CellKind = Literal["count", "sum", "sum_squares"]
MAX_CELLS = 4096  # the federation's largest vector
_KEYS = {"table", "numeric", "bins", "edges", "crosstabs", "by", "cohort"}


@dataclass(frozen=True)
class StatsSpec:
    table: str
    numeric: tuple[str, ...] = ()
    bins: int = 10  # equal-width histogram bins over each numeric column's public bounds
    edges: tuple[tuple[str, tuple[float, ...]], ...] = ()  # explicit public bin edges
    crosstabs: tuple[tuple[str, str], ...] = ()
    by: str | None = None
    cohort: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "numeric": list(self.numeric), "bins": self.bins,
                "edges": {c: list(e) for c, e in self.edges},
                "crosstabs": [list(p) for p in self.crosstabs], "by": self.by,
                "cohort": self.cohort}


@dataclass(frozen=True)
class Cell:
    group: str  # "all" or "<by>=<level>"
    statistic: str  # "rows", "age:count", "age:sum", "age:bin[25,30)", "sex=F,smoker=1"
    kind: CellKind
    sensitivity: float  # most one row can change this number (after clamping)


@dataclass(frozen=True)
class StatsPlan:
    """A validated spec: its table, its cells in order and the SQL that computes them."""

    spec: StatsSpec
    table: Table
    cells: tuple[Cell, ...]
    expressions: tuple[exp.Expr, ...] = field(repr=False)


def from_dict(data: Mapping[str, Any], where: str = "stats spec") -> StatsSpec:
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: expected a mapping of keys; fix: see docs/analysis.md")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; fix: use "
                        f"{', '.join(sorted(_KEYS))}")
    if not isinstance(data.get("table"), str):
        raise UserError(f"{where}: 'table' is required")
    numeric = data.get("numeric", [])
    if isinstance(numeric, str):
        numeric = [c.strip() for c in numeric.split(",") if c.strip()]
    crosstabs = []
    for pair in data.get("crosstabs", []) or []:
        items = [c.strip() for c in pair.split(",")] if isinstance(pair, str) else list(pair)
        if len(items) != 2 or not all(isinstance(c, str) for c in items):
            raise UserError(f"{where}: a cross-tab is two column names, got {pair!r}")
        crosstabs.append((items[0], items[1]))
    bins = data.get("bins", 10)
    if bins is None:
        bins = 10
    if not isinstance(bins, int) or not 1 <= bins <= 100:
        raise UserError(f"{where}: bins must be a whole number from 1 to 100")
    edges_raw = data.get("edges", {}) or {}
    if not isinstance(edges_raw, Mapping):
        raise UserError(f"{where}: 'edges' maps a column to its list of bin edges")
    edges = tuple((str(c), tuple(float(v) for v in e)) for c, e in edges_raw.items())
    return StatsSpec(table=data["table"], numeric=tuple(numeric), bins=bins, edges=edges,
                     crosstabs=tuple(crosstabs), by=data.get("by") or None,
                     cohort=data.get("cohort") or "")


def spec_from_args(args: argparse.Namespace) -> StatsSpec:
    data: dict[str, Any] = {}
    if args.spec:
        from workloads.analysis.spec import read_mapping

        data = dict(read_mapping(args.spec))
    for key in ("table", "numeric", "bins", "by", "cohort"):
        if getattr(args, key, None) is not None:
            data[key] = getattr(args, key)
    if args.crosstab:
        data["crosstabs"] = args.crosstab
    if not data.get("table"):
        raise UserError("no statistics given; fix: pass --spec FILE or --table (and --numeric)")
    return from_dict(data, where="--spec/flags")


def _usable(table: Table, name: str, what: str) -> Column:
    try:
        column = table.column(name)
    except KeyError:
        raise UserError(
            f"stats: {what} {name!r} is not a column of {table.name}; fix: use one of "
            f"{', '.join(c.name for c in table.columns if c.releasable)}"
        ) from None
    cohort_lang.check_usable(table, column, f"stats {what}")
    return column


def _categorical(table: Table, name: str, what: str) -> Column:
    column = _usable(table, name, what)
    if not column.levels:
        raise UserError(f"stats: {what} {name} has no declared levels; fix: declare its public "
                        f"levels, or summarise it as numeric")
    return column


def _when(condition: exp.Expr, value: exp.Expr) -> exp.Expr:
    return exp.Case(ifs=[exp.If(this=condition, true=value)], default=sql.number(0.0))


def _is_level(column: Column, level: str | int | float) -> exp.Expr:
    return exp.EQ(this=sql.col(column.name), expression=sql.level_literal(column, level))


def plan(spec: StatsSpec, tables: Sequence[Table] = ANALYSABLE) -> StatsPlan:
    """Validate against the declared columns (hub and node alike) and lay out the cells."""
    table = resolve_table(spec.table, tables)
    edges = dict(spec.edges)
    numeric = [_usable(table, name, "numeric column") for name in spec.numeric]
    for column in numeric:
        if column.type not in ("INTEGER", "FLOAT") or column.bounds is None:
            raise UserError(f"stats: {column.name} has no public bounds; fix: declare them")
    for name in edges:
        if name not in spec.numeric:
            raise UserError(f"stats: edges given for {name}, which is not under 'numeric'")
    crosstabs = [(_categorical(table, a, "cross-tab column"),
                  _categorical(table, b, "cross-tab column")) for a, b in spec.crosstabs]
    by = _categorical(table, spec.by, "'by' column") if spec.by else None
    cohort_lang.parse(spec.cohort, table)

    groups: list[tuple[str, exp.Expr | None]] = [("all", None)]
    if by is not None:
        groups += [(f"{by.name}={level}", _is_level(by, level)) for level in by.levels]
    cells: list[Cell] = []
    expressions: list[exp.Expr] = []

    def add(group: str, condition: exp.Expr | None, statistic: str, kind: CellKind,
            sensitivity: float, value: exp.Expr) -> None:
        cells.append(Cell(group, statistic, kind, sensitivity))
        inner = value if condition is None else _when(condition, value)
        expressions.append(exp.Sum(this=inner))

    one = sql.number(1.0)
    for group, condition in groups:
        add(group, condition, "rows", "count", 1.0, one.copy())
        for column in numeric:
            assert column.bounds is not None
            low, high = column.bounds
            present = exp.Not(this=exp.Is(this=sql.col(column.name), expression=exp.Null()))
            value = sql.clamp(sql.as_double(sql.col(column.name)), (low, high))
            both = present if condition is None else exp.and_(condition.copy(), present)
            add(group, both, f"{column.name}:count", "count", 1.0, one.copy())
            add(group, both, f"{column.name}:sum", "sum", max(abs(low), abs(high)), value)
            add(group, both, f"{column.name}:sum_squares", "sum_squares",
                max(low * low, high * high), exp.Mul(this=value.copy(), expression=value.copy()))
            bounds = _edges(column, edges.get(column.name), spec.bins)
            for i in range(len(bounds) - 1):
                lo, hi = bounds[i], bounds[i + 1]
                last = i == len(bounds) - 2
                test = exp.and_(
                    both.copy(), exp.GTE(this=value.copy(), expression=sql.number(lo)),
                    (exp.LTE if last else exp.LT)(this=value.copy(), expression=sql.number(hi)),
                )
                add(group, test, f"{column.name}:bin[{lo:g},{hi:g}{']' if last else ')'}",
                    "count", 1.0, one.copy())
        for a, b in crosstabs:
            for la in a.levels:
                for lb in b.levels:
                    test = exp.and_(_is_level(a, la), _is_level(b, lb))
                    if condition is not None:
                        test = exp.and_(condition.copy(), test)
                    add(group, test, f"{a.name}={la},{b.name}={lb}", "count", 1.0, one.copy())
    if len(cells) > MAX_CELLS:
        raise UserError(f"stats: {len(cells)} cells; fix: ask for fewer (at most {MAX_CELLS})")
    return StatsPlan(spec, table, tuple(cells), tuple(expressions))


def _edges(column: Column, given: Sequence[float] | None, bins: int) -> list[float]:
    assert column.bounds is not None
    low, high = column.bounds
    if given is None:
        return [low + (high - low) * i / bins for i in range(bins + 1)]
    edges = [float(v) for v in given]
    if (len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges))
            or edges[0] != low or edges[-1] != high):
        raise UserError(
            f"stats: bin edges of {column.name} must increase from its lower bound {low:g} to "
            f"its upper bound {high:g} (values are clamped into the bounds); fix: e.g. "
            f"[{low:g}, {(low + high) / 2:g}, {high:g}]"
        )
    return edges


def stats_query(stats_plan: StatsPlan, table: exp.Table) -> exp.Select:
    """One aggregate row: the cells in order (c0, c1, ...)."""
    query = exp.select(*[e.as_(f"c{i}") for i, e in enumerate(stats_plan.expressions)])
    query = query.from_(table.copy())
    where = cohort_lang.parse(stats_plan.spec.cohort, stats_plan.table)
    return query.where(where) if where is not None else query


def node_statistics(
    warehouse: Any, spec: StatsSpec, tables: Sequence[Table] = ANALYSABLE
) -> np.ndarray:
    """The node side: validate here, run one aggregate, return the cells' values."""
    stats_plan = plan(spec, tables)
    query = stats_query(stats_plan, sql.table_expression(warehouse, stats_plan.table))
    row = warehouse.query(sql.render(query, sql.dialect_of(warehouse)))
    return np.array([0.0 if (v := row.column(f"c{i}")[0].as_py()) is None else float(v)
                     for i in range(len(stats_plan.cells))])


@dataclass(frozen=True)
class StatsResult:
    plan: StatsPlan
    per_node: Mapping[str, np.ndarray]
    combined: np.ndarray

    def value(self, statistic: str, group: str = "all", node: str | None = None) -> float:
        vector = self.combined if node is None else self.per_node[node]
        for i, cell in enumerate(self.plan.cells):
            if cell.group == group and cell.statistic == statistic:
                return float(vector[i])
        raise KeyError((group, statistic))

    def summary(self, node: str | None = None) -> dict[str, dict[str, Any]]:
        """Per group: rows; per numeric column: count, mean, SD (from the sums)."""
        out: dict[str, dict[str, Any]] = {}
        groups = dict.fromkeys(c.group for c in self.plan.cells)
        for group in groups:
            entry: dict[str, Any] = {"rows": self.value("rows", group, node)}
            for name in self.plan.spec.numeric:
                n = self.value(f"{name}:count", group, node)
                s = self.value(f"{name}:sum", group, node)
                ss = self.value(f"{name}:sum_squares", group, node)
                mean = s / n if n else math.nan
                var = (ss - s * s / n) / (n - 1) if n > 1 else math.nan
                entry[name] = {"count": n, "mean": mean, "sd": math.sqrt(max(var, 0.0))
                               if n > 1 else math.nan}
            out[group] = entry
        return out

    def to_dict(self) -> dict[str, Any]:
        cells = [{"group": c.group, "statistic": c.statistic, "kind": c.kind,
                  "sensitivity": c.sensitivity, "combined": float(self.combined[i]),
                  "per_node": {n: float(v[i]) for n, v in self.per_node.items()}}
                 for i, c in enumerate(self.plan.cells)]
        return {"spec": self.plan.spec.to_dict(), "summary": self.summary(), "cells": cells}


def combine_statistics(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """The hub side: cells are counts and sums, so the combined cell is the sum."""
    total: np.ndarray = np.sum(np.asarray(vectors, dtype=np.float64), axis=0)
    return total


def run_local_stats(
    warehouses: Mapping[str, Any], spec: StatsSpec, tables: Sequence[Table] = ANALYSABLE
) -> StatsResult:
    stats_plan = plan(spec, tables)
    per_node = {name: node_statistics(w, spec, tables) for name, w in warehouses.items()}
    return StatsResult(stats_plan, per_node, combine_statistics(list(per_node.values())))


def write_json(result: StatsResult, path: Path) -> None:
    _atomic_write(path, (json.dumps(result.to_dict(), indent=2) + "\n").encode())


def format_table(result: StatsResult) -> str:
    """Rows, means and SDs per group and node (counts here are not yet through the guard)."""
    nodes = list(result.per_node)
    lines = []
    for group, entry in result.summary().items():
        lines.append(f"[{group}] rows: " + ", ".join(
            f"{n} {result.value('rows', group, n):,.0f}" for n in nodes)
            + f", combined {entry['rows']:,.0f}")
        for name in result.plan.spec.numeric:
            lines.append(f"  {name}: mean {entry[name]['mean']:.4g}, SD {entry[name]['sd']:.4g}"
                         f" (n {entry[name]['count']:,.0f})")
    for cell_index, cell in enumerate(result.plan.cells):
        if cell.group == "all" and ("bin[" in cell.statistic or "=" in cell.statistic):
            lines.append(f"  {cell.statistic}: {result.combined[cell_index]:,.0f}")
    return "\n".join(lines)
