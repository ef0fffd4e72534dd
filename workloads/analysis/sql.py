"""Dialect-neutral SQL for the node side: built as sqlglot expressions, rendered per engine.

Nothing the hub sends is pasted into SQL: column names come from the declared table, the
cohort is a checked expression tree (cohort.py), numbers are Python floats written as
literals (repr round-trips exactly), and the table reference comes from the warehouse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import sqlglot
from sqlglot import exp

from workloads.analysis import cohort as cohort_lang
from workloads.analysis.spec import Design, Family, Term
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Column, Table

Dialect = Literal["duckdb", "bigquery"]
DIALECTS: tuple[Dialect, ...] = ("duckdb", "bigquery")
EXP_CAP = 700.0  # exp() of more overflows a double; Poisson's eta is capped there
# A row whose IRLS weight is below this barely informs the model (a saturated score); the
# node's guard counts the others (`effective_rows`) before it releases anything.
EFFECTIVE_WEIGHT = 1e-4


def dialect_of(warehouse: Any) -> Dialect:
    """The SQL dialect a warehouse speaks (by its class; no import of the cloud client)."""
    declared = getattr(warehouse, "sql_dialect", None)
    if declared in DIALECTS:
        return declared  # type: ignore[no-any-return]
    name = type(warehouse).__name__
    if name == "BigQueryWarehouse":
        return "bigquery"
    if name == "DuckDBWarehouse":
        return "duckdb"
    raise UserError(f"warehouse {name} has no SQL dialect; fix: set its sql_dialect attribute")


def table_expression(warehouse: Any, table: Table) -> exp.Table:
    """The warehouse's own reference to the table, as a sqlglot Table node.

    A declared view (`catalogue.ANALYSABLE_VIEWS`) exists in BigQuery because the node
    stack declares it; a local DuckDB warehouse gets it here on first use (`local_view`)."""
    dialect = dialect_of(warehouse)
    if dialect == "duckdb":
        local_view(warehouse, table.name)
    parsed = sqlglot.parse_one(warehouse.table_ref(table), into=exp.Table, read=dialect)
    assert isinstance(parsed, exp.Table)
    return parsed


def local_view(warehouse: Any, name: str) -> None:
    """Create (or bring up to date) a declared view in a local DuckDB warehouse: its BigQuery
    SQL with every dataset bound to the warehouse's schema, transpiled. A no-op for tables
    and for a view already current; fails (as a query would) if its tables are missing."""
    from workloads.contracts.catalogue import view_named

    view = view_named(name)
    if view is None or not view.columns:
        return
    ref = warehouse.table_ref(name)
    body = sqlglot.transpile(view.local_sql(ref[: ref.rindex(".")]), read="bigquery",
                             write="duckdb")[0]
    # The view's comment holds the digest of its definition: re-created only when it changed.
    digest = hash_text(body)
    current = warehouse.query(
        "SELECT comment FROM duckdb_views() WHERE view_name = ? AND NOT internal", [name]
    ).column(0).to_pylist()
    if current == [digest]:
        return
    warehouse.query(f"CREATE OR REPLACE VIEW {ref} AS {body}")
    warehouse.query(f"COMMENT ON VIEW {ref} IS '{digest}'")


def hash_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def number(value: float) -> exp.Expr:
    """A finite float as an exact literal."""
    value = float(value)
    if not math.isfinite(value):
        raise UserError(f"non-finite number {value} in a query; fix: restart the fit")
    literal = exp.Literal.number(repr(abs(value)))
    return exp.Neg(this=literal) if math.copysign(1.0, value) < 0 and value != 0 else literal


def col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def as_double(expression: exp.Expr) -> exp.Expr:
    return exp.cast(expression, "DOUBLE")


def clamp(expression: exp.Expr, bounds: tuple[float, float]) -> exp.Expr:
    low, high = bounds
    return exp.Greatest(
        this=exp.Least(this=expression, expressions=[number(high)]), expressions=[number(low)]
    )


def level_literal(column: Column, level: str | int | float) -> exp.Expr:
    if column.type in ("INTEGER", "FLOAT"):
        return number(float(level))
    return exp.Literal.string(str(level))


def paren(expression: exp.Expr) -> exp.Expr:
    return exp.Paren(this=expression)


def term_expression(design: Design, term: Term, *, clip: bool) -> exp.Expr:
    """The scaled value of one design column for a row (intercept: 1)."""
    if term.kind == "intercept":
        return number(1.0)
    assert term.column is not None
    column = design.table.column(term.column)
    if term.kind == "level":
        assert term.level is not None
        return exp.Case(
            ifs=[exp.If(this=exp.EQ(this=col(column.name),
                                    expression=level_literal(column, term.level)),
                        true=number(1.0))],
            default=number(0.0),
        )
    raw: exp.Expr = as_double(col(column.name))
    if clip and term.bounds is not None:
        raw = clamp(raw, term.bounds)
    return exp.Div(
        this=paren(exp.Sub(this=raw, expression=number(term.centre))),
        expression=number(term.scale),
    )


def complete_rows(design: Design) -> exp.Expr:
    """Rows the model can use: no NULL in a used column, categoricals at declared levels."""
    tests: list[exp.Expr] = [
        exp.Not(this=exp.Is(this=col(c.name), expression=exp.Null())) for c in design.columns
    ]
    for column, levels in design.categorical:
        tests.append(
            exp.In(this=col(column.name), expressions=[level_literal(column, v) for v in levels])
        )
    return exp.and_(*tests)


def cohort_filter(design: Design) -> exp.Expr | None:
    return cohort_lang.parse(design.spec.cohort, design.table)


def outcome_expression(design: Design, *, clip: bool) -> exp.Expr:
    outcome = design.outcome
    if outcome.type == "BOOLEAN":
        return exp.Case(ifs=[exp.If(this=col(outcome.name), true=number(1.0))],
                        default=number(0.0))
    value = as_double(col(outcome.name))
    if clip and outcome.bounds is not None:
        value = clamp(value, outcome.bounds)
    return value


def linear_predictor(names: Sequence[str], beta: Sequence[float] | np.ndarray) -> exp.Expr:
    total: exp.Expr | None = None
    for name, b in zip(names, beta, strict=True):
        piece = exp.Mul(this=number(b), expression=exp.column(name))
        total = piece if total is None else exp.Add(this=total, expression=piece)
    assert total is not None
    return total


def _family_columns(family: Family) -> list[exp.Expr]:
    """mu (fitted mean), w (IRLS weight) and dev (the row's deviance), from eta and y."""
    eta, y = exp.column("eta"), exp.column("y")
    one = number(1.0)
    if family == "logistic":
        # Stable logistic: e = exp(-|eta|) never overflows.
        e = exp.Exp(this=exp.Neg(this=exp.Abs(this=eta)))
        mu = exp.Case(
            ifs=[exp.If(this=exp.GTE(this=eta, expression=number(0.0)),
                        true=exp.Div(this=one, expression=paren(exp.Add(this=one, expression=e))))],
            default=exp.Div(this=e.copy(),
                            expression=paren(exp.Add(this=one, expression=e.copy()))),
        )
        softplus = exp.Add(
            this=exp.Greatest(this=eta, expressions=[number(0.0)]),
            expression=exp.Ln(this=exp.Add(this=one, expression=e.copy())),
        )
        dev = exp.Mul(this=number(2.0),
                      expression=paren(exp.Sub(this=softplus, expression=exp.Mul(this=y,
                                                                              expression=eta))))
        return [mu.as_("mu"), dev.as_("dev")]
    if family == "linear":
        resid = paren(exp.Sub(this=y, expression=eta))
        return [eta.copy().as_("mu"), exp.Mul(this=resid, expression=resid.copy()).as_("dev")]
    mu_p = exp.Exp(this=exp.Least(this=eta, expressions=[number(EXP_CAP)]))
    # y (ln y - eta), with 0 for y = 0: counts are whole numbers, so ln(max(y, 1)) is ln y
    # for every y >= 1 and the product is 0 at y = 0, with no LN(0) in any engine.
    y_log_y = exp.Mul(this=y, expression=paren(exp.Sub(
        this=exp.Ln(this=exp.Greatest(this=y.copy(), expressions=[number(1.0)])),
        expression=eta.copy())))
    dev_p = exp.Mul(this=number(2.0), expression=paren(
        exp.Sub(this=y_log_y, expression=paren(exp.Sub(this=y.copy(), expression=mu_p.copy())))))
    return [mu_p.as_("mu"), dev_p.as_("dev")]


def _weight(family: Family) -> exp.Expr:
    mu = exp.column("mu")
    if family == "logistic":
        return exp.Mul(this=mu, expression=paren(exp.Sub(this=number(1.0), expression=mu.copy())))
    if family == "linear":
        return number(1.0)
    return mu


def _model_ctes(design: Design, table: exp.Table, clip: bool) -> tuple[exp.Select, exp.Select]:
    """cohort_rows: the cohort (model columns only); model_rows: the scaled design x0..x(p-1)
    and the outcome y of the rows the model can use."""
    names = [f"x{j}" for j in range(len(design.terms))]
    where = cohort_filter(design)
    # Only the model's columns (BigQuery bills by the columns a query reads).
    cohort_rows = exp.select(*[col(c.name) for c in design.columns]).from_(table.copy())
    if where is not None:
        cohort_rows = cohort_rows.where(where)
    rows = (
        exp.select(
            *[term_expression(design, t, clip=clip).as_(n)
              for t, n in zip(design.terms, names, strict=True)],
            outcome_expression(design, clip=clip).as_("y"),
        )
        .from_("cohort_rows")
        .where(complete_rows(design))
    )
    return cohort_rows, rows


def model_rows_query(design: Design, table: exp.Table) -> exp.Select:
    """The scaled rows themselves: for the local pooled comparison only, never federated."""
    cohort_rows, rows = _model_ctes(design, table, False)
    return (exp.select(exp.Star()).from_("model_rows")
            .with_("cohort_rows", as_=cohort_rows).with_("model_rows", as_=rows))


def glm_query(
    design: Design, table: exp.Table, beta: Sequence[float] | np.ndarray, *, clip: bool = False
) -> exp.Select:
    """One aggregate over the node's rows at coefficients `beta` (scaled terms):
    n, cohort_rows, deviance, gradient X'(y - mu) and the upper triangle of X'WX."""
    p = len(design.terms)
    if len(beta) != p:
        raise UserError(f"{len(beta)} coefficients for {p} terms; fix: send one per term")
    names = [f"x{j}" for j in range(p)]
    cohort_rows, rows = _model_ctes(design, table, clip)
    with_eta = exp.select(exp.Star(), linear_predictor(names, beta).as_("eta")).from_("model_rows")
    fitted = exp.select(exp.Star(), *_family_columns(design.spec.family)).from_("with_eta")
    # The residual and the weight once per row, not once per sum.
    weighted = exp.select(
        exp.column("dev"), exp.column("eta"), *[exp.column(n) for n in names[1:]],
        exp.Sub(this=exp.column("y"), expression=exp.column("mu")).as_("r"),
        _weight(design.spec.family).as_("w"),
    ).from_("fitted")
    # Counted on the table itself: a second reference to a CTE would make DuckDB
    # materialise it (every cohort row written to memory).
    cohort_count = exp.select(exp.Count(this=exp.Star())).from_(table.copy())
    where = cohort_filter(design)
    if where is not None:
        cohort_count = cohort_count.where(where)
    r, w = exp.column("r"), exp.column("w")
    aggregates: list[exp.Expr] = [
        exp.Count(this=exp.Star()).as_("n"),
        exp.Subquery(this=cohort_count).as_("cohort_rows"),
        exp.Sum(this=exp.column("dev")).as_("deviance"),
        # For the node's guard only (never released): how extreme the scores are, and how
        # many rows still carry weight.
        exp.Max(this=exp.Abs(this=exp.column("eta"))).as_("max_abs_eta"),
        exp.Sum(this=exp.Case(
            ifs=[exp.If(this=exp.GTE(this=w.copy(), expression=number(EFFECTIVE_WEIGHT)),
                        true=exp.Literal.number(1))],
            default=exp.Literal.number(0))).as_("effective_rows"),
    ]
    for j in range(p):
        grad = r.copy() if j == 0 else exp.Mul(this=exp.column(names[j]), expression=r.copy())
        aggregates.append(exp.Sum(this=grad).as_(f"g{j}"))
    for j in range(p):
        for k in range(j, p):
            product: exp.Expr = w.copy()
            for idx in (j, k):
                if idx != 0:  # the intercept's column is 1
                    product = exp.Mul(this=product, expression=exp.column(names[idx]))
            aggregates.append(exp.Sum(this=product).as_(f"h{j}_{k}"))
    return (
        exp.select(*aggregates)
        .from_("weighted")
        .with_("cohort_rows", as_=cohort_rows)
        .with_("model_rows", as_=rows)
        .with_("with_eta", as_=with_eta)
        .with_("fitted", as_=fitted)
        .with_("weighted", as_=weighted)
    )


def render(query: exp.Expr, dialect: Dialect) -> str:
    return query.sql(dialect=dialect)
