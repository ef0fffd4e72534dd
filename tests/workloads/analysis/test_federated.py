"""The researcher's spec through the full federation protocol (signed steps, each node's
guard and release log, secure aggregation; in-process transport): equal to statsmodels'
GLM on the pooled rows for all three families; a hostile hub's cohort refused by every
node with a signed abort; DP only for logistic."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm

from tests.workloads.analysis.analysis_data import TABLES, VISITS, pooled_frame, pooled_glm
from tests.workloads.analysis.conftest import SIZES
from tests.workloads.analysis.test_glm import _same
from workloads.analysis import glm
from workloads.analysis.spec import from_dict
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.federation.analysis_glm import AnalysisGLM, AnalysisGLMParams
from workloads.federation.analysis_hub import fit_spec
from workloads.federation.coordinator import DPRequest, FederationStoppedError, RunConfig
from workloads.federation.local import Hub, local_federation
from workloads.local_node import LocalNode
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

NODES = list(SIZES)  # us 6,000, eu 1,500, sg 300 rows


@contextmanager
def federation(root: Path) -> Iterator[Hub]:
    with local_federation(root, NODES) as hub:
        assert hub.workers is not None
        for worker in hub.workers:
            worker.tables = TABLES  # each node's catalogue holds the test-only table
        yield hub


def _fit(root: Path, spec_data: dict[str, Any], dp: DPRequest | None = None) -> glm.FitResult:
    with federation(root) as hub:
        coordinator = hub.coordinator(RunConfig(tuple(NODES), max_rounds=25, dp=dp))
        result = fit_spec(coordinator, from_dict(spec_data), TABLES)
        coordinator.finish()
        # Only sums reached the hub: no message carried a node's own count.
        assert not coordinator.rejected
    return result


@contextmanager
def opened(root: Path) -> Iterator[dict[str, DuckDBWarehouse]]:
    warehouses = {n: LocalNode(n, root).open_warehouse(create=False) for n in NODES}
    try:
        yield warehouses
    finally:
        for warehouse in warehouses.values():
            warehouse.close()


def _releases(warehouse: DuckDBWarehouse) -> int:
    """Entries in the node's release log (none if the guard never wrote one)."""
    exists = warehouse.query(
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_catalog = 'node' "
        "AND table_name = 'federation_releases'").column("n")[0].as_py()
    if not exists:
        return 0
    return int(warehouse.query(
        "SELECT count(*) AS n FROM node.main.federation_releases").column("n")[0].as_py())


def test_federated_logistic_equals_pooled(cli_root: Path) -> None:
    fed = _fit(cli_root, {
        "table": "patient_genomic_data", "outcome": "diagnosis_cancer",
        "covariates": ["age", "bmi"], "categorical": {"variant_brca1": "0"},
        "cohort": "age BETWEEN 30 AND 75 AND NOT variant_tp53 = 2", "family": "logistic",
    })
    with opened(cli_root) as warehouses:
        ref, rows = pooled_glm(
            pooled_frame(warehouses, PATIENT_GENOMIC_DATA),
            lambda f: f.age.between(30, 75) & (f.variant_tp53 != 2), "diagnosis_cancer",
            ["age", "bmi"], {"variant_brca1": [0, 1, 2]}, sm.families.Binomial())
        # Every round went through each node's guard: its release log holds the run.
        for warehouse in warehouses.values():
            assert _releases(warehouse) == fed.iterations
    _same(fed, ref, ["intercept", "age", "bmi", "variant_brca1[1]", "variant_brca1[2]"])
    assert fed.rows_per_node == {"masked sum of eu, sg, us": len(rows)}


def test_federated_poisson_equals_pooled(cli_root: Path) -> None:
    fed = _fit(cli_root, {
        "table": VISITS.name, "outcome": "visits", "covariates": ["age"],
        "categorical": {"sex": "M", "region": None, "smoker": None},
        "cohort": "region IN ('north', 'east') OR age >= 60", "family": "poisson",
    })
    with opened(cli_root) as warehouses:
        ref, _ = pooled_glm(
            pooled_frame(warehouses, VISITS), lambda f: f.region.isin(["north", "east"])
            | (f.age >= 60), "visits", ["age"],
            {"sex": ["M", "F"], "region": ["north", "south", "east"], "smoker": [0, 1]},
            sm.families.Poisson())
    _same(fed, ref, ["intercept", "age", "sex[F]", "region[south]", "region[east]", "smoker[1]"])


def test_federated_linear_equals_pooled(cli_root: Path) -> None:
    fed = _fit(cli_root, {
        "table": VISITS.name, "outcome": "sbp", "covariates": ["age"],
        "categorical": ["smoker", "sex:F"], "cohort": "NOT (sex = 'F' AND age < 25)",
        "family": "linear",
    })
    with opened(cli_root) as warehouses:
        ref, _ = pooled_glm(
            pooled_frame(warehouses, VISITS), lambda f: ~((f.sex == "F") & (f.age < 25)),
            "sbp", ["age"], {"smoker": [0, 1], "sex": ["F", "M"]}, sm.families.Gaussian())
    _same(fed, ref, ["intercept", "age", "smoker[1]", "sex[M]"])
    assert fed.dispersion == pytest.approx(ref.scale, rel=1e-9)


class HostileHub(AnalysisGLM):
    """A malicious hub: skips its own validation and sends raw text as the cohort."""

    def dimension(self, params: AnalysisGLMParams) -> int:
        return 3 + 2 + 3

    def model_size(self, params: AnalysisGLMParams) -> int:
        return 2


@pytest.mark.parametrize("cohort", [
    "age > 0; DROP TABLE patient_genomic_data",
    "age > 0 OR 1 = 1",
    "age > (SELECT max(age) FROM patient_genomic_data)",
    "patient_id = 'US-000001'",  # an identifier: not releasable
])
def test_hostile_cohort_is_refused_with_a_signed_abort(cli_root: Path, cohort: str) -> None:
    params = AnalysisGLMParams("patient_genomic_data", "diagnosis_cancer", "logistic",
                               ("age",), (), cohort)
    with federation(cli_root) as hub:
        coordinator = hub.coordinator(RunConfig(tuple(NODES)))
        with pytest.raises(FederationStoppedError, match="refused") as caught:
            coordinator.aggregate(HostileHub(TABLES), params, (0.0, 0.0))
        assert hub.workers is not None
        deadline = time.monotonic() + 10  # the hub stops at the first abort; let all answer
        while time.monotonic() < deadline and not all(w.refused for w in hub.workers):
            time.sleep(0.05)
        for worker in hub.workers:
            assert any("cohort" in r or "not releasable" in r for r in worker.refused), (
                worker.refused)
    # The abort passed the hub's signature check against the roster (a forged one would be
    # listed as rejected and the run would time out instead).
    assert not coordinator.rejected
    assert "cohort" in str(caught.value) or "releasable" in str(caught.value)
    with opened(cli_root) as warehouses:
        for warehouse in warehouses.values():
            rows = warehouse.query(
                f"SELECT count(*) AS n FROM {warehouse.table_ref(PATIENT_GENOMIC_DATA)}")
            assert rows.column("n")[0].as_py() > 0  # nothing dropped
            assert _releases(warehouse) == 0  # nothing released


def test_dp_is_refused_for_poisson_and_runs_for_logistic(cli_root: Path) -> None:
    with pytest.raises(FederationStoppedError, match="no declared bound"):
        _fit(cli_root, {"table": VISITS.name, "outcome": "visits", "covariates": ["age"],
                        "family": "poisson"}, DPRequest(epsilon=3.0, releases=4))
    fed = _fit(cli_root, {"table": "patient_genomic_data", "outcome": "diagnosis_cancer",
                          "covariates": ["age", "bmi"], "categorical": ["variant_brca1"]},
               DPRequest(epsilon=3.0, releases=4))
    assert fed.iterations == 4 and not fed.converged
    assert np.all(np.isfinite(fed.coefficients))


def test_cli_fit_through_the_federation(cli_root: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from workloads.cli import main

    out, report = tmp_path / "results.json", tmp_path / "report.md"
    code = main(["federate", "fit", "--root", str(cli_root), "--nodes", ",".join(NODES),
                 "--table", "patient_genomic_data", "--outcome", "diagnosis_cancer",
                 "--covariates", "age,bmi", "--categorical", "variant_brca1:0",
                 "--cohort", "age BETWEEN 30 AND 75", "--out", str(out),
                 "--report", str(report)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["converged"] and [t["term"] for t in data["terms"]][:3] == [
        "intercept", "age", "bmi"]
    assert (tmp_path / "report_forest.png").stat().st_size > 0
    assert "masked sum" in report.read_text()
    assert "logistic model of diagnosis_cancer" in capsys.readouterr().out


def test_federated_statistics_publish_only_cells_every_node_passed(cli_root: Path) -> None:
    from workloads.analysis import statistics
    from workloads.federation.analysis_hub import stats_spec

    spec = statistics.from_dict({
        "table": VISITS.name, "numeric": ["age"], "bins": 6, "crosstabs": [["sex", "smoker"]],
        "by": "region", "cohort": "age >= 20"})
    with federation(cli_root) as hub:
        coordinator = hub.coordinator(RunConfig(tuple(NODES), k=40))
        result, shown = stats_spec(coordinator, spec, TABLES)
        coordinator.finish()
    with opened(cli_root) as warehouses:
        local = statistics.run_local_stats(warehouses, spec, TABLES)
    cells = result.plan.cells
    assert shown.any() and not shown.all()  # sg (300 rows) fails some cells at k = 40
    np.testing.assert_allclose(result.combined[shown], local.combined[shown], rtol=0, atol=1e-6)
    assert np.isnan(result.combined[~shown]).all()
    for i, cell in enumerate(cells):
        if cell.kind == "count" and shown[i]:  # every published count passed on every node
            assert min(v[i] for v in local.per_node.values()) == 0 or all(
                v[i] >= 40 for v in local.per_node.values())


def test_cli_stats_through_the_federation(cli_root: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from workloads.cli import main

    out = tmp_path / "stats.json"
    code = main(["federate", "stats", "--root", str(cli_root), "--nodes", ",".join(NODES),
                 "--table", "patient_genomic_data", "--numeric", "age,bmi",
                 "--crosstab", "variant_brca1,diagnosis_cancer", "--out", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    rows = next(c for c in data["cells"] if c["statistic"] == "rows" and c["group"] == "all")
    assert rows["combined"] == sum(SIZES.values())
    assert "[all] age: mean" in capsys.readouterr().out


def test_a_tiny_cohort_is_refused_by_the_nodes_policy(cli_root: Path) -> None:
    """A cohort that singles out a handful of rows (a differencing probe) is refused by
    each node's min_rows rule before anything is released."""
    with pytest.raises(FederationStoppedError, match="policy minimum"):
        _fit(cli_root, {"table": "patient_genomic_data", "outcome": "diagnosis_cancer",
                        "covariates": ["bmi"], "cohort": "age = 37 AND bmi < 24"})
    with opened(cli_root) as warehouses:
        assert all(_releases(w) == 0 for w in warehouses.values())


def test_a_node_without_the_table_aborts_at_once(cli_root: Path) -> None:
    with LocalNode("sg", cli_root).open_warehouse(create=False) as warehouse:
        warehouse.query(f"DROP TABLE {warehouse.table_ref(VISITS)}")
    started = time.monotonic()
    with pytest.raises(FederationStoppedError, match="could not answer"):
        _fit(cli_root, {"table": VISITS.name, "outcome": "visits", "covariates": ["age"],
                        "family": "poisson"})
    assert time.monotonic() - started < 20  # a signed abort, not a 30 s round timeout
