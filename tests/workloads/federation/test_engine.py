"""The federation engine over the in-process transport, against real encrypted warehouses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm

from workloads.federation import disclosure, local_stats, privacy, runner
from workloads.federation.coordinator import (
    Coordinator,
    FederationStoppedError,
    RunConfig,
)
from workloads.federation.protocol import Message, decode
from workloads.federation.transport import Counted, InProcessBus
from workloads.federation.worker import NodeWorker
from workloads.local_node import LocalNode


def pooled(nodes: list[LocalNode]) -> tuple[np.ndarray, sm.discrete.discrete_model.BinaryResults]:
    data = [local_stats.load(n) for n in nodes]
    x = sm.add_constant(np.vstack([d.x for d in data]))
    y = np.concatenate([d.y for d in data])
    return y, sm.Logit(y, x).fit(disp=0, tol=1e-12)


def test_federated_fit_equals_the_pooled_fit(two_nodes: tuple[Path, list[LocalNode]]) -> None:
    _, nodes = two_nodes
    with runner.in_process(nodes) as hub:
        coordinator = Coordinator(hub, RunConfig(nodes=("us", "eu"), round_timeout=20))
        fit = coordinator.fit()
        coordinator.finish()
    _, reference = pooled(nodes)
    assert fit.converged and fit.rounds <= 10
    np.testing.assert_allclose(fit.coefficients, reference.params, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fit.standard_errors, reference.bse, rtol=1e-6)
    assert fit.loglik == pytest.approx(reference.llf, abs=1e-6)
    for node in nodes:
        data = local_stats.load(node)
        beta_scaled = np.linalg.solve(_transform(), fit.coefficients)
        assert fit.auc[node.name] == pytest.approx(local_stats.auc(data, beta_scaled), abs=1e-9)
    assert coordinator.rejected == []


def _transform() -> np.ndarray:
    from workloads.federation.coordinator import _to_original_scale

    return _to_original_scale()


def test_auc_is_the_mann_whitney_statistic() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 5))
    y = (rng.random(300) < 0.3).astype(float)
    data = local_stats.NodeData(x=np.round(x, 1), y=y)  # rounding makes ties
    beta = np.array([0.0, 1.0, -0.5, 0.2, 0.0, 0.0])
    score = data.design() @ beta
    pos, neg = score[y == 1], score[y == 0]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert local_stats.auc(data, beta) == pytest.approx(pairs / (len(pos) * len(neg)))


def test_statistics_match_the_data_and_suppress_small_cells(
    two_nodes: tuple[Path, list[LocalNode]],
) -> None:
    _, nodes = two_nodes
    with runner.in_process(nodes) as hub:
        coordinator = Coordinator(hub, RunConfig(nodes=("us", "eu"), round_timeout=20))
        rows = coordinator.statistics()
        coordinator.finish()
    data = {n.name: local_stats.load(n) for n in nodes}
    everyone = rows[0]
    assert everyone.label == "all"
    for name, d in data.items():
        n, cases, _rate, age, _bmi = everyone.values[name]  # type: ignore[misc]
        assert (n, cases) == (d.n, d.y.sum())
        assert age == pytest.approx(d.x[:, 0].mean())
    combined = everyone.values["combined"]
    assert combined is not None
    assert combined[0] == 5000
    assert combined[2] == pytest.approx(np.mean(np.concatenate([d.y for d in data.values()])))
    # Every released cell has at least k patients, cases and non-cases.
    for row in rows:
        for value in row.values.values():
            if value is not None:
                n, cases = value[0], value[1]
                assert min(n, cases, n - cases) >= 10
    released = [r.label for r in rows if r.values["us"] is not None]
    assert "variant_brca1=2" not in released  # few carriers of two BRCA1 variants


def test_suppression_blocks_differencing() -> None:
    k = 10
    cells = np.zeros((len(local_stats.stats_cells()), 4))
    cells[:, 0], cells[:, 1] = 100, 40  # n, cases: everything releasable ...
    cells[0] = (300, 120, 0, 0)
    labels = local_stats.stats_cells()
    brca2 = labels.index(("variant_brca1", 2))
    brca1 = labels.index(("variant_brca1", 1))
    cells[brca2, :2] = (5, 2)  # ... except one small cell
    cells[brca1, :2] = (50, 20)
    released = disclosure.node_release(cells.reshape(-1), k).reshape(-1, 4)
    assert released[brca2, 0] == disclosure.SUPPRESSED
    # Secondary: the smallest other level goes too, so "all" minus the rest reveals nothing.
    assert released[brca1, 0] == disclosure.SUPPRESSED
    assert released[labels.index(("variant_brca1", 0)), 0] == 100
    # Across nodes: one node suppressed the cell, the other released it -> combined hidden.
    other = cells.copy()
    total = cells.reshape(-1) + other.reshape(-1)
    _, hidden = disclosure.combined_release(
        total, {"us": released.reshape(-1), "eu": other.reshape(-1)}, k
    )
    assert hidden[brca2] and hidden[brca1] and not hidden[0]


class Duplicating:
    """Delivers every upload twice (at-least-once delivery) and injects hostile messages."""

    def __init__(self, inner: Counted, run_id: str) -> None:
        self.inner, self.run_id, self.injected = inner, run_id, False

    def broadcast(self, data: bytes) -> None:
        self.inner.broadcast(data)

    def receive(self, timeout: float) -> list[bytes]:
        got = self.inner.receive(timeout)
        out = [d for d in got for _ in range(2)]
        if got and not self.injected:
            self.injected = True
            real = decode(got[0])
            out += [
                b"garbage",
                Message(
                    self.run_id, real.round, "xx", real.algorithm, "result", masked=real.masked
                ).encode(),
                Message(
                    "other-run", real.round, real.node, real.algorithm, "result", masked=real.masked
                ).encode(),
                Message(
                    self.run_id, real.round, real.node, real.algorithm, "result", masked=(1,) * 4000
                ).encode(),
                b"{" + b" " * (300 * 1024) + b"}",
            ]
        return out


def test_duplicates_change_nothing_and_hostile_uploads_are_rejected(
    two_nodes: tuple[Path, list[LocalNode]],
) -> None:
    _, nodes = two_nodes
    config = RunConfig(nodes=("us", "eu"), round_timeout=20)
    with runner.in_process(nodes) as hub:
        coordinator = Coordinator(Duplicating(hub, config.run_id), config)
        fit = coordinator.fit()
        coordinator.finish()
    _, reference = pooled(nodes)
    np.testing.assert_allclose(fit.coefficients, reference.params, rtol=0, atol=1e-6)
    assert coordinator.duplicates >= fit.rounds * 2
    reasons = "\n".join(coordinator.rejected)
    for expected in ("malformed", "not a participant", "another run", "exceeds"):
        assert expected in reasons


def test_a_dropout_stops_the_run_or_continues_with_a_quorum(
    two_nodes: tuple[Path, list[LocalNode]], tmp_path: Path
) -> None:
    _root, nodes = two_nodes
    # "sg" is expected but its worker never runs (a node that dropped out).
    with runner.in_process(nodes, preload=True) as hub:
        strict = Coordinator(hub, RunConfig(nodes=("us", "eu", "sg"), round_timeout=1.5))
        with pytest.raises(FederationStoppedError, match="no answer from sg"):
            strict.fit()
    with runner.in_process(nodes, preload=True) as hub:
        lenient = Coordinator(hub, RunConfig(nodes=("us", "eu", "sg"), round_timeout=1.5, quorum=2))
        fit = lenient.fit()
        lenient.finish()
    assert fit.participants == ("eu", "us")
    _, reference = pooled(nodes)
    np.testing.assert_allclose(fit.coefficients, reference.params, rtol=0, atol=1e-6)


def test_workers_ignore_what_is_addressed_to_other_nodes(
    two_nodes: tuple[Path, list[LocalNode]],
) -> None:
    _, nodes = two_nodes
    bus = InProcessBus(["us"])
    worker = NodeWorker(nodes[0], bus.node("us"))
    announce = Message("r", 1, "hub", "keys", "announce", to=("eu",))
    worker.handle(announce.encode())
    assert bus.uploads.empty()
    worker.handle(Message("r", 1, "hub", "keys", "announce", to=("us",)).encode())
    worker.handle(Message("r", 1, "hub", "keys", "announce", to=("us",)).encode())  # redelivery
    first, second = bus.uploads.get_nowait(), bus.uploads.get_nowait()
    assert first == second  # the same answer, not a second key or a second noisy sample
    worker.handle(Message("r", 2, "eu", "keys", "announce", to=("us",)).encode())
    assert bus.uploads.empty() and "not the hub" in worker.rejected[-1]


def test_budget_is_refused_before_any_release(two_nodes: tuple[Path, list[LocalNode]]) -> None:
    _, nodes = two_nodes
    dp = privacy.DPConfig(epsilon=3.0, rounds=4)
    with runner.in_process(nodes) as hub:
        coordinator = Coordinator(hub, RunConfig(nodes=("us", "eu"), dp=dp, round_timeout=20))
        fit = coordinator.fit()
        coordinator.finish()
    assert fit.epsilon is not None and fit.epsilon <= 3.0 + 1e-9
    assert np.all(np.isfinite(fit.coefficients))
    multiplier = privacy.calibrate(dp)
    with pytest.raises(privacy.BudgetExceededError, match="refused before any release"):
        privacy.check_budget(multiplier, 5, dp)
    # A budget too small for the planned rounds is refused before anything is announced.
    with runner.in_process(nodes) as hub:
        tiny = privacy.DPConfig(epsilon=1e-4, rounds=4)
        coordinator = Coordinator(hub, RunConfig(nodes=("us", "eu"), dp=tiny))
        with pytest.raises(privacy.BudgetExceededError):
            coordinator.fit()
        assert hub.bytes_sent == 0


def test_a_node_refuses_a_budget_above_its_ceiling(
    two_nodes: tuple[Path, list[LocalNode]],
) -> None:
    _, nodes = two_nodes
    bus = InProcessBus(["us", "eu"])
    worker = NodeWorker(nodes[0], bus.node("us"), max_epsilon=1.0)
    dp = privacy.DPConfig(epsilon=3.0, rounds=4)
    from workloads.federation.worker import dp_params

    worker.handle(Message("r", 1, "hub", "keys", "announce", to=("us", "eu")).encode())
    key = decode(bus.uploads.get_nowait()).public_keys
    announce = Message(
        "r",
        2,
        "hub",
        "logreg",
        "announce",
        to=("us", "eu"),
        values=(0.0,) * 6,
        public_keys={**key, "eu": key["us"]},
        params={"key_round": "1", "phase": "newton", **dp_params(dp, privacy.calibrate(dp))},
    )
    worker.handle(announce.encode())
    assert bus.uploads.empty()
    assert "ceiling" in worker.rejected[-1]


def _keyed_worker(
    node: LocalNode, bus: InProcessBus, run: str
) -> tuple[NodeWorker, dict[str, str]]:
    worker = NodeWorker(node, bus.node(node.name))
    worker.handle(Message(run, 1, "hub", "keys", "announce", to=("us", "eu")).encode())
    key = decode(bus.uploads.get_nowait()).public_keys
    return worker, {**key, "eu": key["us"]}


def test_dp_releases_survive_a_worker_restart(two_nodes: tuple[Path, list[LocalNode]]) -> None:
    from workloads.federation.worker import dp_params

    _, nodes = two_nodes
    bus = InProcessBus(["us", "eu"])
    dp = privacy.DPConfig(epsilon=3.0, rounds=2)
    params = {"key_round": "1", "phase": "newton", **dp_params(dp, privacy.calibrate(dp))}
    worker, keys = _keyed_worker(nodes[0], bus, "restart-run")

    def announce(round_: int) -> bytes:
        return Message(
            "restart-run",
            round_,
            "hub",
            "logreg",
            "announce",
            to=("us", "eu"),
            values=(0.0,) * 6,
            public_keys=keys,
            params=params,
        ).encode()

    worker.handle(announce(2))
    worker.handle(announce(3))
    assert bus.uploads.qsize() == 2
    # A restarted worker has lost its cache but not the ledger: a third release is refused.
    restarted = NodeWorker(nodes[0], bus.node("us"))
    restarted._keys = worker._keys
    restarted.handle(announce(2))
    assert bus.uploads.qsize() == 2
    assert "refused before any release" in restarted.rejected[-1]


def test_stale_announcements_are_ignored(two_nodes: tuple[Path, list[LocalNode]]) -> None:
    _, nodes = two_nodes
    bus = InProcessBus(["us"])
    worker = NodeWorker(nodes[0], bus.node("us"), max_age_s=60)
    old = Message("r", 1, "hub", "keys", "announce", to=("us",), sent_at=1_000)
    worker.handle(old.encode())
    assert bus.uploads.empty() and "ago" in worker.rejected[-1]


class GoesSilent:
    """A node endpoint that stops uploading after its first `keep` uploads."""

    def __init__(self, inner: object, keep: int) -> None:
        self.inner, self.keep = inner, keep

    def upload(self, data: bytes) -> None:
        if self.keep > 0:
            self.keep -= 1
            self.inner.upload(data)  # type: ignore[attr-defined]

    def receive(self, timeout: float) -> list[bytes]:
        got: list[bytes] = self.inner.receive(timeout)  # type: ignore[attr-defined]
        return got


def test_a_mid_run_dropout_reruns_the_round_with_fresh_keys(
    two_nodes: tuple[Path, list[LocalNode]], tmp_path: Path
) -> None:
    import threading

    from tests.workloads.federation.federation_data import make_node

    _, nodes = two_nodes
    sg = make_node(tmp_path, "sg", 400, 3)
    bus = InProcessBus(["us", "eu", "sg"])
    workers = [NodeWorker(n, bus.node(n.name)) for n in nodes]
    workers.append(NodeWorker(sg, GoesSilent(bus.node("sg"), keep=2)))  # type: ignore[arg-type]
    stop = threading.Event()
    threads = [threading.Thread(target=w.serve, args=(stop,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        coordinator = Coordinator(
            Counted(bus.hub()), RunConfig(nodes=("us", "eu", "sg"), round_timeout=2, quorum=2)
        )
        fit = coordinator.fit()  # sg answers the key exchange and round 1, then goes silent
    finally:
        stop.set()
    assert fit.participants == ("eu", "us")
    # Round 1 keys, round 2 Newton with sg, round 3 sg silent -> void; round 4 fresh keys.
    assert coordinator.key_round == 4
    assert coordinator.rejected == []
    _, reference = pooled(nodes)
    np.testing.assert_allclose(fit.coefficients, reference.params, rtol=0, atol=1e-6)


def test_dp_statistics_are_noisy_within_their_noise_and_spend_the_budget(
    two_nodes: tuple[Path, list[LocalNode]],
) -> None:
    _, nodes = two_nodes
    dp = privacy.DPConfig(epsilon=3.0, rounds=1)
    with runner.in_process(nodes) as hub:
        coordinator = Coordinator(hub, RunConfig(nodes=("us", "eu"), dp=dp, round_timeout=20))
        rows = coordinator.statistics()
        # The run planned one release, and statistics used it: the model is refused.
        with pytest.raises(privacy.BudgetExceededError, match="no differentially private"):
            coordinator.fit()
        coordinator.finish()
    sigma = privacy.calibrate(dp) * privacy.stats_sensitivity(
        local_stats.CELLS_PER_PATIENT, len(local_stats.STATS_FIELDS)
    )
    combined = rows[0].values["combined"]
    assert combined is not None
    n, _cases, rate, age, _bmi = combined
    assert n != 5000 and abs(n - 5000) < 6 * sigma * np.sqrt(2)
    data = [local_stats.load(node) for node in nodes]
    true_rate = np.mean(np.concatenate([d.y for d in data]))
    assert abs(rate - true_rate) < 0.02
    assert abs(age - np.mean(np.concatenate([d.x[:, 0] for d in data]))) < 1.0


def test_a_node_keeps_its_own_small_cell_floor(two_nodes: tuple[Path, list[LocalNode]]) -> None:
    _, nodes = two_nodes
    bus = InProcessBus(["us", "eu"])
    worker, keys = _keyed_worker(nodes[0], bus, "k-run")
    worker.handle(
        Message(
            "k-run",
            2,
            "hub",
            "stats",
            "announce",
            to=("us", "eu"),
            public_keys=keys,
            params={"key_round": "1", "k": "0"},
        ).encode()
    )
    released = np.asarray(decode(bus.uploads.get_nowait()).values).reshape(-1, 4)
    shown = released[released[:, 0] != disclosure.SUPPRESSED]
    assert len(shown) < len(released)  # the hub's k=0 did not lift suppression
    assert np.all(shown[:, 1] >= 10) and np.all(shown[:, 0] - shown[:, 1] >= 10)
