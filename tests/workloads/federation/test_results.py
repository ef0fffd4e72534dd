"""The run's audit record (results.py): what it holds, its signatures, written once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.workloads.federation.conftest import Federation
from workloads.contracts.errors import UserError
from workloads.federation import results
from workloads.federation.coordinator import DPRequest, FederationStoppedError, RunConfig
from workloads.federation.guard import Guard
from workloads.federation.local import local_federation
from workloads.federation.service import run_and_record
from workloads.objectstore.folder import FolderStore


def test_a_dp_fit_is_recorded_with_each_nodes_charge_and_verifiable_messages(
    make_federation: Callable[[dict[str, int]], Federation], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, nodes = make_federation({"us": 600, "eu": 500, "sg": 400})
    store = FolderStore(tmp_path / "results")
    with local_federation(root, [n.name for n in nodes]) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=("us", "eu", "sg"), round_timeout=30,
                                                dp=DPRequest(epsilon=4.0, releases=4)))
        uri = run_and_record(coordinator, ["fit"], None, store)
        roster = hub.roster
    assert "audit record" in capsys.readouterr().out
    record = json.loads(store.read_bytes(results.key_of(coordinator.config.run_id)))
    assert uri == store.uri(results.key_of(coordinator.config.run_id))
    assert record["format"] == results.FORMAT and record["status"] == "released"
    assert record["participants"] == {"asked": ["eu", "sg", "us"],
                                      "answered": ["eu", "sg", "us"], "dropped": []}
    assert record["request"]["dp"]["epsilon"] == 4.0
    # Each node reported its own charge: this run's entries of its odometer, at its delta.
    for node in nodes:
        charge = record["charged"][node.name]["patient_genomic_data"]
        spent = Guard(node).run_epsilon("patient_genomic_data", coordinator.config.run_id)
        assert charge == {"epsilon": spent, "delta": 1e-6} and spent > 0
    # Messages: the 4 Newton rounds' uploads and reveals of 3 nodes, and 3 AUC releases.
    kinds = [entry["kind"] for entry in record["released_from"]]
    assert kinds.count("masked") == 12 and kinds.count("reveal") == 12
    assert kinds.count("release") == 3
    assert results.verify_record(record, roster) == []
    assert len(record["result"]["fit"]["coefficients"]) == 6

    # Tampering with anything is caught: the hub's signature, a node's message.
    edited = {**record, "charged": {**record["charged"], "us": {}}}
    assert results.verify_record(edited, roster) == [
        "the hub's signature does not verify against the roster"]
    forged = json.loads(record["released_from"][0]["message"])
    forged["payload"]["masked"][0] += 1
    entries = [dict(e) for e in record["released_from"]]
    entries[0]["message"] = json.dumps(forged, separators=(",", ":"))
    problems = results.verify_record({**record, "released_from": entries}, roster)
    assert any(p.startswith("released_from[0]") for p in problems)

    # One object per run, never replaced.
    with pytest.raises(UserError, match="never replaced"):
        results.write(store, record)
    assert json.loads(store.read_bytes(results.key_of(coordinator.config.run_id))) == record


def test_an_exact_run_charges_nothing_and_a_stopped_run_is_recorded(
    three_nodes: Federation, make_federation: Callable[[dict[str, int]], Federation],
    tmp_path: Path,
) -> None:
    root, nodes = three_nodes
    store = FolderStore(tmp_path / "results")
    with local_federation(root, [n.name for n in nodes]) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=("us", "eu", "sg"), round_timeout=30))
        run_and_record(coordinator, ["stats"], None, store)
    record = json.loads(store.read_bytes(results.key_of(coordinator.config.run_id)))
    assert record["charged"] == {"eu": {}, "sg": {}, "us": {}}  # exact masked sums only
    assert record["result"]["stats"][0]["combined"][0] == 6500
    assert results.verify_record(record, hub.roster) == []

    # A node refuses mid-run (no cases: the fit's scores saturate): the values the hub had
    # already read are in a record marked stopped, and the stop is still an error.
    small, _ = make_federation({"aa": 200, "bb": 200, "cc": 30})
    with local_federation(small, ["aa", "bb", "cc"]) as hub, \
            pytest.raises(UserError, match="recorded in"):
        coordinator = hub.coordinator(RunConfig(nodes=("aa", "bb", "cc"), round_timeout=30))
        run_and_record(coordinator, ["stats", "fit"], None, store)
    stopped = json.loads(store.read_bytes(results.key_of(coordinator.config.run_id)))
    assert stopped["status"] == "stopped" and "refused" in stopped["reason"]
    assert list(stopped["result"]) == ["stats"]  # published before the stop
    assert stopped["released_from"] and results.verify_record(stopped, hub.roster) == []
    assert isinstance(FederationStoppedError("x"), UserError)


def test_records_are_created_once_in_gcs_and_in_sealed_folders(tmp_path: Path) -> None:
    from unittest import mock

    from google.api_core.exceptions import PreconditionFailed
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage  # type: ignore[attr-defined]

    from workloads.objectstore.gcs import GcsStore

    client = storage.Client(project="hub", credentials=AnonymousCredentials())
    store = GcsStore.from_uri("gs://hub-federation-results", client=client)
    with mock.patch.object(storage.Blob, "upload_from_string") as upload:
        store.write_new("runs/r1.json", b"{}")
    assert upload.call_args.args == (b"{}",)
    assert upload.call_args.kwargs == {"if_generation_match": 0}  # create, never replace
    with mock.patch.object(storage.Blob, "upload_from_string",
                           side_effect=PreconditionFailed("exists")), \
            pytest.raises(UserError, match=r"gs://hub-federation-results/runs/r1\.json exists"):
        store.write_new("runs/r1.json", b"{}")

    sealed = FolderStore(tmp_path / "sealed", b"k" * 32)
    sealed.write_new("runs/r1.json", b'{"a": 1}')
    assert sealed.read_bytes("runs/r1.json") == b'{"a": 1}'
    assert b'"a"' not in (tmp_path / "sealed" / "runs" / "r1.json").read_bytes()
    with pytest.raises(UserError, match="never replaced"):
        sealed.write_new("runs/r1.json", b"{}")
    assert sealed.read_bytes("runs/r1.json") == b'{"a": 1}'
    assert [p.name for p in (tmp_path / "sealed" / "runs").iterdir()] == ["r1.json"]
