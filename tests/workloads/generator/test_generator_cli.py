"""The generate, summary and demo commands: help, results, and bad input -> exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from workloads.cli import main
from workloads.generator.run import committed
from workloads.local_node import LocalNode

REPO = Path(__file__).resolve().parents[3]
WriteProfile = Callable[..., Path]  # the write_profile fixture (conftest.py)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["generate", "summary", "demo"])
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: python -m workloads {command}" in out
    assert "--root" in out


def test_generate_then_summary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "generate", "--node", "eu", "--rows", "1500", "--seed", "4",
                       "--root", str(tmp_path), "--out", str(tmp_path / "files"))
    assert code == 0
    assert "node eu: 1,500 patients" in out and "1,500 inserted" in out
    assert pq.read_table(tmp_path / "files" / "patient_genomic_data_eu.parquet").num_rows == 1500

    code, out, _ = run(capsys, "summary", "--root", str(tmp_path), "--node", "eu")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["node", "n", "cancer_rate"]
    assert lines[1].split()[:2] == ["eu", "1,500"]


def test_a_new_node_is_a_profile_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, write_profile: WriteProfile
) -> None:
    path = write_profile("sg", {"intercept = -3.0 ": "target_prevalence = 0.12"})
    root = tmp_path / "local"
    code, out, _ = run(capsys, "generate", "--node", "sg", "--profile-dir", str(path.parent),
                       "--rows", "200", "--root", str(root), "--no-progress")
    assert code == 0 and "expected cancer rate 0.1200" in out
    record = committed(LocalNode("sg", root))
    assert record is not None
    with LocalNode("sg", root).store().open_read(
            record["generations"][0]["files"]["parquet"]) as f:
        first_ids = pq.read_table(f)["patient_id"][:2].to_pylist()
    assert first_ids == ["SG-0001", "SG-0002"]
    code, _, _ = run(capsys, "generate", "--profile", str(path), "--rows", "300",
                     "--root", str(root), "--formats", "warehouse", "--no-progress")
    assert code == 0
    code, out, _ = run(capsys, "summary", "--root", str(root))
    assert out.splitlines()[1].split()[:2] == ["sg", "300"]
    # Replaced by a warehouse-only generation: no files describe other rows any more.
    assert committed(LocalNode("sg", root))["generations"][0]["files"] == {}  # type: ignore[index]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--node", "us", "--rows", "0"], "--rows 0: must be a positive number"),
        (["generate", "--node", "us", "--rows", "-3"], "--rows -3"),
        (["generate", "--node", "us", "--seed", "-1"], "--seed -1: must be >= 0"),
        (["generate", "--node", "mars"], "unknown node 'mars'"),
        (["generate", "--node", "us", "--formats", "xls"], "unknown format xls"),
        (["generate", "--node", "us", "--profile-dir", "/nonexistent"], "profile folder"),
        (["generate", "--profile", "/nonexistent/sg.toml"], "does not exist"),
        (["summary"], "no such folder"),
        (["demo", "--rows", "0"], "--rows 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # the default --root ./local lands in tmp_path
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "fix:" in err
    assert not (tmp_path / "local").exists()  # nothing created on bad input


def test_unwritable_out_and_bad_profile_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, write_profile: WriteProfile
) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("")
    code, _, err = run(capsys, "generate", "--node", "us", "--root", str(tmp_path),
                       "--out", str(blocker / "out"), "--no-progress")
    assert code == 2 and "cannot write there" in err

    bad = write_profile("sg", {"apoe4 = [0.80, 0.15, 0.05]": "apoe4 = [0.80, 0.15, 0.15]"})
    code, _, err = run(capsys, "generate", "--profile", str(bad), "--root", str(tmp_path))
    assert code == 2
    assert f"profile {bad}: alleles.apoe4: probabilities sum to" in err and "fix:" in err


def test_real_process_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "workloads", "generate", "--node", "us", "--rows", "0",
         "--root", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --rows 0: must be a positive number of patients; fix: e.g. --rows 1000"
    ]
