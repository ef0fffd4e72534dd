"""The main job end to end at a small size: the report's numbers against the nodes' own data.

One `--quick` run (module fixture) of `python -m workloads demo`; every check reads the
nodes' warehouses directly (as only a test on one machine can) and compares them with what
the report says was released.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

from workloads.analysis.spec import load_spec
from workloads.demo import (
    DEMO_SPEC,
    PATIENTS,
    QUICK_PROCEDURES,
    QUICK_ROWS,
    DemoConfig,
    DemoResult,
    run_demo,
)
from workloads.federation import privacy
from workloads.federation.guard import ODOMETER, load_policy
from workloads.federation.table_counts import RELEASED, countable
from workloads.local_node import LocalNode

pytestmark = pytest.mark.slow  # one whole --quick run: ~30 s

NODES = ("us", "eu", "sg")
SECTIONS = ("1. Inside each node", "2. Descriptive statistics, as released",
            "3. Cancer risk model: federated vs pooled", "4. Robotics statistic",
            "5. Federated synthetic table", "6. Privacy budgets",
            "7. What each node released, step by step", "8. Offline posture of the stacks")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, str]:
    root = tmp_path_factory.mktemp("demo")
    out = io.StringIO()
    result = run_demo(root, DemoConfig.quick(), progress=False, out=out)
    assert result is not None
    return result, out.getvalue()


def table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The first Markdown table after `heading`, without its header."""
    section = markdown.split(heading, 1)[1]
    lines = next(line for line in section.split("\n\n") if line.startswith("| ")).splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_the_report_is_one_self_contained_page_with_every_section(
    demo: tuple[DemoResult, str],
) -> None:
    result, printed = demo
    html = result.html.read_text()
    markdown = result.markdown.read_text()
    for section in SECTIONS:
        assert section in markdown and section in html
    # Images embedded, nothing fetched from anywhere.
    assert html.count("src='data:image/png;base64,") == 2
    assert not re.search(r"(src|href)=['\"](?!data:)", html)
    assert str(result.html) in printed and "Report:" in printed
    assert "identical to 1e-6" in printed
    assert "Row counts each node released" in printed


def test_every_node_built_every_domain(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    for node in NODES:
        tables = result.tables[node]
        assert tables[PATIENTS] == QUICK_ROWS
        assert tables["variant_features"] == QUICK_ROWS  # the SQL-derived features of the VCF
        assert tables["processed_variants"] > 0
        assert tables["clinical_features"] == QUICK_ROWS  # FHIR flattened by the views
        assert tables["surgical_procedures"] == QUICK_PROCEDURES


VIEW = "patient_risk_factors"


def joined_rows(result: DemoResult) -> pd.DataFrame:
    """The model's rows recomputed independently of the view: each node's base tables read
    with pandas and joined here (genotype from variant_features, age from the FHIR birthDate
    on the record's generated date, sex, BMI and diagnosis from the flattened records)."""
    frames = []
    for node in NODES:
        with LocalNode(node, result.root).open_warehouse(create=False) as warehouse:
            def read(table: str, columns: str) -> pd.DataFrame:
                return warehouse.query(
                    f"SELECT {columns} FROM {warehouse.table_ref(table)}").to_pandas()

            genotype = read("variant_features", "*")
            patients = read("patients", "patient_id, gender, birth_date, "
                            "strftime(generated_ts AT TIME ZONE 'UTC', '%Y-%m-%d') AS day")
            clinical = read("clinical_features", "patient_id, diagnosis_cancer, bmi")
        frame = genotype.merge(patients, on="patient_id").merge(clinical, on="patient_id")
        born = pd.to_datetime(frame["birth_date"], errors="coerce")
        day = pd.to_datetime(frame["day"])
        frame["age"] = day.dt.year - born.dt.year - (
            (day.dt.month * 100 + day.dt.day) < (born.dt.month * 100 + born.dt.day)).astype(int)
        frame["node"] = node
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_the_federated_fit_equals_statsmodels_on_the_independently_joined_rows(
    demo: tuple[DemoResult, str],
) -> None:
    import statsmodels.api as sm

    result, _ = demo
    spec = load_spec(DEMO_SPEC)
    assert spec.table == VIEW
    rows = joined_rows(result).dropna(subset=["age", "bmi", "variant_apoe4"])
    rows = rows[rows["gender"].isin(["female", "male"])]
    x = pd.DataFrame({"intercept": 1.0, **{c: rows[c].astype(float) for c in spec.covariates},
                      "sex[male]": (rows["gender"] == "male").astype(float)})
    pooled = sm.GLM(rows["diagnosis_cancer"].astype(float), x,
                    family=sm.families.Binomial()).fit(tol=1e-12)
    fit = result.federation.fit
    assert [t.name for t in fit.terms] == list(x.columns)
    assert fit.n == len(rows)
    np.testing.assert_allclose(fit.coefficients, pooled.params.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(fit.std_errors, pooled.bse.to_numpy(), rtol=1e-5)
    table = table_rows(result.markdown.read_text(), "3. Cancer risk model: federated vs pooled")
    assert [r[0] for r in table] == list(x.columns)
    np.testing.assert_allclose([float(r[1]) for r in table], pooled.params, atol=1e-6)
    np.testing.assert_allclose([float(r[6]) for r in table], pooled.params, atol=1e-6)
    # The true values are the generator's profile coefficients (us and eu share theirs).
    assert table[3][-1].split(" / ")[0] == "0.8"  # variant_brca1, us and eu
    assert result.chart.exists()


def test_released_cells_satisfy_every_node_policy_and_match_the_data(
    demo: tuple[DemoResult, str],
) -> None:
    result, _ = demo
    rows = joined_rows(result)
    table = table_rows(result.markdown.read_text(), "2. Descriptive statistics, as released")
    released = [r for r in table if r[1] != "*"]
    assert len(released) >= 4  # not mostly suppressed
    for label, n_text, cases_text, _ in released:
        column, level = (part.strip() for part in label.split("="))
        column_name = "gender" if column == "sex" else column
        value = level if column == "sex" else int(level)
        total_n = total_cases = 0
        for node in NODES:
            policy = load_policy(LocalNode(node, result.root))
            mine = rows[(rows["node"] == node) & (rows[column_name] == value)]
            cases = int(mine["diagnosis_cancer"].sum())
            # Each of the level's two cells passes the node's own floor (or is empty).
            for count in (cases, len(mine) - cases):
                assert count == 0 or count >= max(policy.min_k, result.federation.k)
            total_n += len(mine)
            total_cases += cases
        assert (int(n_text), int(cases_text)) == (total_n, total_cases)
    assert all(set(r[1:]) == {"*"} for r in table if r[1] == "*")


def test_released_row_counts_are_noised_rounded_and_charged(
    demo: tuple[DemoResult, str],
) -> None:
    """`federate nodes` in the report: every released count is rounded to the node's
    granularity, near the true count (noise of ~20 rows), and charged once per table."""
    result, _ = demo
    counts = result.federation.counts
    for node in NODES:
        policy = load_policy(LocalNode(node, result.root))
        for table in countable():
            count = counts[node][table]
            true = result.tables[node].get(table)
            if count.status == RELEASED:
                assert count.value is not None and count.value % policy.count_rounding == 0
                assert true is not None and abs(count.value - true) < 8 * 20 + 10
        with LocalNode(node, result.root).open_warehouse(create=False) as warehouse:
            charged = warehouse.query(
                f"SELECT dataset, count(*) AS n FROM {warehouse.table_ref(ODOMETER)} "
                f"WHERE algorithm = 'table_counts' GROUP BY ALL").to_pylist()
        assert {r["dataset"] for r in charged} <= set(countable())
        assert all(r["n"] == 1 for r in charged)
    assert counts["us"][VIEW].status == RELEASED  # the joined view is counted too


def test_the_budgets_match_each_node_odometer(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    rows = {r[0]: r for r in table_rows(result.markdown.read_text(), "6. Privacy budgets")}
    assert set(rows) == set(NODES)
    for node in NODES:
        local = LocalNode(node, result.root)
        delta = load_policy(local).lifetime_delta
        with local.open_warehouse(create=False) as warehouse:
            entries = warehouse.query(
                f"SELECT dataset, noise_multiplier FROM {warehouse.table_ref(ODOMETER)}"
            ).to_pylist()
            synthetic = warehouse.query(
                f"SELECT noise_multiplier FROM {warehouse.table_ref(ODOMETER)} "
                f"WHERE starts_with(algorithm, 'synth_')").column(0).to_pylist()
        per_table: dict[str, list[float]] = {}
        for entry in entries:
            per_table.setdefault(entry["dataset"], []).append(entry["noise_multiplier"])
        expected = max((privacy.epsilon(m, delta) for m in per_table.values()), default=0.0)
        assert expected > 0  # the row counts and the synthetic table were charged
        assert float(rows[node][1]) == pytest.approx(expected, abs=5e-4)
        assert int(rows[node][2]) == len(entries)
        assert float(rows[node][3]) == pytest.approx(privacy.epsilon(synthetic, delta),
                                                     abs=5e-4)
        assert len(synthetic) == 2  # the synthetic table was charged (marginals, products)
        assert int(rows[node][4]) == len(synthetic)


def test_a_rerun_changes_nothing_and_says_so(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo

    def fingerprint() -> dict[str, dict[str, int]]:
        from workloads.demo import node_tables

        return {n: node_tables(result.root, n) for n in NODES}

    before = fingerprint()
    report_before = result.html.read_bytes()
    out = io.StringIO()
    again = run_demo(result.root, DemoConfig.quick(), progress=False,
                     out=out)
    assert again is None
    assert "Nothing changed" in out.getvalue() and "no privacy budget was spent" in out.getvalue()
    assert fingerprint() == before
    assert result.html.read_bytes() == report_before


def test_the_robotics_table_shows_only_what_every_node_passed_and_equals_the_fleets(
    demo: tuple[DemoResult, str],
) -> None:
    """Section 4: each published cell (and margin) equals the sum of the nodes' own counts;
    a cell some node could not release is '*', never a number."""
    from workloads.robotics.aggregate import node_cell_counts

    result, printed = demo
    table = result.federation.robotics
    assert table is not None and not table.dp and "Robotics statistic:" in printed
    pooled = {m: 0 for m in ("procedures", "with_complications")}
    cells: dict[str, np.ndarray] = {}
    for name in NODES:
        with LocalNode(name, result.root).open_warehouse(create=False) as wh:
            counts = node_cell_counts(wh).counts
        for m in pooled:
            cells[m] = cells.get(m, 0) + counts[m]
    for m in pooled:
        full = np.zeros((cells[m].shape[0] + 1, cells[m].shape[1] + 1), dtype=np.int64)
        full[:-1, :-1] = cells[m]
        full[-1, :-1], full[:-1, -1], full[-1, -1] = (
            cells[m].sum(axis=0), cells[m].sum(axis=1), cells[m].sum())
        published = table.counts[m]
        shown = [(i, j) for i, row in enumerate(published) for j, v in enumerate(row)
                 if v is not None]
        assert shown, "nothing released at all"
        for i, j in shown:
            assert published[i][j] == full[i, j], (m, i, j)
    markdown = result.markdown.read_text()
    assert "| robot model |" in markdown.split("4. Robotics statistic", 1)[1]
