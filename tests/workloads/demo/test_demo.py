"""The main job end to end at a small size: the report's numbers against the nodes' own data.

One `--quick` run (module fixture) of `python -m workloads demo`; every check reads the
nodes' warehouses directly (as only a test on one machine can) and compares them with what
the report says was released.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from workloads.demo import PATIENTS, QUICK_PROCEDURES, QUICK_ROWS, DemoConfig, DemoResult, run_demo
from workloads.federation import privacy
from workloads.federation import report as fed_report
from workloads.federation.guard import ODOMETER, load_policy
from workloads.local_node import LocalNode

pytestmark = pytest.mark.slow  # one whole --quick run: ~30 s

NODES = ("us", "eu", "sg")
SECTIONS = ("1. Inside each node", "2. Descriptive statistics, as released",
            "3. Federated logistic model vs pooled", "4. Robotics statistic",
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


def test_every_node_built_every_domain(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    for node in NODES:
        tables = result.tables[node]
        assert tables[PATIENTS] == QUICK_ROWS
        assert tables["variant_features"] == QUICK_ROWS  # the SQL-derived features of the VCF
        assert tables["processed_variants"] > 0
        assert tables["clinical_features"] == QUICK_ROWS  # FHIR flattened by the views
        assert tables["surgical_procedures"] == QUICK_PROCEDURES


def test_the_federated_fit_equals_the_pooled_fit(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    pooled, _ = fed_report.pooled_fit([LocalNode(n, result.root) for n in NODES])
    rows = table_rows(result.markdown.read_text(), "3. Federated logistic model vs pooled")
    assert [r[0] for r in rows] == list(result.federation.fit.names)
    federated = np.array([float(r[1]) for r in rows])
    np.testing.assert_allclose(federated, pooled, atol=1e-6)  # as printed: 6 decimals
    np.testing.assert_allclose(result.federation.fit.coefficients, pooled, atol=1e-8)


def test_released_cells_satisfy_every_node_policy_and_match_the_data(
    demo: tuple[DemoResult, str],
) -> None:
    result, _ = demo
    rows = table_rows(result.markdown.read_text(), "2. Descriptive statistics, as released")
    released = [r for r in rows if r[1] != "*"]
    assert len(released) >= 3  # not mostly suppressed: the overall row and level-0 cells
    for label, n_text, cases_text, *_ in released:
        where = "TRUE" if label == "all" else label.replace("=", " = ")
        total_n = total_cases = 0
        for node in NODES:
            local = LocalNode(node, result.root)
            policy = load_policy(local)
            with local.open_warehouse(create=False) as warehouse:
                ref = warehouse.table_ref(PATIENTS)
                n, cases = warehouse.query(
                    f"SELECT count(*), sum(diagnosis_cancer) FROM {ref} WHERE {where}"
                ).to_pylist()[0].values()
            # Every node's own cell passes its own small-cell floor.
            assert n >= policy.min_k and cases >= policy.min_k and n - cases >= policy.min_k
            total_n += n
            total_cases += cases
        assert (int(n_text), int(cases_text)) == (total_n, total_cases)
    hidden = [r for r in rows if r[1] == "*"]
    assert all(set(r[1:]) == {"*"} for r in hidden)


def test_the_budgets_match_each_node_odometer(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    rows = {r[0]: r for r in table_rows(result.markdown.read_text(), "6. Privacy budgets")}
    assert set(rows) == set(NODES)
    for node in NODES:
        local = LocalNode(node, result.root)
        delta = load_policy(local).lifetime_delta
        with local.open_warehouse(create=False) as warehouse:
            multipliers = warehouse.query(
                f"SELECT noise_multiplier FROM {warehouse.table_ref(ODOMETER)}"
            ).column(0).to_pylist()
            synthetic = warehouse.query(
                f"SELECT noise_multiplier FROM {warehouse.table_ref(ODOMETER)} "
                f"WHERE starts_with(algorithm, 'synth_')").column(0).to_pylist()
        expected = privacy.epsilon(multipliers, delta) if multipliers else 0.0
        assert float(rows[node][1]) == pytest.approx(expected, abs=5e-4)
        assert int(rows[node][2]) == len(multipliers)
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
