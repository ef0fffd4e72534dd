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
    assert len(paths) == 2 and all(p.startswith("bucket:vcf/") for p in paths)
    for path in paths:
        assert main(["vcf", "process", *base, path]) == 0
        assert json.loads(capsys.readouterr().out)["loaded"] is True
    assert main(["vcf", "process", *base, paths[0]]) == 0  # again: the ledger has it
    again = capsys.readouterr()
    assert json.loads(again.out)["loaded"] is False and "already loaded" in again.err
    assert main(["vcf", "derive", *base]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "patients": 40, "differ_from_patient_genomic_data": 0,
        "patients_without_variants": 0}


def test_process_of_a_bad_file_exits_2_and_names_it(
    node: LocalNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "incoming" / "bad.vcf"
    bad.parent.mkdir()
    bad.write_text("chr1\t1\t.\tA\tC\t.\t.\t.\n")
    before = (bad.read_bytes(), bad.stat().st_mtime_ns)
    for _ in range(2):  # the file stays where it is: a second run sees it again
        assert main(["vcf", "process", "--node", node.name, "--root", str(node.root),
                     str(bad)]) == 2
        err = capsys.readouterr().err
        assert "bad.vcf:1: missing VCF header" in err and "quarantine/" in err
        assert (bad.read_bytes(), bad.stat().st_mtime_ns) == before
    assert sorted(p.name for p in bad.parent.iterdir()) == ["bad.vcf"]
    assert any(k.endswith("bad.vcf.reason.json") for k in node.store().list("quarantine/"))


def test_paths_are_paths_and_bucket_keys_are_named(
    node: LocalNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["--node", node.name, "--root", str(node.root)]
    assert main(["vcf", "synth", *base, "--records", "40", "--shards", "1", "--samples", "5",
                 "--no-progress"]) == 0
    [key] = capsys.readouterr().out.split()
    # A relative path that happens to equal a bucket key is a path (and does not exist here).
    monkeypatch.chdir(tmp_path)
    assert main(["vcf", "process", *base, key.removeprefix("bucket:")]) == 2
    assert "no such VCF file" in capsys.readouterr().err
    assert main(["vcf", "process", *base, key]) == 0
    out = capsys.readouterr()
    assert "reading object vcf/" in out.err and json.loads(out.out)["shard"]["samples"] == 5


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
        "patients": 40, "differ_from_patient_genomic_data": 0,
        "patients_without_variants": 0}


def test_the_shipped_example_stack_outputs_drive_a_dry_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = Path(__file__).resolve().parents[3] / "docs" / "examples" / "us.outputs.json"
    assert main(["vcf", "batch", "dry-run", "--stack-outputs", str(example),
                 "--shard", "vcf/a.vcf.gz"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["parent"] == "projects/fed-node-us/locations/us-central1"


def test_the_shipped_example_is_what_the_us_stack_exports() -> None:
    """docs/examples/us.outputs.json is the captured us stack's outputs, not a hand copy."""
    from infra.capture import capture

    example = Path(__file__).resolve().parents[3] / "docs" / "examples" / "us.outputs.json"
    assert json.loads(example.read_text()) == json.loads(json.dumps(capture("us").outputs)), (
        "refresh it: python -c 'import json; from infra.capture import capture; "
        "print(json.dumps(capture(\"us\").outputs, indent=2, sort_keys=True))' > "
        "docs/examples/us.outputs.json"
    )


def test_derive_over_a_sequenced_subset_counts_the_rest_apart(
    node: LocalNode, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vcf synth --samples N` sequences N of the node's patients: the others are not
    mismatches, they have no variants; a derived row is still checked against its patient."""
    base = ["--node", node.name, "--root", str(node.root)]
    assert main(["vcf", "synth", *base, "--records", "120", "--shards", "1", "--samples", "15",
                 "--no-progress"]) == 0
    [path] = capsys.readouterr().out.split()
    assert main(["vcf", "process", *base, path]) == 0
    capsys.readouterr()
    assert main(["vcf", "derive", *base]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "patients": 15, "differ_from_patient_genomic_data": 0,
        "patients_without_variants": 25}
    with node.open_warehouse() as wh, wh.transaction() as con:  # a changed patient row
        con.execute("UPDATE node.main.patient_genomic_data SET variant_apoe4 = "
                    "(variant_apoe4 + 1) % 3 WHERE patient_id IN "
                    "(SELECT patient_id FROM node.main.variant_features LIMIT 1)")
    assert main(["vcf", "derive", *base]) == 1
    assert json.loads(capsys.readouterr().out)["differ_from_patient_genomic_data"] == 1
