"""The federation end to end, in-process: exact results, dropouts recovered, what leaves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.workloads.federation.conftest import Federation
from workloads.federation import algorithms, data
from workloads.federation.coordinator import DPRequest, FederationStoppedError, RunConfig
from workloads.federation.guard import Guard, NodePolicy, load_policy, write_policy
from workloads.federation.local import local_federation
from workloads.federation.protocol import decode
from workloads.federation.report import pooled_fit
from workloads.local_node import LocalNode

NAMES = ("us", "eu", "sg")


def _truth(nodes: list[LocalNode]) -> np.ndarray:
    """n, cases, sum of age per statistics cell, computed directly from all rows."""
    rows = np.vstack([data.load(n, "patient_genomic_data", ("diagnosis_cancer", "age",
                      "variant_brca1")).values for n in nodes])
    return rows


def test_fit_equals_the_pooled_fit_and_only_aggregates_leave(three_nodes: Federation) -> None:
    root, nodes = three_nodes
    with local_federation(root, list(NAMES), keep=True) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=NAMES))
        rows = coordinator.statistics()
        fit = coordinator.fit()
        coordinator.finish()
    reference, errors = pooled_fit(nodes)
    np.testing.assert_allclose(fit.coefficients, reference, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fit.standard_errors, errors, rtol=0, atol=1e-6)
    assert fit.converged and set(fit.auc) == set(NAMES)
    assert coordinator.rejected == []
    pooled = _truth(nodes)
    everyone = rows[0].values["combined"]
    assert everyone is not None
    assert everyone[0] == len(pooled) == 6500 and everyone[1] == pooled[:, 0].sum()
    assert everyone[3] == pytest.approx(pooled[:, 1].mean(), abs=1e-6)
    brca1_0 = next(r for r in rows if r.label == "variant_brca1=0").values["combined"]
    assert brca1_0 is not None and brca1_0[0] == (pooled[:, 2] == 0).sum()
    # Nothing the hub received is row-level: no patient id, every array bounded by the
    # model's dimension (the nodes hold 3,000, 2,000 and 1,500 rows), no per-node cells.
    dims = {0, algorithms.GLM().dimension(algorithms.GLMParams()),
            algorithms.Stats().dimension(algorithms.StatsParams())}
    for raw in hub.endpoint.kept:
        assert b"US-" not in raw and b"EU-" not in raw and b"SG-" not in raw
        message = decode(raw)
        assert len(message.masked) in dims
        assert len(message.values) <= 1  # only a node's noised AUC travels unmasked
        assert len(raw) < 64 * 1024


def test_a_node_dropping_mid_run_is_recovered_without_rerunning(
    make_federation: Callable[[dict[str, int]], Federation],
) -> None:
    root, nodes = make_federation({"us": 900, "eu": 800, "sg": 700, "jp": 600})
    names = ("eu", "jp", "sg", "us")
    with local_federation(root, list(names)) as hub:
        assert hub.workers is not None
        quitter = next(w for w in hub.workers if w.name == "jp")
        honest = quitter.handle

        def silent_on_glm(raw: bytes) -> bool:
            return False if decode(raw).algorithm == "glm" else honest(raw)

        quitter.handle = silent_on_glm  # type: ignore[method-assign]
        coordinator = hub.coordinator(RunConfig(nodes=names, round_timeout=3))
        rows = coordinator.statistics()
        fit = coordinator.fit()
        coordinator.finish()
    assert rows[0].values["combined"] is not None
    assert rows[0].values["combined"][0] == 3000  # stats: all four nodes
    survivors = [n for n in nodes if n.name != "jp"]
    reference, _ = pooled_fit(survivors)  # the model: the three that stayed
    np.testing.assert_allclose(fit.coefficients, reference, rtol=0, atol=1e-6)
    assert coordinator.dropped == ["jp"] and fit.participants == ("eu", "sg", "us")
    # The first glm round was not re-run: one masked round per Newton round.
    assert coordinator.slot == 1 + fit.rounds


def test_too_few_survivors_stop_with_the_silent_nodes_named(
    make_federation: Callable[[dict[str, int]], Federation],
) -> None:
    root, _ = make_federation({"us": 300, "eu": 300, "sg": 300})
    with local_federation(root, list(NAMES)) as hub:
        assert hub.workers is not None
        sg = next(w for w in hub.workers if w.name == "sg")
        sg.handle = lambda raw: False  # type: ignore[method-assign]
        coordinator = hub.coordinator(RunConfig(nodes=NAMES, round_timeout=1))
        with pytest.raises(FederationStoppedError, match=r"threshold is 3.*no answer from sg"):
            coordinator.statistics()


def test_a_node_that_cannot_answer_says_so_at_once_without_leaking_the_engine_message(
    make_federation: Callable[[dict[str, int]], Federation],
) -> None:
    """A failure inside the node (here: no robotics fleet, so the engine raises its own
    catalog error) is a signed abort naming only the error's type, so the hub stops with
    the cause at once instead of waiting out the round timeout ("no answer from ...")."""
    import time

    from workloads.robotics import federated as robotics_federated

    root, _ = make_federation({"us": 300, "eu": 300, "sg": 300})
    with local_federation(root, list(NAMES)) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=NAMES, round_timeout=20))
        started = time.monotonic()
        with pytest.raises(FederationStoppedError, match=r"internal error \(\w+\)") as caught:
            robotics_federated.run(coordinator)
    assert time.monotonic() - started < 10
    assert "complications_by_model_category" not in str(caught.value)  # no engine text


def test_dp_releases_are_charged_to_each_node_for_life(
    make_federation: Callable[[dict[str, int]], Federation],
) -> None:
    root, nodes = make_federation({"us": 1500, "eu": 1500, "sg": 1500})
    for node in nodes:
        write_policy(node, NodePolicy(lifetime_epsilon=4.0, min_noise_multiplier=2.0))
    spent = []
    for _ in range(2):
        with local_federation(root, list(NAMES)) as hub:
            coordinator = hub.coordinator(RunConfig(nodes=NAMES, dp=DPRequest(30.0, 1)))
            rows = coordinator.statistics()
            coordinator.finish()
        assert rows[0].values["combined"] is not None
        assert abs(rows[0].values["combined"][0] - 4500) < 100  # noisy but near
        spent.append(Guard(nodes[0], load_policy(nodes[0])).lifetime_epsilon(
            "patient_genomic_data"))
    # The hub asked for almost no noise; each node used its own minimum (multiplier 2) and
    # its odometer composed both runs (not per run).
    assert 0 < spent[0] < spent[1] <= 4.0
    with local_federation(root, list(NAMES)) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=NAMES, dp=DPRequest(30.0, 1)))
        with pytest.raises(FederationStoppedError, match=r"privacy budget .* spent"):
            coordinator.statistics()


def test_dp_fit_runs_its_planned_rounds(
    make_federation: Callable[[dict[str, int]], Federation],
) -> None:
    root, nodes = make_federation({"us": 4000, "eu": 4000, "sg": 4000})
    with local_federation(root, list(NAMES)) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=NAMES, dp=DPRequest(10.0, 4)))
        fit = coordinator.fit()
        coordinator.finish()
    reference, _ = pooled_fit(nodes)
    assert fit.rounds == 4 and fit.epsilon is not None and fit.epsilon <= 10.0 + 1e-9
    assert np.all(np.isfinite(fit.coefficients))
    assert abs(fit.coefficients[3] - reference[3]) < 1.0  # brca1: same sign and size


def test_policy_file_is_the_nodes_own(make_federation: Callable[[dict[str, int]], Any]) -> None:
    root, nodes = make_federation({"us": 200})
    path = write_policy(nodes[0], NodePolicy(lifetime_epsilon=1.5, exact_releases=()))
    assert load_policy(nodes[0]) == NodePolicy(lifetime_epsilon=1.5, exact_releases=())
    path.write_text("lifetime_epsilon = -1\n")
    with pytest.raises(Exception, match="policy is not valid"):
        load_policy(nodes[0])
    path.write_text("max_epsilon = 3\n")
    with pytest.raises(Exception, match="unknown settings"):
        load_policy(nodes[0])
    assert isinstance(root, Path)
