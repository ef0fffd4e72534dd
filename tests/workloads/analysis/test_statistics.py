"""Statistics pushed down equal the same statistics computed on the pooled rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sqlglot

from tests.workloads.analysis.analysis_data import TABLES, VISITS, pooled_frame
from workloads.analysis import sql, statistics
from workloads.cli import main
from workloads.contracts.errors import UserError
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

SPEC = statistics.from_dict({
    "table": VISITS.name, "numeric": ["age", "sbp"], "bins": 4,
    "edges": {"sbp": [80, 120, 140, 220]}, "crosstabs": [["sex", "smoker"]], "by": "region",
    "cohort": "visits <= 10",
})


def test_statistics_equal_pooled(warehouses: dict[str, DuckDBWarehouse]) -> None:
    result = statistics.run_local_stats(warehouses, SPEC, TABLES)
    frame = pooled_frame(warehouses, VISITS)
    rows = frame[frame.visits <= 10]
    assert result.value("rows") == len(rows)
    summary = result.summary()
    for group, part in [("all", rows), *((f"region={r}", rows[rows.region == r])
                                         for r in ("north", "south", "east"))]:
        assert summary[group]["rows"] == len(part)
        for name in ("age", "sbp"):
            values = part[name].dropna()
            assert summary[group][name]["count"] == len(values)
            assert summary[group][name]["mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert summary[group][name]["sd"] == pytest.approx(values.std(ddof=1), rel=1e-9)
    # Histograms: age on 4 equal bins over its bounds (18-90), sbp on the given edges.
    age = rows.age.dropna()
    counts, _ = np.histogram(age, bins=[18, 36, 54, 72, 90])
    assert [result.value(f"age:bin[{lo},{hi}{']' if hi == 90 else ')'}")
            for lo, hi in [(18, 36), (36, 54), (54, 72), (72, 90)]] == list(counts)
    assert result.value("sbp:bin[140,220]") == ((rows.sbp >= 140) & (rows.sbp <= 220)).sum()
    # Cross-tabulation, and per node values that add up to the combined ones.
    expected = rows.groupby(["sex", "smoker"]).size()
    for (sex, smoker), count in expected.items():
        assert result.value(f"sex={sex},smoker={smoker}") == count
    assert sum(result.value("rows", node=n) for n in warehouses) == result.value("rows")


def test_cells_are_typed_with_sensitivity() -> None:
    plan = statistics.plan(SPEC, TABLES)
    kinds = {c.statistic.split(":")[-1]: (c.kind, c.sensitivity) for c in plan.cells
             if c.statistic.startswith("sbp:") and "bin" not in c.statistic}
    assert kinds == {"count": ("count", 1.0), "sum": ("sum", 220.0),
                     "sum_squares": ("sum_squares", 220.0 ** 2)}
    assert all(c.kind == "count" and c.sensitivity == 1.0 for c in plan.cells
               if "bin[" in c.statistic or "=" in c.statistic)


def test_one_query_valid_for_bigquery(warehouses: dict[str, DuckDBWarehouse]) -> None:
    plan = statistics.plan(SPEC, TABLES)
    query = statistics.stats_query(plan, sqlglot.exp.to_table("`p.d.test_clinic_visits`",
                                                              dialect="bigquery"))
    text = sql.render(query, "bigquery")
    assert len(sqlglot.parse(text, read="bigquery")) == 1
    local = statistics.stats_query(plan, sql.table_expression(warehouses["sg"], VISITS))
    assert warehouses["sg"].query(sql.render(local, "duckdb")).num_rows == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"numeric": ["postcode"]}, "postcode of test_clinic_visits is not releasable"),
        ({"numeric": ["sex"]}, "sex has no public bounds"),
        ({"crosstabs": [["sex", "age"]]}, "age has no declared levels"),
        ({"by": "patient_id"}, "patient_id of test_clinic_visits is not releasable"),
        ({"edges": {"sbp": [90, 220]}}, "bin edges of sbp must increase from its lower bound"),
        ({"cohort": "age > (SELECT 1)"}, "cohort"),
    ],
)
def test_bad_statistics_spec(change: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        statistics.plan(statistics.from_dict({**SPEC.to_dict(), **change}), TABLES)


def test_stats_command(cli_root: Path, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "stats.json"
    code = main(["analysis", "stats", "--table", "patient_genomic_data", "--numeric",
                 "age,bmi", "--crosstab", "variant_brca1,diagnosis_cancer", "--by",
                 "variant_tp53", "--root", str(cli_root), "--out", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["summary"]["all"]["rows"] == 6000 + 1500 + 300
    assert "[variant_tp53=2]" in capsys.readouterr().out
