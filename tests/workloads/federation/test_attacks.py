"""The seven attack classes of issue #10, each played by the attacker and shown to fail.

Each was first reproduced against the v1 engine (see the commit that introduced the v2
protocol): there, the differencing of node sets, the AUC oracle, the forged upload and the
deep-nesting crash all succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests.workloads.federation.conftest import Federation
from tests.workloads.federation.driver import Driver, routed
from tests.workloads.federation.federation_data import patient_rows, write_rows
from workloads.cli import main
from workloads.federation import algorithms, secure_agg, shamir
from workloads.federation import data as node_data
from workloads.federation.coordinator import DPRequest, FederationStoppedError, RunConfig
from workloads.federation.guard import NodePolicy, write_policy
from workloads.federation.identity import local_signer
from workloads.federation.local import local_federation
from workloads.federation.protocol import Message
from workloads.federation.worker import receipt_payload

MakeFederation = Callable[[dict[str, int]], Federation]
GLM_WIRE = algorithms.to_wire(algorithms.GLMParams())
ZERO = (0.0,) * 6


def _round(driver: Driver, run: str, members: tuple[str, ...], shares: dict[str, Message],
           slot: int, model: tuple[float, ...] = ZERO, wire: dict[str, str] | None = None,
           algorithm: str = "glm") -> dict[str, Message]:
    return driver.send(run, "round", algorithm, members, values=model,
                       params={**(wire or GLM_WIRE), "slot": str(slot)},
                       blobs=routed(shares, members) if slot == 0 else {})


def _unmask(driver: Driver, run: str, to: tuple[str, ...], of: int,
            uploads: dict[str, Message], survivors: tuple[str, ...] | None = None,
            proofs: dict[str, str] | None = None) -> dict[str, Message]:
    """Send `to` an unmask step naming `survivors` (default: `to`), with the receipts."""
    survivors = survivors or to
    if proofs is None:
        proofs = {n: m.keys["receipt"] for n, m in uploads.items() if "receipt" in m.keys}
    return driver.send(run, "unmask", "glm", to, keys={"survivors": ",".join(survivors)},
                       blobs=proofs, params={"of": str(of)})


# 1. Suppressed cells recovered by subtraction -----------------------------------------------


def test_1_the_same_question_over_another_node_set_is_refused(
    make_federation: MakeFederation,
) -> None:
    root, nodes = make_federation({"us": 600, "eu": 600, "sg": 600, "jp": 600})
    with local_federation(root, ["us", "eu", "sg"]) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=("us", "eu", "sg")))
        rows = coordinator.statistics()
        coordinator.finish()
    # Every published cell passed k at every node (never "combined minus mine").
    per_node = [node_data.load(n, "patient_genomic_data", ("diagnosis_cancer", "variant_brca1"))
                for n in nodes[:3]]
    for row in rows:
        if row.values["combined"] is None or not row.label.startswith("variant_brca1="):
            continue
        level = float(row.label.split("=")[1])
        for d in per_node:
            inside = d.get("variant_brca1") == level
            cases = d.get("diagnosis_cancer")[inside].sum()
            assert inside.sum() - cases >= 10 and cases >= 10
    assert any(r.values["combined"] is None for r in rows)  # rare levels stay hidden
    # The attacker's second run over {us, eu, jp}: us and eu refuse the difference.
    with local_federation(root, ["us", "eu", "sg", "jp"]) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=("us", "eu", "jp")))
        with pytest.raises(FederationStoppedError, match="answered before over"):
            coordinator.statistics()


# 2. The per-node AUC is not an oracle -------------------------------------------------------


def test_2_auc_only_once_for_the_runs_own_model_and_noised(make_federation: MakeFederation
                                                           ) -> None:
    root, _ = make_federation({"us": 1500, "eu": 1500, "sg": 1500})
    members = ("eu", "sg", "us")
    driver = Driver(root, list(members))
    run, shares = driver.set_up(members)
    auc_wire = algorithms.to_wire(algorithms.AUCParams())
    probe = (0.0, 0.0, 0.0, 50.0, 0.0, 0.0)
    replies = _round(driver, run, members, shares, 0, probe, auc_wire, "auc")
    assert {m.kind for m in replies.values()} == {"abort"}
    assert "never for other coefficients" in replies["us"].params["reason"]
    uploads = _round(driver, run, members, shares, 0)  # a real (zero) model round
    assert {m.kind for m in uploads.values()} == {"masked"}
    released = _round(driver, run, members, shares, 1, ZERO, auc_wire, "auc")
    assert released["us"].kind == "release" and released["us"].params["dp"] == "true"
    again = _round(driver, run, members, shares, 2, ZERO, auc_wire, "auc")
    assert "already released" in again["us"].params["reason"]


# 3. The hub never sees a node's cells -------------------------------------------------------


def test_3_statistics_leave_only_masked_and_zeroed_below_k(make_federation: MakeFederation
                                                           ) -> None:
    root, nodes = make_federation({"us": 400, "eu": 400, "sg": 400})
    members = ("eu", "sg", "us")
    driver = Driver(root, list(members))
    run, shares = driver.set_up(members)
    wire = algorithms.to_wire(algorithms.StatsParams())
    uploads = _round(driver, run, members, shares, 0, (), wire, "stats")
    for message in uploads.values():
        assert message.kind == "masked" and message.values == ()  # no clear table at all
    reveals = _unmask(driver, run, members, driver.step, uploads)
    # The hub's best: the unmasked sum, in which every node's failing cells are zero.
    indices = secure_agg.share_indices(members)
    total = secure_agg.aggregate([secure_agg.from_wire(m.masked) for m in uploads.values()])
    seeds = {n: shamir.combine({indices[r]: shamir.from_hex(reveals[r].keys[f"b:{n}"])
                                for r in members}) for n in members}
    total = secure_agg.unmask(total, seeds, {}, {}, f"{run}|0")
    stats = algorithms.Stats()
    params = algorithms.StatsParams()
    expected = sum(
        stats.compute(node_data.load(n, params.table, stats.columns(params)), params,
                      np.zeros(0), NodePolicy()) for n in nodes
    )
    np.testing.assert_allclose(secure_agg.decode(total), expected, atol=1e-6)


# 4. The DP budget cannot be bypassed --------------------------------------------------------


def test_4_lifetime_budget_node_delta_and_no_hub_opt_out(make_federation: MakeFederation
                                                         ) -> None:
    root, nodes = make_federation({"us": 800, "eu": 800, "sg": 800})
    members = ("eu", "sg", "us")
    for node in nodes:
        write_policy(node, NodePolicy(lifetime_epsilon=3.0, min_noise_multiplier=3.0,
                                      exact_releases=()))
    driver = Driver(root, list(members))
    cheap = algorithms.to_wire(algorithms.StatsParams(noise_multiplier=0.01))
    outcomes = []
    for _ in range(6):  # new run ids each time: the old per-run ledger reset here
        run, shares = driver.set_up(members)
        replies = _round(driver, run, members, shares, 0, (), cheap, "stats")
        outcomes.append(replies["us"].kind)
    assert outcomes[0] == "masked" and outcomes[-1] == "abort"
    assert "privacy budget" in replies["us"].params["reason"]
    worker = driver.workers["us"]
    assert worker.guard.lifetime_epsilon("patient_genomic_data") <= 3.0
    # The hub cannot opt out of DP (policy allows no exact release) ...
    run, shares = driver.set_up(members)
    exact = _round(driver, run, members, shares, 0, (), algorithms.to_wire(
        algorithms.StatsParams()), "stats")
    assert "allows exact releases only of nothing" in exact["us"].params["reason"]
    # ... nor choose delta: it is the node's own (an extra parameter is refused).
    run, shares = driver.set_up(members)
    bad = _round(driver, run, members, shares, 0, (), {**cheap, "dp_delta": "0.5"}, "stats")
    assert "unknown parameters ['dp_delta']" in bad["us"].params["reason"]


# 5. Secure aggregation holds against a malicious hub ----------------------------------------


def test_5a_substituted_or_invented_keys_are_refused(make_federation: MakeFederation) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    root, _ = make_federation({"us": 300, "eu": 300, "sg": 300})
    members = ("eu", "sg", "us")
    driver = Driver(root, list(members))
    # A key of the hub's own under a fake peer name.
    replies = driver.send("r1", "setup", "secagg", (*members, "zz"), params={"slots": "2"})
    assert "zz not in this node's pinned roster" in replies["us"].params["reason"]
    # eu's keys replaced by the hub's (man in the middle): not signed by eu.
    keys = driver.send("r2", "setup", "secagg", members, params={"slots": "2"})
    adverts = {n: f"{m.keys['c']}:{m.keys['s']}:{m.keys['sig']}" for n, m in keys.items()}
    mine = secure_agg.public_hex(X25519PrivateKey.generate())
    adverts["eu"] = f"{mine}:{mine}:{keys['eu'].keys['sig']}"
    shares = driver.send("r2", "share", "secagg", ("sg", "us"), keys=adverts)
    assert "not signed by eu" in shares["us"].params["reason"]


def test_5b_two_participants_and_other_node_sets_are_refused(make_federation: MakeFederation
                                                             ) -> None:
    root, _ = make_federation({"us": 400, "eu": 400, "sg": 400, "jp": 400})
    driver = Driver(root, ["us", "eu", "sg", "jp"])
    pair = ("eu", "us")
    # Keys can be set up over two (DP-only runs such as synthesis may sum over two), but
    # an exact release over two is the other node's value: every node's guard refuses it.
    run, shares = driver.set_up(pair)
    uploads = _round(driver, run, pair, shares, 0)
    assert {m.kind for m in uploads.values()} == {"abort"}
    assert "needs at least 3 for an exact masked release" in uploads["us"].params["reason"]
    # The same model over {eu, sg, us}, then over {eu, jp, us}: the second is refused.
    first = ("eu", "sg", "us")
    run, shares = driver.set_up(first)
    uploads = _round(driver, run, first, shares, 0)
    assert {m.kind for m in _unmask(driver, run, first, driver.step, uploads).values()} == {
        "reveal"}
    other = ("eu", "jp", "us")
    run, shares = driver.set_up(other)
    uploads = _round(driver, run, other, shares, 0)  # refused before anything is masked
    assert uploads["us"].kind == "abort" and "answered before over" in uploads["us"].params[
        "reason"]


def test_5c_one_round_never_unmasks_for_two_survivor_sets(make_federation: MakeFederation
                                                          ) -> None:
    root, _ = make_federation({"us": 400, "eu": 400, "sg": 400, "jp": 400})
    members = ("eu", "jp", "sg", "us")
    driver = Driver(root, list(members))
    run, shares = driver.set_up(members)
    uploads = _round(driver, run, members, shares, 0)
    of = driver.step
    # To us: everyone survived (b shares of jp). To the others: jp dropped (s shares of jp).
    honest = _unmask(driver, run, ("us",), of, uploads, survivors=members)
    assert honest["us"].kind == "reveal" and "b:jp" in honest["us"].keys
    claim = ("eu", "sg", "us")
    commits = driver.send(run, "check", "glm", claim, keys={"survivors": ",".join(claim)},
                          params={"of": str(of)})
    assert commits["us"].kind == "abort"  # us already answered for another set
    proofs = {n: m.keys["commit"] for n, m in commits.items() if m.kind == "commit"}
    assert len(proofs) == 2  # eu and sg: below the threshold of 3
    reveals = driver.send(run, "unmask", "glm", ("eu", "sg"), keys={"survivors": ",".join(claim)},
                          blobs=proofs, params={"of": str(of)})
    for reply in reveals.values():
        assert reply.kind == "abort" and "commits of 3" in reply.params["reason"]
    # Forged receipts do not help either: signatures are checked against the roster.
    fake = {n: local_signer(root, "hub").sign(receipt_payload(run, of, members)).hex()
            for n in members}
    forged = _unmask(driver, run, ("jp",), of, uploads, survivors=members, proofs=fake)
    assert "no signed receipt" in forged["jp"].params["reason"]


# 6. Uploads are authenticated; hostile bytes do not crash the hub ---------------------------


def test_6_forged_and_hostile_uploads_are_rejected(three_nodes: Federation) -> None:
    from tests.workloads.federation.test_engine import NAMES
    from workloads.federation.report import pooled_fit

    root, nodes = three_nodes
    attacker = local_signer(root / "elsewhere", "eu")
    with local_federation(root, list(NAMES)) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=NAMES))
        inner = hub.endpoint.inner
        real_receive = inner.receive

        def receive_with_forgeries(timeout: float) -> list[bytes]:
            step = coordinator.step
            forged = Message(coordinator.config.run_id, step, "eu", "glm", "masked",
                             masked=(0,) * 28).sign(attacker).encode()
            hostile = [b'{"round":' + b"9" * 400 + b"}", b"[" * 50_000, b'{"x": NaN}']
            return [forged, *hostile, *real_receive(timeout)]

        inner.receive = receive_with_forgeries  # type: ignore[method-assign]
        fit = coordinator.fit()
        coordinator.finish()
    reference, _ = pooled_fit(nodes)
    np.testing.assert_allclose(fit.coefficients, reference, rtol=0, atol=1e-6)
    assert any("does not verify" in r for r in coordinator.rejected)
    assert any("digits" in r for r in coordinator.rejected)
    assert any("nested" in r for r in coordinator.rejected)


# 7. Workers do not die; the hub prints the node's reason; non-convergence fails -------------


def test_7_edge_cases_end_in_reasons_not_deaths(make_federation: MakeFederation,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root, nodes = make_federation({"us": 800, "eu": 800, "sg": 800})
    write_rows(nodes[2], _no_cases("sg"))  # sg: every patient without cancer
    members = ("eu", "sg", "us")
    driver = Driver(root, list(members))
    run, shares = driver.set_up(members)
    probe = _round(driver, run, members, shares, 0, (500.0, 0, 0, 0, 0, 0))
    assert "pushes a row's score" in probe["us"].params["reason"]
    huge = _round(driver, run, members, shares, 1, (1e9,) * 6)
    assert "coefficients beyond" in huge["us"].params["reason"]
    for garbage in (b"\x00" * 10, b"[" * 10_000, b'{"schema_version": 2}'):
        driver.workers["us"].handle(garbage)  # rejected and logged, the worker lives on
    assert len(driver.workers["us"].rejected) == 3
    # The fit completes; sg refuses its AUC and the hub prints why.
    with local_federation(root, list(members)) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=members))
        fit = coordinator.fit()
        coordinator.finish()
    assert "rows of each outcome class" in fit.auc_refused["sg"]
    # A fit that cannot converge ends with a diagnosis and a non-zero exit.
    assert main(["federate", "fit", "--root", str(root), "--max-rounds", "2"]) == 2
    assert "did not converge in 2 Newton rounds" in capsys.readouterr().err
    # A missing value: the node refuses with the column, the hub prints it, exit 2.
    bad = patient_rows("us", 5, 99).to_pylist()
    bad[0]["bmi"] = float("nan")
    bad[0]["patient_id"] = "US-NAN"
    write_rows(nodes[0], pa.Table.from_pylist(bad[:1], schema=_schema()))
    assert main(["federate", "stats", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "node us refused" in err and "patient_genomic_data.bmi" in err


def test_7_dp_run_with_dp_request_still_refuses_two_party(make_federation: MakeFederation
                                                          ) -> None:
    with pytest.raises(Exception, match="at least three nodes"):
        RunConfig(nodes=("us", "eu"), dp=DPRequest(1.0, 1))


def _no_cases(node: str) -> pa.Table:
    return patient_rows(node, 800, 3, cases=False)


def _schema() -> Any:
    from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA

    return PATIENT_GENOMIC_DATA.arrow_schema()
