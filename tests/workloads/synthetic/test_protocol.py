"""Synthesis over the federation protocol, attacked: a hub that asks again is charged
again and refused at the node's policy cap; bins or columns not from the declarations are
refused by the node; the hub never sees one node's histogram; Pub/Sub = in-process."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.workloads.federation.federation_data import make_node, patient_rows
from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.federation import secure_agg
from workloads.federation.coordinator import FederationStoppedError, RunConfig
from workloads.federation.guard import ODOMETER, NodePolicy, write_policy
from workloads.federation.local import local_federation
from workloads.federation.protocol import decode
from workloads.local_node import LocalNode
from workloads.synthetic.columns import synth_columns
from workloads.synthetic.federated import (
    Request,
    SynthMarginals,
    SynthParams,
    Training,
    column_spec,
    histograms,
    train,
)
from workloads.synthetic.run import federated_synthesis

TABLE = PATIENT_GENOMIC_DATA
COLUMNS = synth_columns(TABLE)
SIZES = {"us": 700, "eu": 500}


def _nodes(root: Path, policy: NodePolicy | None = None) -> list[str]:
    for seed, (name, n) in enumerate(SIZES.items(), 1):
        node = make_node(root, name, n, seed)
        if policy is not None:
            write_policy(node, policy)
    return list(SIZES)


def _odometer(root: Path, name: str) -> int:
    with LocalNode(name, root).open_warehouse(create=False) as warehouse:
        warehouse.ensure_tables([ODOMETER])
        return int(warehouse.query("SELECT count(*) FROM federation_odometer WHERE dataset = ?",
                                   [TABLE.name]).column(0)[0].as_py())


def test_asking_again_is_charged_again_and_refused_at_the_policy_cap(tmp_path: Path) -> None:
    nodes = _nodes(tmp_path, NodePolicy(lifetime_epsilon=1.2))
    federated_synthesis(nodes, TABLE.name, 50, 1.0, root=tmp_path, out_dir=tmp_path / "o",
                        quality=False)
    assert [_odometer(tmp_path, n) for n in nodes] == [2, 2]  # marginals + products
    with pytest.raises(UserError, match="privacy budget of patient_genomic_data spent"):
        federated_synthesis(nodes, TABLE.name, 50, 1.0, root=tmp_path,
                            out_dir=tmp_path / "o", quality=False)  # 2 x eps 1 > 1.2
    assert [_odometer(tmp_path, n) for n in nodes] == [2, 2]  # refused: nothing released


def _ask(root: Path, nodes: list[str], params: SynthParams) -> None:
    with local_federation(root, nodes) as hub:
        coordinator = hub.coordinator(RunConfig(tuple(nodes), min_nodes=2, round_timeout=20))
        coordinator.aggregate(SynthMarginals(), params)


def test_bins_or_columns_not_from_the_declarations_are_refused(tmp_path: Path) -> None:
    nodes = _nodes(tmp_path)
    good = SynthParams.of(TABLE, COLUMNS, noise_multiplier=5.0)
    finer = list(good.bins)
    age = next(c for c in COLUMNS if c.name == "age")
    # 500 bins on age: a bin per (fractional) year, i.e. a probe of exact values
    finer[0] = column_spec(type(age)(age.name, "continuous", age.type, bounds=(25.0, 80.0),
                                     bins=500))
    asks = {
        "bins are not the ones derived": SynthParams(**{**good.__dict__, "bins": tuple(finer)}),
        "not releasable": SynthParams(**{**good.__dict__,
                                         "columns": ("patient_id", *good.columns[1:])}),
        "not declared": SynthParams(**{**good.__dict__, "table": "secret_table"}),
        "differentially private only": SynthParams(**{**good.__dict__,
                                                      "noise_multiplier": 0.0}),
    }
    for reason, params in asks.items():
        with pytest.raises(FederationStoppedError, match=reason):
            _ask(tmp_path, nodes, params)
    assert [_odometer(tmp_path, n) for n in nodes] == [0, 0]


def test_the_hub_never_sees_one_nodes_histogram(tmp_path: Path) -> None:
    nodes = _nodes(tmp_path)
    exact = {}
    for name in nodes:
        with LocalNode(name, tmp_path).open_warehouse(create=False) as warehouse:
            exact[name] = np.concatenate(histograms(warehouse, TABLE, COLUMNS))
    with local_federation(tmp_path, nodes, keep=True) as hub:
        coordinator = hub.coordinator(RunConfig(tuple(nodes), min_nodes=2, max_rounds=2))
        training = train(coordinator, Request(TABLE, COLUMNS, 3.0, jitter_seed=1))
        coordinator.finish()
        received = [decode(d) for d in hub.endpoint.kept]
    masked = [m for m in received if m.kind == "masked" and m.algorithm == SynthMarginals.name]
    assert {m.node for m in masked} == set(nodes)
    for message in masked:  # what the coordinator receives: masked, nowhere near a histogram
        values = secure_agg.decode(secure_agg.from_wire(message.masked))
        assert np.median(np.abs(values - exact[message.node])) > 1e6
    for message in received:  # and no other upload carries a vector of the histogram's size
        assert message.kind == "masked" or len(message.values) < len(exact["us"])
    total = np.concatenate(training.histogram_total)  # only the sum is readable
    assert np.abs(total - (exact["us"] + exact["eu"])).max() < 60  # DP noise, not a node


def _run(root: Path, nodes: list[str], transport: str) -> Training:
    with local_federation(root, nodes, transport=transport) as hub:
        coordinator = hub.coordinator(RunConfig(tuple(nodes), min_nodes=2, max_rounds=2,
                                                round_timeout=60))
        training = train(coordinator, Request(TABLE, COLUMNS, math.inf, jitter_seed=42))
        coordinator.finish()
    return training


@pytest.mark.slow  # starts the Pub/Sub emulator and a worker process per node (~10 s)
def test_pubsub_gives_the_statistics_of_in_process(tmp_path: Path, pubsub_emulator: str
                                                   ) -> None:
    nodes = _nodes(tmp_path, NodePolicy(lifetime_epsilon=math.inf, min_noise_multiplier=0.0))
    local = _run(tmp_path, nodes, "inprocess")
    remote = _run(tmp_path, nodes, "pubsub")
    # the same request (seed, bins) over both transports: equal up to the guard's floor
    # noise (multiplier 1e-3: standard deviation ~0.004 counts, ~0.05 on the products)
    for a, b in zip(local.histogram_total, remote.histogram_total, strict=True):
        np.testing.assert_allclose(a, b, atol=0.05)
    assert local.product_total is not None and remote.product_total is not None
    np.testing.assert_allclose(local.product_total, remote.product_total, atol=1.0)
    assert local.model is not None and remote.model is not None
    np.testing.assert_allclose(local.model.correlation, remote.model.correlation, atol=1e-3)
    pooled = sum(len(patient_rows(n, k, 0)) for n, k in SIZES.items())
    assert local.model.rows_estimate == pytest.approx(pooled, abs=0.1)

