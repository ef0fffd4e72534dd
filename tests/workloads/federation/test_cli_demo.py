"""The federate command and the demo."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.workloads.federation.conftest import Federation
from workloads.cli import main
from workloads.demo import federate


def test_help_lists_every_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["federate", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for action in ("stats", "fit", "worker", "coordinator", "roster"):
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


def test_demo_reports_the_federated_model_equal_to_the_pooled_one(
    three_nodes: Federation, tmp_path: Path
) -> None:
    root, _ = three_nodes
    out = io.StringIO()
    result = federate(root, ["us", "eu", "sg"], out=out, chart=tmp_path / "coefficients.png")
    assert result.max_abs_diff < 1e-6
    assert result.chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = out.getvalue()
    assert "Data never left the nodes" in text and "identical to 1e-6" in text
    assert "AUC per node" in text
