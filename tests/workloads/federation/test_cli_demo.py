"""The federate command and the demo."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.workloads.federation.conftest import Federation
from workloads.cli import main
from workloads.demo import federate
from workloads.federation.coordinator import FederationStoppedError


def test_help_lists_every_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["federate", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for action in ("stats", "fit", "nodes", "worker", "coordinator", "roster"):
        assert action in out


def test_stats_and_fit_commands_print_reports(
    three_nodes: Federation, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = three_nodes
    assert main(["federate", "stats", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "Federated statistics" in out and "combined" in out and "6500" in out
    assert main(["federate", "fit", "--root", str(root), "--dp-epsilon", "3"]) == 0
    out = capsys.readouterr().out
    assert "DP epsilon <= 3.00 per node" in out and "variant_brca1" in out


def test_a_missing_node_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["federate", "stats", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "node 'us' has no warehouse" in err and "fix:" in err


def test_two_nodes_are_refused_before_anything_runs(
    three_nodes: Federation, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = three_nodes
    assert main(["federate", "stats", "--root", str(root), "--nodes", "us,eu"]) == 2
    assert "at least three nodes" in capsys.readouterr().err


def test_the_demo_federation_without_the_joined_tables_stops_with_the_nodes_reason(
    three_nodes: Federation, tmp_path: Path
) -> None:
    """The demo's analyses read the joined view (VCF features + FHIR records); nodes that
    hold only patients refuse at once with a signed abort naming it (the full demo is
    tested in tests/workloads/demo)."""
    root, _ = three_nodes
    with pytest.raises(FederationStoppedError, match="could not answer over patient_risk_factors"):
        federate(root, ["us", "eu", "sg"], out=io.StringIO(), chart=tmp_path / "forest.png")
