"""The node's privacy ledger: in its encrypted warehouse, persistent, atomic, charged
again by every synthesis, and refusing a run past the cap before anything is released."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.workloads.federation.federation_data import make_node
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.federation import secure_agg
from workloads.local_node import LocalNode
from workloads.synthetic import node as node_module
from workloads.synthetic.dp import BudgetExceededError, DPEvent, rho_for
from workloads.synthetic.ledger import LEDGER, NodeBudget, WarehouseLedger
from workloads.synthetic.run import federated_synthesis


@pytest.fixture()
def nodes(tmp_path: Path) -> tuple[Path, list[LocalNode]]:
    return tmp_path, [make_node(tmp_path, "us", 600, 1), make_node(tmp_path, "eu", 500, 2)]


def _ledger(node: LocalNode, budget: NodeBudget | None = None) -> tuple[WarehouseLedger, object]:
    warehouse = node.open_warehouse(create=False)
    return WarehouseLedger(node.name, warehouse, budget), warehouse


def _spent(node: LocalNode) -> tuple[float, int]:
    ledger, warehouse = _ledger(node)
    try:
        s = ledger.spent()
        return s.rho, s.events
    finally:
        warehouse.close()  # type: ignore[attr-defined]


def test_every_synthesis_is_charged_again_and_persists(nodes: tuple[Path, list[LocalNode]]
                                                       ) -> None:
    root, (us, eu) = nodes
    federated_synthesis(["us", "eu"], "patient_genomic_data", 200, 1.0, root=root,
                        out_dir=root / "out", quality=False, seed=1)
    rho_once, events_once = _spent(us)
    assert rho_once == pytest.approx(rho_for(1.0, 1e-6), rel=1e-9)
    assert events_once == 7  # 6 histograms + the product sums
    federated_synthesis(["us", "eu"], "patient_genomic_data", 200, 1.0, root=root,
                        out_dir=root / "out", quality=False, seed=1)  # the very same request
    assert _spent(us) == (pytest.approx(2 * rho_once), 14)
    assert _spent(eu) == (pytest.approx(2 * rho_once), 14)
    # the ledger lives in the node's encrypted warehouse (no plain file beside it)
    ledger, warehouse = _ledger(us)
    try:
        runs = {e["run_id"].split("/")[0] for e in ledger.events()}
        assert len(runs) == 2
    finally:
        warehouse.close()  # type: ignore[attr-defined]
    assert sorted(p.name for p in us.folder.iterdir() if p.is_file()) == ["warehouse.duckdb"]
    assert LEDGER.name.encode() not in us.warehouse_path.read_bytes()


def test_a_run_past_the_cap_is_refused_before_any_release(
        nodes: tuple[Path, list[LocalNode]], monkeypatch: pytest.MonkeyPatch) -> None:
    root, (us, eu) = nodes
    released: list[str] = []
    real_noisy = node_module.noisy_counts
    monkeypatch.setattr(node_module, "noisy_counts",
                        lambda c, s: released.append("hist") or real_noisy(c, s))
    real_mask = secure_agg.mask
    monkeypatch.setattr(secure_agg, "mask",
                        lambda *a, **k: released.append("mask") or real_mask(*a, **k))
    budget = NodeBudget(epsilon=2.0)
    federated_synthesis(["us", "eu"], "patient_genomic_data", 100, 1.5, root=root,
                        out_dir=root / "ok", quality=False, node_budget=budget)
    assert released
    released.clear()
    before = _spent(us), _spent(eu)
    with pytest.raises(BudgetExceededError, match="refused before any release"):
        federated_synthesis(["us", "eu"], "patient_genomic_data", 100, 1.5, root=root,
                            out_dir=root / "refused", quality=False, node_budget=budget)
    assert released == []  # no noisy histogram computed, nothing masked or sent
    assert not (root / "refused").exists()
    # us (asked first) refused, so the run stopped: neither ledger changed
    assert (_spent(us), _spent(eu)) == before


def test_one_node_over_its_cap_charges_no_other_node(nodes: tuple[Path, list[LocalNode]]
                                                     ) -> None:
    root, (us, eu) = nodes
    ledger, warehouse = _ledger(eu, NodeBudget(epsilon=10.0))
    try:  # eu (asked second) has already spent most of its budget elsewhere
        ledger.charge([DPEvent("eu", "earlier", "q", "gaussian", 1.0, 1.0,
                                rho_for(10.0, 1e-6) * 0.995)])
    finally:
        warehouse.close()  # type: ignore[attr-defined]
    before = _spent(us), _spent(eu)
    with pytest.raises(BudgetExceededError, match="node eu"):
        federated_synthesis(["us", "eu"], "patient_genomic_data", 100, 1.0, root=root,
                            out_dir=root / "refused", quality=False)
    assert (_spent(us), _spent(eu)) == before  # us was not charged for a run that died


def test_a_charge_is_all_or_nothing(nodes: tuple[Path, list[LocalNode]]) -> None:
    _, (us, _) = nodes
    ledger, warehouse = _ledger(us, NodeBudget(epsilon=1.0))
    try:
        cap = rho_for(1.0, 1e-6)
        small = DPEvent("us", "r1", "histogram(age)", "discrete_gaussian", 1.0, 10.0, cap * 0.4)
        ledger.charge([small])
        with pytest.raises(BudgetExceededError):
            ledger.charge([small, small])  # 0.4 + 0.8 > 1: neither is recorded
        assert ledger.spent().events == 1
        ledger.charge([small])
        assert ledger.spent().events == 2
        assert ledger.spent().epsilon <= 1.0
        with pytest.raises(BudgetExceededError):  # a release without noise never fits
            ledger.charge([DPEvent("us", "r2", "x", "none", 1.0, 0.0, math.inf)])
        with pytest.raises(ValueError):
            ledger.charge([DPEvent("eu", "r3", "x", "gaussian", 1.0, 1.0, 0.5)])
    finally:
        warehouse.close()  # type: ignore[attr-defined]


def test_the_ledger_survives_reopening(nodes: tuple[Path, list[LocalNode]]) -> None:
    _, (us, _) = nodes
    ledger, warehouse = _ledger(us)
    ledger.charge([DPEvent("us", "r", "q", "gaussian", 1.0, 5.0, 0.02)])
    warehouse.close()  # type: ignore[attr-defined]
    assert _spent(us) == (pytest.approx(0.02), 1)
    assert np.isfinite(_spent(us)[0])
    assert PATIENT_GENOMIC_DATA.name  # the data table is untouched by the ledger
