"""The local layout of a table whose REPEATED RECORD column is `stored_long` (contracts).

BigQuery keeps such a table nested (processed_variants, one row per variant with its
calls in `call`, as Variant Transforms does). DuckDB holds a transaction's nested lists
in memory (2,000 x 2,000 calls took 3.6 GB), so locally the table is two tables derived
from its declaration, with no column restated:

  <table>__rows     the declared columns but the repeated one, plus `_row` (a number
                    unique in the node, given at load)
  <table>__<col>    `_row` plus the record's fields, one row per element (per call)
  <table>           a view with the declared shape (the elements gathered back into a
                    list in their stored order), for any query that wants the nesting

Domain SQL is still written once against the declared table: `rewrite` turns a lateral
`unnest(p.<col>)` into a join to the element table (the same rows, streamed instead of
nested), points a reference that does not need the column at `__rows`, and turns a copy
from a staged file (`INSERT INTO <table> (...) SELECT s.* ... FROM staged AS s`) into a
copy of its site rows: the element rows were streamed into the element table when the
file was staged, and stay invisible (no `__rows` row joins them) until that commits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlglot import exp

from workloads.contracts.schema import Column, Table

ROW = "_row"
_ROW_COLUMN = Column(ROW, "INTEGER", "REQUIRED", "Row number in the node (local layout)")


@dataclass(frozen=True)
class LongLayout:
    """How the relation `name` (a declared table, or a staged file like it) is stored."""

    table: Table  # the declared table
    name: str  # the relation's name in SQL
    parent: str  # table of the rows without the repeated column
    child: str  # table of the elements (shared by the table and its staged files)

    @classmethod
    def of(cls, table: Table) -> LongLayout:
        return cls(table, table.name, f"{table.name}__rows", f"{table.name}__{table.stored_long}")

    def staged(self, name: str) -> LongLayout:
        """A staged file like the table: its rows in a temporary table of its own, its
        elements already in the table's element table (invisible until the rows commit)."""
        return LongLayout(self.table, name, f"{name}__rows", self.child)

    @property
    def column(self) -> Column:
        return self.table.column(self.table.stored_long)

    def parent_table(self) -> Table:
        columns = tuple(c for c in self.table.columns if c.name != self.column.name)
        return Table(self.parent, f"Rows of {self.table.name} (local layout)",
                     (*columns, _ROW_COLUMN))

    def child_table(self) -> Table:
        return Table(self.child, f"{self.column.name} of {self.table.name}, one row each "
                     "(local layout)", (_ROW_COLUMN, *self.column.fields))

    def view_sql(self, ref: Callable[[str], str]) -> str:
        """DuckDB: the declared table as a view (elements in stored order; none -> [])."""
        col = self.column
        fields = ", ".join(f'"{f.name}" := "{f.name}"' for f in col.fields)
        picked = ", ".join(
            f'coalesce(c."{c.name}", CAST([] AS {col.duckdb_type()})) AS "{c.name}"'
            if c.name == col.name else f'p."{c.name}"' for c in self.table.columns)
        return (
            f"CREATE VIEW IF NOT EXISTS {ref(self.name)} AS SELECT {picked} "
            f"FROM {ref(self.parent)} AS p LEFT JOIN ("
            f'SELECT "{ROW}", list(struct_pack({fields}) ORDER BY rowid) AS "{col.name}" '
            f'FROM {ref(self.child)} GROUP BY "{ROW}") AS c ON c."{ROW}" = p."{ROW}"'
        )


def rewrite(tree: exp.Expr, layouts: Mapping[str, LongLayout]) -> exp.Expr:
    """`tree` (DuckDB dialect, plain names) reading the long layouts instead of the nesting."""
    if not layouts:
        return tree
    if isinstance(tree, exp.Insert):
        _rewrite_copy(tree, layouts)
    for select in list(tree.find_all(exp.Select)):
        _rewrite_select(select, layouts)
    return tree


def _rewrite_copy(insert: exp.Insert, layouts: Mapping[str, LongLayout]) -> None:
    schema = insert.this
    if not isinstance(schema, exp.Schema) or not isinstance(schema.this, exp.Table):
        return
    target = layouts.get(schema.this.name)
    if target is None:
        return
    select = insert.expression
    source = select.args.get("from_") if isinstance(select, exp.Select) else None
    table = source.this if source is not None else None
    names = [e.name for e in schema.expressions]
    col = target.column.name
    if (not isinstance(select, exp.Select) or not isinstance(table, exp.Table)
            or table.name not in layouts or select.args.get("joins") or col not in names):
        raise ValueError(f"{target.name} is stored long locally: write it only by copying "
                         f"a staged file like it (INSERT INTO ... SELECT s.... FROM staged AS s)")
    at = names.index(col)
    picked = select.expressions[at]
    if not (isinstance(picked, exp.Column) and picked.name == col):
        raise ValueError(f"{target.name}: column {col} must be copied as is")
    schema.expressions.pop(at)
    select.expressions.pop(at)
    schema.append("expressions", exp.to_identifier(ROW))
    select.append("expressions", exp.column(ROW, table=table.alias_or_name))
    schema.this.set("this", exp.to_identifier(target.parent))


def _rewrite_select(select: exp.Select, layouts: Mapping[str, LongLayout]) -> None:
    sources: dict[str, tuple[exp.Table, LongLayout]] = {}
    from_ = select.args.get("from_")
    joins = select.args.get("joins") or []
    for node in [from_.this if from_ is not None else None, *(j.this for j in joins)]:
        if isinstance(node, exp.Table) and not node.args.get("db") and node.name in layouts:
            sources[node.alias_or_name] = (node, layouts[node.name])
    if not sources:
        return
    for join in joins:
        unnest = join.this
        if not (isinstance(unnest, exp.Unnest) and len(unnest.expressions) == 1):
            continue
        column = unnest.expressions[0]
        if not isinstance(column, exp.Column) or column.table not in sources:
            continue
        layout = sources[column.table][1]
        alias = unnest.args.get("alias")
        items = alias.columns if isinstance(alias, exp.TableAlias) else []
        if column.name != layout.column.name or len(items) != 1:
            continue
        item = items[0].name  # `AS t(c)`: the element is named c
        join.replace(exp.Join(
            this=exp.Table(this=exp.to_identifier(layout.child),
                           alias=exp.TableAlias(this=exp.to_identifier(item))),
            on=exp.EQ(this=exp.column(ROW, table=item),
                      expression=exp.column(ROW, table=column.table)),
        ))
    for alias, (table, layout) in sources.items():
        if _needs_column(select, alias, layout.column.name):
            if layout.name == layout.table.name:
                continue  # read through the view of the declared shape
            raise ValueError(f"{layout.name}: read its {layout.column.name} by unnesting it")
        if not table.args.get("alias"):
            table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
        table.set("this", exp.to_identifier(layout.parent))


def _needs_column(select: exp.Select, alias: str, name: str) -> bool:
    if any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)
                                       and e.table in ("", alias)) for e in select.expressions):
        return True
    return any(c.name == name and c.table in ("", alias) for c in select.find_all(exp.Column))
