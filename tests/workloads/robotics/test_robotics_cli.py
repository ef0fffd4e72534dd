"""`python -m workloads robotics ...`: real runs, one-line errors with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from workloads.cli import main

from .conftest import add_patients


@pytest.mark.parametrize("args, text", [
    (["--procedures", "0"], "error: --procedures 0: must be a positive count; fix: "),
    (["--robots", "-3"], "error: --robots -3: must be a positive count; fix: "),
    (["--start", "2024-01-01", "--end", "2023-06-01"], "is not after --start"),
    (["--models", "da Vinci Xi,RoboDoc"], "unknown robot model 'RoboDoc'"),
    (["--hz", "0.5"], "telemetry rate must be 1-30 Hz"),
    (["--hz", "60"], "telemetry rate must be 1-30 Hz"),
    (["--lake", "some/folder"], "use --export-dir"),
])
def test_bad_configuration_is_one_line_and_exit_2(
        args: list[str], text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["robotics", "generate", "--node", "us", "--root", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert text in err and err.count("\n") == 1 and err.startswith("error: ")


def test_generate_then_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["robotics", "summary", "--node", "us", "--root", str(tmp_path)]) == 2
    assert "fix: " in capsys.readouterr().err
    add_patients(tmp_path, "us", rows=50)
    args = ["robotics", "generate", "--node", "us", "--root", str(tmp_path), "--robots", "4",
            "--facilities", "2", "--procedures", "30", "--maintenance", "4", "--no-progress",
            "--export-dir", str(tmp_path / "export")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "replaced the node's fleet" in out and "surgical_procedures" in out
    assert (tmp_path / "export" / "surgical_robots.parquet").is_file()
    assert list((tmp_path / "export" / "robotics" / "telemetry").glob("date=*/*.parquet"))
    assert main(args[:-2]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main(["robotics", "summary", "--node", "us", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "every key and consistency rule holds" in out and "robots" in out
    # Nothing but the warehouse (and its key, kept apart) in the node folder, besides the
    # bucket's objects, which the folder store seals with the node's key (the generator's).
    node = tmp_path / "us"
    node_files = {p.name for p in node.rglob("*")
                  if p.is_file() and not p.is_relative_to(node / "bucket")}
    assert node_files <= {"warehouse.duckdb", "warehouse.duckdb.wal"}, node_files
