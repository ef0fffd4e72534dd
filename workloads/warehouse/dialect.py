"""The one place where DuckDB and BigQuery SQL differ.

Domain code writes each query once, in DuckDB's dialect, naming tables by their plain
names (`processed_variants`, or a name given to `Warehouse.stage_parquet`). `translate`
parses it with sqlglot, replaces those names with the backend's references (the
`node` catalog locally, `project.dataset` in BigQuery) and prints it in the backend's
dialect. The tests parse every statement the BigQuery backend would send as BigQuery SQL.

Write within the common subset sqlglot maps faithfully: joins with `CROSS JOIN
unnest(x) AS t(y)`, `CURRENT_TIMESTAMP`, `CAST`, `least`, CASE; no list lambdas (sqlglot
turns `len(list_filter(..))` into LENGTH, which BigQuery applies only to strings) and no
WHERE without FROM (BigQuery refuses it).

Locally a table declared `stored_long` (processed_variants) is kept as rows + one row per
call; `translate` reads it through joins instead of the nesting (long_layout.rewrite), so
the same statement gives the same rows on either layout.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

import sqlglot
from sqlglot import exp

from workloads.warehouse.long_layout import LongLayout, rewrite

SOURCE_DIALECT = "duckdb"


def translate(
    sql: str, dialect: str, ref: Callable[[str], str], names: Collection[str],
    long: Mapping[str, LongLayout] | None = None,
) -> list[str]:
    """The statements of `sql` for `dialect`, each table in `names` replaced by ref(name);
    tables in `long` read from their local long layout (workloads.warehouse.long_layout)."""
    wanted = set(names)
    statements = []
    for tree in sqlglot.parse(sql, read=SOURCE_DIALECT):
        if tree is None:
            continue
        tree = rewrite(tree, long or {})

        def swap(node: exp.Expression) -> exp.Expression:
            if (isinstance(node, exp.Table) and not node.args.get("db")
                    and node.name in wanted):
                table = exp.to_table(ref(node.name), dialect=dialect)
                alias = node.args.get("alias")
                if alias is not None:
                    table.set("alias", alias)
                return table
            return node

        tree = tree.transform(swap)
        if dialect == "bigquery":
            tree = tree.transform(_bigquery_functions)
        statements.append(tree.sql(dialect=dialect))
    return statements


def _bigquery_functions(node: exp.Expression) -> exp.Expression:
    """DuckDB functions BigQuery names otherwise: `hash(string)` (a 64-bit hash, keyed
    jitter in synthesis) is FARM_FINGERPRINT there; both are deterministic per engine,
    which is all their callers need (not equal values across engines)."""
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "hash":
        return exp.Anonymous(this="FARM_FINGERPRINT", expressions=node.expressions)
    return node


def literal(value: str | int) -> str:
    """A SQL literal (DuckDB source dialect); sqlglot re-quotes it for the target."""
    node = exp.Literal.number(value) if isinstance(value, int) else exp.Literal.string(value)
    return node.sql(dialect=SOURCE_DIALECT)
