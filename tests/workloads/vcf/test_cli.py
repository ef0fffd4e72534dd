"""`python -m workloads vcf synth | process | derive` on a local node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workloads.cli import main
from workloads.local_node import LocalNode


def test_synth_process_derive(node: LocalNode, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--node", node.name, "--root", str(node.root)]
    assert main(["vcf", "synth", *base, "--records", "120", "--shards", "2",
                 "--no-progress"]) == 0
    paths = capsys.readouterr().out.split()
    assert len(paths) == 2 and all(Path(p).exists() for p in paths)
    for path in paths:
        assert main(["vcf", "process", *base, path]) == 0
        assert json.loads(capsys.readouterr().out)["loaded"] is True
    assert main(["vcf", "process", *base, paths[0]]) == 0  # again: the ledger has it
    assert json.loads(capsys.readouterr().out)["loaded"] is False
    assert main(["vcf", "derive", *base]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "patients": 40, "differ_from_patient_genomic_data": 0}


def test_process_of_a_bad_file_exits_2_and_names_it(
    node: LocalNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "incoming" / "bad.vcf"
    bad.parent.mkdir()
    bad.write_text("chr1\t1\t.\tA\tC\t.\t.\t.\n")
    assert main(["vcf", "process", "--node", node.name, "--root", str(node.root),
                 str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.vcf:1: missing VCF header" in err
    assert (tmp_path / "incoming" / "quarantine" / "bad.vcf.reason.json").exists()


def test_process_of_a_missing_file_names_it_and_the_fix(
    node: LocalNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.vcf.gz"
    assert main(["vcf", "process", "--node", node.name, "--root", str(node.root),
                 str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: no such VCF file; fix:" in err


def test_batch_run_local_runs_the_vcf_kind_through_the_generic_runner(
    node: LocalNode, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--node", node.name, "--root", str(node.root)]
    assert main(["vcf", "batch", "run-local", *base, "--no-progress"]) == 2  # nothing yet
    assert "no VCFs under" in capsys.readouterr().err
    assert main(["vcf", "synth", *base, "--records", "80", "--shards", "2",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["vcf", "batch", "run-local", *base, "--workers", "2", "--no-progress"]) == 0
    shards = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["status"] for s in shards] == ["staged", "staged"]
    assert main(["vcf", "derive", *base]) == 0  # finish_local loaded and derived them
    assert json.loads(capsys.readouterr().out) == {
        "patients": 40, "differ_from_patient_genomic_data": 0}
