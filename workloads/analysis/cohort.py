"""The cohort filter: a small expression language over a table's declared columns.

Grammar (keywords case-insensitive):

    expr    := and ("OR" and)*
    and     := not ("AND" not)*
    not     := "NOT" not | "(" expr ")" | test
    test    := COLUMN op literal
             | COLUMN ["NOT"] "IN" "(" literal ("," literal)* ")"
             | COLUMN ["NOT"] "BETWEEN" NUMBER "AND" NUMBER
    op      := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    literal := NUMBER | 'STRING'   (a string only as a declared level of its column)

The parser builds a sqlglot expression itself (the text is never handed to a SQL parser),
and `check_tree` then walks the result against an allow-list of node types, so even a bug
in the parser cannot let a function call, a subquery or a statement through. Columns must
be declared and releasable; a literal compared with a categorical column must be one of its
public levels. The hub and every node run the same parse and checks on the same text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot import exp

from workloads.contracts.errors import UserError
from workloads.contracts.schema import Column, Table

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
      | (?P<string>'(?:[^'\\]|'')*')
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "NOT", "IN", "BETWEEN"}
_COMPARISONS: dict[str, type[exp.Expr]] = {
    "=": exp.EQ,
    "!=": exp.NEQ,
    "<>": exp.NEQ,
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
}
# Everything a checked cohort tree may contain; anything else is refused.
ALLOWED_NODES: tuple[type[exp.Expr], ...] = (
    exp.And, exp.Or, exp.Not, exp.Paren, exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE,
    exp.In, exp.Between, exp.Column, exp.Identifier, exp.Literal, exp.Neg,
)
MAX_LENGTH = 2000  # a cohort is a filter, not a program
MAX_DEPTH = 32  # nested parentheses / NOTs (keeps the recursive parser far from Python's limit)


@dataclass(frozen=True)
class _Token:
    kind: str  # number | string | name | keyword | op | punct | end
    text: str
    at: int


def _fix() -> str:
    return (
        "fix: write comparisons (=, !=, <, <=, >, >=), IN (...), BETWEEN a AND b, joined by "
        "AND/OR/NOT, over declared columns, with numbers or declared levels in quotes"
    )


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            bad = text[pos:].lstrip()[:12]
            raise UserError(
                f"cohort: unexpected {bad!r} at character {pos + 1} (only comparisons over "
                f"columns are allowed: no ';', comments, or operators like '+'); {_fix()}"
            )
        kind = match.lastgroup or ""
        value, start = match.group(kind), match.start(kind)
        if kind == "name" and value.upper() in _KEYWORDS:
            kind, value = "keyword", value.upper()
        out.append(_Token(kind, value, start))
        pos = match.end()
    out.append(_Token("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str, table: Table) -> None:
        self.text = text
        self.table = table
        self.tokens = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def accept(self, kind: str, text: str | None = None) -> bool:
        token = self.peek()
        if token.kind == kind and (text is None or token.text == text):
            self.i += 1
            return True
        return False

    def expect(self, kind: str, text: str, what: str) -> None:
        if not self.accept(kind, text):
            self.fail(f"expected {what}")

    def fail(self, problem: str) -> None:
        token = self.peek()
        found = "the end" if token.kind == "end" else repr(token.text)
        raise UserError(f"cohort: {problem} at character {token.at + 1}, found {found}; {_fix()}")

    def parse(self) -> exp.Expr:
        tree = self.disjunction()
        if self.peek().kind != "end":
            self.fail("expected AND, OR or the end of the filter")
        return tree

    def disjunction(self) -> exp.Expr:
        node = self.conjunction()
        while self.accept("keyword", "OR"):
            node = exp.Or(this=node, expression=self.conjunction())
        return node

    def conjunction(self) -> exp.Expr:
        node = self.negation()
        while self.accept("keyword", "AND"):
            node = exp.And(this=node, expression=self.negation())
        return node

    def negation(self) -> exp.Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"more than {MAX_DEPTH} nested parentheses or NOTs")
        try:
            if self.accept("keyword", "NOT"):
                return exp.Not(this=self.negation())
            if self.accept("punct", "("):
                inner = self.disjunction()
                self.expect("punct", ")", "')'")
                return exp.Paren(this=inner)
            return self.test()
        finally:
            self.depth -= 1

    def test(self) -> exp.Expr:
        token = self.peek()
        if token.kind != "name":
            self.fail("expected a column name")
        self.take()
        if self.peek().kind == "punct" and self.peek().text == "(":
            self.fail(f"{token.text!r} is not a column (function calls are not allowed)")
        column = self.column(token.text)
        ref = exp.column(column.name, quoted=True)
        negated = self.accept("keyword", "NOT")
        if self.accept("keyword", "IN"):
            self.expect("punct", "(", "'(' after IN")
            values = [self.literal(column)]
            while self.accept("punct", ","):
                values.append(self.literal(column))
            self.expect("punct", ")", "')' closing IN")
            node: exp.Expr = exp.In(this=ref, expressions=values)
        elif self.accept("keyword", "BETWEEN"):
            low = self.number(column)
            self.expect("keyword", "AND", "AND in BETWEEN")
            high = self.number(column)
            node = exp.Between(this=ref, low=low, high=high)
        elif negated:
            self.fail("expected IN or BETWEEN after NOT")
            raise AssertionError  # unreachable: fail raises
        else:
            op = self.take()
            if op.kind != "op":
                self.i -= 1
                self.fail(f"expected a comparison after {column.name}")
            node = _COMPARISONS[op.text](this=ref, expression=self.literal(column))
        return exp.Not(this=node) if negated else node

    def column(self, name: str) -> Column:
        try:
            column = self.table.column(name)
        except KeyError:
            known = ", ".join(c.name for c in self.table.columns if c.releasable)
            raise UserError(
                f"cohort: {name!r} is not a column of {self.table.name}; fix: use one of "
                f"its releasable columns ({known})"
            ) from None
        check_usable(self.table, column, "cohort")
        return column

    def literal(self, column: Column) -> exp.Expr:
        token = self.peek()
        if token.kind == "string":
            self.take()
            value = token.text[1:-1].replace("''", "'")
            if value not in [str(level) for level in column.levels]:
                raise UserError(
                    f"cohort: {value!r} is not a declared level of {column.name} (levels: "
                    f"{', '.join(map(str, column.levels)) or 'none'}); fix: compare with a "
                    f"declared level"
                )
            if column.type in ("INTEGER", "FLOAT"):
                return _number(value)
            return exp.Literal.string(value)
        return self.number(column)

    def number(self, column: Column) -> exp.Expr:
        token = self.take()
        if token.kind != "number":
            self.i -= 1
            self.fail(f"expected a number for {column.name}")
        if column.type not in ("INTEGER", "FLOAT"):
            self.i -= 1
            self.fail(f"{column.name} is not numeric: compare it with a declared level in quotes")
        return _number(token.text)


def _number(text: str) -> exp.Expr:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise UserError(f"cohort: {text!r} is not a finite number; fix: use a finite number")
    literal = exp.Literal.number(text.lstrip("-"))
    return exp.Neg(this=literal) if text.startswith("-") else literal


def check_usable(table: Table, column: Column, where: str) -> None:
    """Only releasable, non-identifier scalar columns may shape what leaves a node."""
    if not column.releasable:
        raise UserError(
            f"{where}: column {column.name} of {table.name} is not releasable; fix: use a "
            f"column declared releasable in workloads/contracts/tables (releasable: "
            f"{', '.join(c.name for c in table.columns if c.releasable) or 'none'})"
        )
    if column.mode == "REPEATED" or column.type not in ("INTEGER", "FLOAT", "STRING", "BOOLEAN"):
        raise UserError(
            f"{where}: column {column.name} is {column.mode} {column.type}; fix: use a scalar "
            f"numeric or categorical column"
        )


def parse(text: str, table: Table) -> exp.Expr | None:
    """The cohort as a checked sqlglot expression (None: no filter, every row)."""
    if not text.strip():
        return None
    if len(text) > MAX_LENGTH:
        raise UserError(f"cohort: {len(text)} characters; fix: keep it under {MAX_LENGTH}")
    tree = _Parser(text, table).parse()
    check_tree(tree, table)
    return tree


def check_tree(tree: exp.Expr, table: Table) -> None:
    """Refuse any node type outside the allow-list and any column not declared releasable."""
    for node in tree.walk():
        if type(node) not in ALLOWED_NODES:  # exact types: no subclass slips through
            raise UserError(
                f"cohort: {type(node).__name__} is not allowed in a filter; {_fix()}"
            )
        if isinstance(node, exp.Column):
            if node.table or node.db or node.catalog:
                raise UserError(f"cohort: qualified column {node.sql()!r}; fix: use bare names")
            try:
                column = table.column(node.name)
            except KeyError:
                raise UserError(f"cohort: {node.name!r} is not a column of {table.name}") from None
            check_usable(table, column, "cohort")
