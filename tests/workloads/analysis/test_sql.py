"""The node query: one aggregate statement, valid DuckDB and BigQuery SQL, and the BigQuery
rendering means the same thing (transpiled back, it gives the same numbers on DuckDB)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from tests.workloads.analysis.analysis_data import TABLES, VISITS
from workloads.analysis import glm, sql
from workloads.analysis.spec import AnalysisSpec, from_dict, validate
from workloads.contracts.schema import Table
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

SPECS = {
    "logistic": from_dict({
        "table": "patient_genomic_data", "outcome": "diagnosis_cancer",
        "covariates": ["age", "bmi"], "categorical": ["variant_brca1"],
        "cohort": "age BETWEEN 30 AND 70 AND variant_tp53 IN (0, 1)"}),
    "poisson": from_dict({
        "table": VISITS.name, "outcome": "visits", "family": "poisson", "covariates": ["age"],
        "categorical": ["sex", "region"], "cohort": "region != 'south' OR age > 50"}),
    "linear": from_dict({
        "table": VISITS.name, "outcome": "sbp", "family": "linear", "covariates": ["age"],
        "categorical": ["smoker"], "cohort": "NOT sex = 'F'"}),
}


class BigQueryShaped:
    """Names the table the way BigQueryWarehouse does; used only to render SQL."""

    sql_dialect = "bigquery"

    def table_ref(self, table: Table | str) -> str:
        name = table.name if isinstance(table, Table) else table
        return f"`my-project.hospital_data.{name}`"


class Recording:
    """A warehouse wrapper that keeps every statement and result it saw."""

    def __init__(self, inner: DuckDBWarehouse) -> None:
        self.inner = inner
        self.sql_dialect = "duckdb"
        self.statements: list[str] = []
        self.results: list[pa.Table] = []

    def table_ref(self, table: Table | str) -> str:
        return self.inner.table_ref(table)

    def query(self, text: str, params: Sequence[Any] | None = None) -> pa.Table:
        self.statements.append(text)
        self.results.append(self.inner.query(text, params))
        return self.results[-1]


def _query(spec: AnalysisSpec, warehouse: Any, beta: np.ndarray) -> str:
    design = validate(spec, TABLES)
    built = sql.glm_query(design, sql.table_expression(warehouse, design.table), beta)
    return sql.render(built, sql.dialect_of(warehouse))


@pytest.mark.parametrize("family", sorted(SPECS))
def test_one_aggregate_statement_and_one_row(
    family: str, warehouses: dict[str, DuckDBWarehouse]
) -> None:
    recording = Recording(warehouses["eu"])
    spec = SPECS[family]
    p = len(validate(spec, TABLES).terms)
    glm.node_aggregate(recording, spec, np.full(p, 0.01), tables=TABLES)
    assert len(recording.statements) == 1
    [statement] = recording.statements
    assert len(sqlglot.parse(statement, read="duckdb")) == 1
    assert recording.results[0].num_rows == 1  # an aggregate, never rows
    # the released numbers plus two for the node guard (max |eta|, effective rows)
    assert recording.results[0].num_columns == 5 + p + p * (p + 1) // 2


@pytest.mark.parametrize("family", sorted(SPECS))
def test_bigquery_rendering_parses_and_means_the_same(
    family: str, warehouses: dict[str, DuckDBWarehouse]
) -> None:
    spec = SPECS[family]
    design = validate(spec, TABLES)
    beta = np.linspace(-0.3, 0.4, len(design.terms))
    duck = warehouses["us"]
    bigquery_sql = _query(spec, BigQueryShaped(), beta)
    parsed = sqlglot.parse_one(bigquery_sql, read="bigquery")
    assert isinstance(parsed, exp.Select)
    assert "`my-project.hospital_data." in bigquery_sql or "`my-project`" in bigquery_sql
    # Transpile BigQuery -> DuckDB, point it at the local table, run: same numbers.
    local = sql.table_expression(duck, design.table)

    def to_local(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.name == design.table.name:
            return local.copy()
        return node

    round_trip = parsed.transform(to_local).sql(dialect="duckdb")
    direct = duck.query(_query(spec, duck, beta))
    via_bigquery = duck.query(round_trip)
    assert via_bigquery.column_names == direct.column_names
    for name in direct.column_names:
        a = float(direct.column(name)[0].as_py())
        b = float(via_bigquery.column(name)[0].as_py())
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12), name


def test_coefficients_are_exact_literals() -> None:
    beta = np.array([-0.1, 1e-300, 12345.678901234567, -2.5e-7, 0.0, -0.0, 3.0, 1 / 3])
    design = validate(SPECS["logistic"], TABLES)
    text = sql.render(sql.glm_query(design, exp.to_table("t"), beta[: len(design.terms)]),
                      "duckdb")
    for value in beta[: len(design.terms)]:
        assert repr(abs(float(value))) in text
    with pytest.raises(Exception, match="non-finite"):
        sql.number(float("nan"))
