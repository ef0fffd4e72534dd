"""Federated robotics statistics through the federation engine and each node's guard.

Four small nodes (us, eu, sg, ca) with stressed fleets (frequent complications, so cells
pass a small k). Nodes keep their release log and odometer for life: each test that asks
over a node set builds on the module's nodes in the order written here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from tests.workloads.federation.federation_data import make_node
from workloads.cli import main
from workloads.federation.coordinator import DPRequest, FederationStoppedError, RunConfig
from workloads.federation.guard import Guard, NodePolicy, write_policy
from workloads.federation.local import local_federation
from workloads.local_node import LocalNode
from workloads.robotics import federated
from workloads.robotics.aggregate import (
    COLUMN_LEVELS,
    MEASURES,
    ROW_LEVELS,
    CellCounts,
    node_cell_counts,
)
from workloads.robotics.profile import load_profile
from workloads.robotics.run import generate_fleet

from .conftest import SMALL, STRESS, write_fleet_profile

K = 3
NODES = ("us", "eu", "sg")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("robotics-federation")
    for seed, name in enumerate(("us", "eu", "sg", "ca"), 1):
        make_node(base, name, 200, seed)  # the node's own patients
        profile = load_profile(write_fleet_profile(base / "profiles", name, STRESS))
        config = profile.config(**{**SMALL, "procedures": 150})
        generate_fleet(profile, config, seed=seed, root=base, progress=False)
        write_policy(LocalNode(name, base), NodePolicy(min_k=K))
    return base


def pooled(root: Path, nodes: tuple[str, ...], cap: int | None = None) -> dict[str, np.ndarray]:
    """The pooled reference: the domain's aggregate added over the nodes (equal to the
    view over the union of the rows: test_robotics_aggregate), with the margins."""
    total: CellCounts | None = None
    for name in nodes:
        with LocalNode(name, root).open_warehouse(create=False) as wh:
            counts = node_cell_counts(wh, cap)
        total = counts if total is None else total + counts
    assert total is not None
    return {m: federated.extend(total.counts[m]) for m in MEASURES}


def run(root: Path, nodes: tuple[str, ...], **kwargs: object) -> federated.RoboticsTable:
    dp = kwargs.pop("dp", None)
    with local_federation(root, list(nodes)) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=nodes, k=K, round_timeout=20,
                                                dp=dp))  # type: ignore[arg-type]
        table = federated.run(coordinator, **kwargs)  # type: ignore[arg-type]
        coordinator.finish()
    return table


def attacker_interval(table: dict[str, object], measure: str, cell: tuple[int, int]
                      ) -> tuple[float, float]:
    """What a reader of the published table can learn of one suppressed cell: its least
    and greatest value over non-negative tables that agree with every published cell and
    with the margins (row and column sums), by linear programming."""
    rows, cols = len(table["rows"]), len(table["columns"])  # type: ignore[arg-type]
    values = {(r["robot_model"], r["procedure_category"]): r[measure]
              for r in table["cells"]}  # type: ignore[attr-defined]
    names_r, names_c = table["rows"], table["columns"]
    unknown = [(i, j) for i in range(rows) for j in range(cols)
               if values[(names_r[i], names_c[j])] is None]  # type: ignore[index]
    index = {c: n for n, c in enumerate(unknown)}
    a_eq, b_eq = [], []
    line_sets = [[(i, j) for j in range(cols)] for i in range(rows)]
    line_sets += [[(i, j) for i in range(rows)] for j in range(cols)]
    for line in line_sets:
        coefficients, known = np.zeros(len(unknown)), 0.0
        for position, c in enumerate(line):
            sign = -1.0 if position == len(line) - 1 else 1.0
            if c in index:
                coefficients[index[c]] = sign
            else:
                known += sign * float(values[(names_r[c[0]], names_c[c[1]])])  # type: ignore
        if coefficients.any():
            a_eq.append(coefficients)
            b_eq.append(-known)
    objective = np.zeros(len(unknown))
    objective[index[cell]] = 1.0
    bounds = [(0, None)] * len(unknown)
    low = linprog(objective, A_eq=np.array(a_eq), b_eq=b_eq, bounds=bounds)
    high = linprog(-objective, A_eq=np.array(a_eq), b_eq=b_eq, bounds=bounds)
    assert low.status == 0, "the published table must be consistent"
    return float(low.fun), (float("inf") if high.status == 3 else float(-high.fun))


def test_federated_cells_equal_pooled_and_suppressed_cells_stay_hidden(
        root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "robotics.json"
    code = main(["federate", "robotics", "--root", str(root), "--nodes", ",".join(NODES),
                 "--k", str(K), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Federated complication rate by robot model x procedure category" in printed
    table = json.loads(out.read_text())
    truth = pooled(root, NODES)
    rows, cols = table["rows"], table["columns"]
    released = suppressed = 0
    for cell in table["cells"]:
        i, j = rows.index(cell["robot_model"]), cols.index(cell["procedure_category"])
        if cell["suppressed"]:
            suppressed += 1
            assert all(cell[m] is None for m in federated.RATE_MEASURES)
            assert cell["complication_rate"] is None
            continue
        released += 1
        for m in federated.RATE_MEASURES:
            assert cell[m] == truth[m][i, j], (cell, m)
        if truth["procedures"][i, j]:
            rate = truth["with_complications"][i, j] / truth["procedures"][i, j]
            assert cell["complication_rate"] == pytest.approx(rate)
    assert released >= 20 and suppressed >= 4, (released, suppressed)
    # The rule behind every suppression holds on the pooled table.
    for cell in table["cells"]:
        if not cell["suppressed"] and cell["procedures"]:
            assert cell["procedures"] >= K
            assert K <= cell["with_complications"] <= cell["procedures"] - K

    # Attack 1: solve the margin equations for each suppressed cell (LP over every
    # non-negative table consistent with what was published).
    narrowest = float("inf")
    for cell in table["cells"]:
        if cell["suppressed"]:
            key = (rows.index(cell["robot_model"]), cols.index(cell["procedure_category"]))
            for m in ("procedures", "with_complications"):
                low, high = attacker_interval(table, m, key)
                assert low <= truth[m][key] <= high
                assert high - low >= 1, (cell, m, low, high)  # never pinned down
                narrowest = min(narrowest, high - low)
    print(f"narrowest interval of a suppressed cell: {narrowest}")

    # Attack 2: ask the same question over another node set (adding ca, or dropping us),
    # or disguised (another cap, fewer measures): the nodes' release logs refuse.
    for nodes, kwargs in (
        (("us", "eu", "sg", "ca"), {}),
        (("eu", "sg", "ca"), {}),
        (("us", "eu", "sg", "ca"), {"max_per_patient": 50}),
        (("us", "eu", "sg", "ca"), {"measures": ("procedures",)}),
    ):
        with pytest.raises(FederationStoppedError, match="answered before over"):
            run(root, nodes, **kwargs)
    # The same node set may ask again (the same answer), also with failed procedures,
    # whose own small-cell rule hides more cells.
    again = run(root, NODES)
    assert again.to_json()["cells"] == table["cells"]
    with_failed = run(root, NODES, measures=MEASURES)
    # Asking for more measures must not move the rate's pattern (two patterns of the same
    # cells could be combined): the procedures and complications published are identical.
    for m in federated.RATE_MEASURES:
        assert with_failed.counts[m] == again.counts[m]
    shown = 0
    for i in range(federated.ROWS):
        for j in range(federated.COLS):
            failed = with_failed.counts["failed"][i][j]
            if failed is not None:
                shown += 1
                assert failed == truth["failed"][i, j]
                assert table["cells"][i * federated.COLS + j]["procedures"] is not None
    assert shown >= 1


def test_dp_charges_each_odometer_and_needs_a_cap(
        root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = ("us", "eu", "sg")
    before = {n: Guard(LocalNode(n, root)).lifetime_epsilon("surgical_procedures")
              for n in nodes}
    for extra, text in ((["--dp-epsilon", "2"], "need a per-patient cap; fix: add "
                         "--max-per-patient M"),
                        (["--max-per-patient", "-1"], "--max-per-patient -1: must be >= 0")):
        code = main(["federate", "robotics", "--root", str(root), "--nodes", ",".join(nodes),
                     "--k", str(K), *extra])
        err = capsys.readouterr().err
        assert code == 2 and text in err, err
        assert [line for line in err.splitlines() if line.startswith("error:")] == [
            err.splitlines()[-1]]
    with pytest.raises(FederationStoppedError, match="per-patient cap"):
        run(root, nodes, dp=DPRequest(5.0, 1))
    table = run(root, nodes, dp=DPRequest(5.0, 1), max_per_patient=2)
    assert table.dp
    after = {n: Guard(LocalNode(n, root)).lifetime_epsilon("surgical_procedures")
             for n in nodes}
    for n in nodes:
        assert before[n] == 0.0 < after[n] <= 5.0 + 1e-9, (n, before, after)
    truth = pooled(root, nodes, cap=2)
    grand = table.counts["procedures"][-1][-1]
    assert grand is not None
    # Noise sigma = multiplier x sensitivity (2 x sqrt(12) x ~1) per node: well within 60.
    assert abs(grand - truth["procedures"][-1, -1]) < 60
    with LocalNode("us", root).open_warehouse(create=False) as wh:
        rows = wh.query("SELECT algorithm FROM federation_odometer").column(0).to_pylist()
    assert rows == ["robotics_cells"]


def as_published(counts: dict[str, np.ndarray], hidden: np.ndarray) -> dict[str, object]:
    """An extended table in the published JSON shape, suppressed cells None."""
    rows, cols = [*ROW_LEVELS, federated.ALL], [*COLUMN_LEVELS, federated.ALL]
    return {"rows": rows, "columns": cols, "cells": [
        {"robot_model": rows[i], "procedure_category": cols[j],
         **{m: None if hidden[i, j] else float(v[i, j]) for m, v in counts.items()}}
        for i in range(len(rows)) for j in range(len(cols))]}


def assert_protected(counts: dict[str, np.ndarray], hidden: np.ndarray, k: int) -> None:
    """Play the reader: no suppressed cell is pinned down by the margins; a line whose margin
    is published hides at least k in each measure (or nothing)."""
    table = as_published(counts, hidden)
    for key in map(tuple, np.argwhere(hidden)):
        for m in counts:
            low, high = attacker_interval(table, m, key)  # type: ignore[arg-type]
            assert low <= counts[m][key] <= high
            assert high - low >= 1, (key, m, low, high)
    n, c = counts["procedures"], counts["with_complications"]
    for line in federated.lines():
        inside = [cell for cell in line if hidden[cell]]
        if inside and not hidden[line[-1]]:
            for values in (n, c, n - c):
                assert sum(int(values[cell]) for cell in inside) >= k


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.9), st.sampled_from([3, 5, 10]))
def test_suppression_protects_any_table(seed: int, density: float, k: int) -> None:
    """Random sparse tables (many small and empty cells): whatever the pattern, the margins
    never give a suppressed cell away (linear programming over non-negative tables)."""
    rng = np.random.default_rng(seed)
    shape = (len(ROW_LEVELS), len(COLUMN_LEVELS))
    n = np.where(rng.random(shape) < density, rng.integers(1, 40, shape), 0)
    c = rng.binomial(n, rng.uniform(0.05, 0.6))
    counts = {"procedures": federated.extend(n), "with_complications": federated.extend(c)}
    hidden = federated.suppress(counts, k)
    assert not (hidden & (counts["procedures"] == 0)).any() or hidden.all()
    assert_protected(counts, hidden, k)


def test_each_nodes_own_release_is_protected(root: Path) -> None:
    """What a node masks, read alone (as colluding peers could, subtracting their own):
    its suppressed cells are zeroed and cannot be derived from its own margins."""
    algorithm = federated.RoboticsCells()
    params = federated.RoboticsParams(k=K)
    for name in ("us", "eu", "sg"):
        with LocalNode(name, root).open_warehouse(create=False) as wh:
            vector = algorithm.compute_in(wh, params, np.zeros(0), NodePolicy(min_k=K))
            cells = node_cell_counts(wh)
        measures = federated.RATE_MEASURES
        parts = vector.reshape(2 * len(measures), federated.ROWS, federated.COLS)
        hidden = parts[len(measures)] == 0
        assert (parts[len(measures) + 1] == parts[len(measures)]).all()  # one rate pattern
        truth = {m: federated.extend(cells.counts[m]) for m in measures}
        assert hidden.any() and not hidden.all()
        for i, m in enumerate(measures):
            assert (parts[i][hidden] == 0).all()
            assert (parts[i][~hidden] == truth[m][~hidden]).all()
        assert_protected({m: truth[m] for m in ("procedures", "with_complications")}, hidden, K)
