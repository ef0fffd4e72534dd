"""An analysis spec: which table, outcome, covariates, cohort and model family.

Written as a JSON or YAML file (`load_spec`) or as CLI flags (`add_spec_arguments`,
`spec_from_args`); both give the same `AnalysisSpec`. `validate` checks it against the
table's declared columns and returns the model's terms; the hub runs it before a run and
every node runs it again on the spec it received, against its own catalogue.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workloads.analysis import cohort as cohort_lang
from workloads.contracts.catalogue import ANALYSABLE
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Column, Table

Family = Literal["logistic", "linear", "poisson"]
FAMILIES: tuple[Family, ...] = ("logistic", "linear", "poisson")
_FAMILY_ALIASES: dict[str, Family] = {
    "logistic": "logistic", "binomial": "logistic", "logit": "logistic",
    "linear": "linear", "gaussian": "linear",
    "poisson": "poisson",
}
_NUMERIC = ("INTEGER", "FLOAT")
_KEYS = {"table", "outcome", "covariates", "categorical", "cohort", "family", "max_iter",
         "tolerance"}


@dataclass(frozen=True)
class AnalysisSpec:
    table: str
    outcome: str
    covariates: tuple[str, ...] = ()  # numeric, scaled by their public bounds
    categorical: tuple[tuple[str, str | None], ...] = ()  # (column, reference level or None)
    cohort: str = ""  # filter in the cohort language; "" = every row
    family: Family = "logistic"
    max_iter: int = 25
    tolerance: float = 1e-10  # largest Newton step (scaled coefficients) at convergence

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "outcome": self.outcome,
            "covariates": list(self.covariates),
            "categorical": {c: ref for c, ref in self.categorical},
            "cohort": self.cohort,
            "family": self.family,
            "max_iter": self.max_iter,
            "tolerance": self.tolerance,
        }

    def to_json(self) -> str:
        """Canonical text: what the hub sends and what a node re-validates."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Term:
    """One column of the design matrix, scaled for conditioning by public constants only."""

    name: str  # "intercept", "age", "variant_brca1[1]"
    column: str | None  # None for the intercept
    kind: Literal["intercept", "numeric", "level"]
    level: str | int | float | None = None
    centre: float = 0.0
    scale: float = 1.0
    bounds: tuple[float, float] | None = None  # raw bounds of a numeric column


@dataclass(frozen=True)
class Design:
    """A validated spec against its table: the terms in order and the outcome's column."""

    spec: AnalysisSpec
    table: Table
    outcome: Column
    terms: tuple[Term, ...]
    categorical: tuple[tuple[Column, tuple[str | int, ...]], ...] = field(default=())

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.terms]

    @property
    def columns(self) -> list[Column]:
        """Every column the model reads (outcome first)."""
        used = [self.spec.outcome, *self.spec.covariates, *(c for c, _ in self.spec.categorical)]
        return [self.table.column(name) for name in used]


def from_dict(data: Mapping[str, Any], where: str = "spec") -> AnalysisSpec:
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: expected a mapping of keys; fix: see docs/analysis.md")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise UserError(
            f"{where}: unknown key(s) {', '.join(unknown)}; fix: use {', '.join(sorted(_KEYS))}"
        )
    for key in ("table", "outcome"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise UserError(f"{where}: '{key}' is required (a column/table name)")
    covariates = data.get("covariates", [])
    if isinstance(covariates, str):
        covariates = [c.strip() for c in covariates.split(",") if c.strip()]
    if not isinstance(covariates, list) or not all(isinstance(c, str) for c in covariates):
        raise UserError(f"{where}: 'covariates' is a list of column names")
    categorical = _categorical(data.get("categorical", {}), where)
    cohort = data.get("cohort", "") or ""
    if not isinstance(cohort, str):
        raise UserError(f"{where}: 'cohort' is a filter expression in quotes")
    family_text = str(data.get("family", "logistic")).lower()
    if family_text not in _FAMILY_ALIASES:
        raise UserError(
            f"{where}: family {family_text!r} is unknown; fix: use one of {', '.join(FAMILIES)}"
        )
    max_iter = data.get("max_iter", 25)
    tolerance = data.get("tolerance", 1e-10)
    if not isinstance(max_iter, int) or not 1 <= max_iter <= 200:
        raise UserError(f"{where}: max_iter must be a whole number from 1 to 200")
    if not isinstance(tolerance, (int, float)) or not 0 < tolerance < 1:
        raise UserError(f"{where}: tolerance must be a number between 0 and 1")
    return AnalysisSpec(
        table=data["table"],
        outcome=data["outcome"],
        covariates=tuple(covariates),
        categorical=categorical,
        cohort=cohort,
        family=_FAMILY_ALIASES[family_text],
        max_iter=max_iter,
        tolerance=float(tolerance),
    )


def _categorical(raw: Any, where: str) -> tuple[tuple[str, str | None], ...]:
    """A mapping column -> reference level (or null), a list of names, or "col:ref,col"."""
    if isinstance(raw, str):
        raw = [item.strip() for item in raw.split(",") if item.strip()]
    if isinstance(raw, list):
        out: list[tuple[str, str | None]] = []
        for item in raw:
            if not isinstance(item, str):
                raise UserError(f"{where}: 'categorical' entries are names like 'col' or 'col:ref'")
            name, _, ref = item.partition(":")
            out.append((name.strip(), ref.strip() or None))
        return tuple(out)
    if isinstance(raw, Mapping):
        return tuple((str(k), None if v is None else str(v)) for k, v in raw.items())
    raise UserError(f"{where}: 'categorical' is a mapping of column to reference level")


def read_mapping(path: Path) -> Any:
    """A JSON file, or YAML (.yaml/.yml) when PyYAML is available. Never changes it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(
            f"cannot read spec {path}: {exc.strerror}; fix: give an existing file"
        ) from None
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        try:
            yaml: Any = importlib.import_module("yaml")  # optional: JSON needs nothing
        except ImportError:
            raise UserError(
                f"{path}: reading YAML needs PyYAML; fix: write the spec as JSON"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML ({exc}); fix: correct the file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}: not valid JSON at line {exc.lineno} ({exc.msg}); fix: correct the file"
        ) from None


def load_spec(path: Path) -> AnalysisSpec:
    """Read an analysis spec file (JSON, or YAML)."""
    return from_dict(read_mapping(path), where=str(path))


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """The spec as flags; flags given beside --spec override the file's keys."""
    parser.add_argument("--spec", type=Path, metavar="FILE", help="analysis spec (JSON or YAML)")
    parser.add_argument("--table", help="a declared table, e.g. patient_genomic_data")
    parser.add_argument("--outcome", help="the outcome column")
    parser.add_argument("--covariates", help="numeric covariates, comma-separated")
    parser.add_argument(
        "--categorical", help="categorical covariates, comma-separated, each 'col' or 'col:ref'"
    )
    parser.add_argument("--cohort", help="row filter, e.g. \"age BETWEEN 40 AND 70\"")
    parser.add_argument("--family", help=f"one of {', '.join(FAMILIES)} (default logistic)")
    parser.add_argument("--max-iter", type=int, help="Newton iterations at most (default 25)")


def spec_from_args(args: argparse.Namespace) -> AnalysisSpec:
    data: dict[str, Any] = load_spec(args.spec).to_dict() if args.spec else {}
    for key in ("table", "outcome", "covariates", "categorical", "cohort", "family", "max_iter"):
        value = getattr(args, key, None)
        if value is not None:
            data[key] = value
    if not data.get("table") or not data.get("outcome"):
        raise UserError("no analysis given; fix: pass --spec FILE or --table and --outcome")
    return from_dict(data, where="--spec/flags")


def resolve_table(name: str, tables: Sequence[Table] = ANALYSABLE) -> Table:
    for table in tables:
        if table.name == name:
            return table
    raise UserError(
        f"spec: table {name!r} is not declared; fix: use one of "
        f"{', '.join(t.name for t in tables)}"
    )


def validate(spec: AnalysisSpec, tables: Sequence[Table] = ANALYSABLE) -> Design:
    """Check every name and role against the declared columns; return the design's terms."""
    table = resolve_table(spec.table, tables)
    outcome = _column(table, spec.outcome, "outcome")
    _check_outcome(table, outcome, spec.family)
    seen = {outcome.name}
    terms = [Term("intercept", None, "intercept")]
    for name in spec.covariates:
        column = _column(table, name, "covariate")
        _once(seen, name)
        if column.type not in _NUMERIC or column.bounds is None:
            raise UserError(
                f"spec: covariate {name} is {column.type} without public bounds; fix: declare "
                f"bounds for it, or list it under 'categorical' if it has levels"
            )
        low, high = column.bounds
        terms.append(
            Term(name, name, "numeric", centre=(low + high) / 2, scale=(high - low) / 2,
                 bounds=(low, high))
        )
    categorical: list[tuple[Column, tuple[str | int, ...]]] = []
    for name, reference in spec.categorical:
        column = _column(table, name, "categorical covariate")
        _once(seen, name)
        if not column.levels:
            raise UserError(
                f"spec: categorical {name} has no declared levels; fix: declare its public "
                f"levels in the table definition, or use it as a numeric covariate"
            )
        levels = tuple(column.levels)
        by_text = {str(level): level for level in levels}
        if reference is not None and reference not in by_text:
            raise UserError(
                f"spec: reference level {reference!r} of {name} is not declared; fix: use one "
                f"of {', '.join(by_text)}"
            )
        ref = levels[0] if reference is None else by_text[reference]
        categorical.append((column, levels))
        terms += [Term(f"{name}[{level}]", name, "level", level=level) for level in levels
                  if level != ref]
    cohort_lang.parse(spec.cohort, table)  # raises with the column and the fix
    return Design(spec, table, outcome, tuple(terms), tuple(categorical))


def _column(table: Table, name: str, what: str) -> Column:
    try:
        column = table.column(name)
    except KeyError:
        known = ", ".join(c.name for c in table.columns if c.releasable)
        raise UserError(
            f"spec: {what} {name!r} is not a column of {table.name}; fix: use one of its "
            f"releasable columns ({known})"
        ) from None
    cohort_lang.check_usable(table, column, f"spec {what}")
    return column


def _once(seen: set[str], name: str) -> None:
    if name in seen:
        raise UserError(f"spec: column {name} is used twice; fix: list it once")
    seen.add(name)


def _check_outcome(table: Table, outcome: Column, family: Family) -> None:
    where = f"spec: outcome {outcome.name} of {table.name}"
    if outcome.type not in (*_NUMERIC, "BOOLEAN"):
        raise UserError(f"{where} is {outcome.type}; fix: use a numeric outcome")
    if outcome.type != "BOOLEAN" and outcome.bounds is None:
        raise UserError(f"{where} has no public bounds; fix: declare them")
    if family == "logistic" and outcome.type != "BOOLEAN" and (
        outcome.bounds != (0, 1) or outcome.type != "INTEGER"
    ):
        raise UserError(
            f"{where} is not a 0/1 column (bounds {outcome.bounds}); fix: use family "
            f"linear or poisson, or a 0/1 outcome"
        )
    if family == "poisson" and (
        outcome.type != "INTEGER" or outcome.bounds is None or outcome.bounds[0] < 0
    ):
        raise UserError(
            f"{where} is not a count (INTEGER with bounds from 0); fix: use family linear"
        )
