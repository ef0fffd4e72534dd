"""A node as a reliability engineer and an attacker see it: no plaintext at rest, one
writer at a time, status and reset, one-line errors for the operating system's refusals,
and no process left behind by a killed command."""

from __future__ import annotations

import errno
import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from workloads.cli import main
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.local_node import LocalNode

REPO = Path(__file__).resolve().parents[3]


def _cli(*argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workloads", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, **kw)  # type: ignore[call-overload]


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_no_plaintext_patient_data_under_the_node_folder_after_generate_and_vcf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "nodes"
    base = ["--node", "us", "--root", str(root)]
    assert main(["generate", *base, "--rows", "300", "--no-progress"]) == 0
    assert main(["vcf", "synth", *base, "--records", "300", "--shards", "2",
                 "--no-progress"]) == 0
    assert main(["vcf", "batch", "run-local", *base, "--workers", "1", "--no-progress"]) == 0
    assert main(["vcf", "derive", *base]) == 0
    capsys.readouterr()
    node = LocalNode("us", root)
    with node.open_warehouse(create=False) as wh:
        ids = wh.query(f"SELECT patient_id FROM {wh.table_ref(PATIENT_GENOMIC_DATA)}")
    patient_ids = [i.encode() for i in ids.column("patient_id").to_pylist()]
    # What plaintext would show: ids, genotypes, VCF and CSV text, Parquet/BGZF magic
    # (markers long enough not to occur by chance in megabytes of ciphertext).
    markers = [b"\t0|1:", b"\t1|1:", b"\t0/1:", b"\t1/1:", b"GT:DP:AD:PL",
               b"##fileformat=VCF", b"patient_id,age", b"variant_brca1",
               b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC"]
    files = _files(node.folder)
    assert len(files) > 10
    for path in files:
        data = path.read_bytes()
        found = [m for m in markers + patient_ids if m in data]
        if data[:4] == b"PAR1" or data[-4:] == b"PAR1":  # a plain Parquet file's magic
            found.append(b"PAR1")
        assert not found, f"{path} holds plaintext {found[:3]}"
    assert not (root / ".keys").is_relative_to(node.folder)


def test_a_second_writer_is_told_the_node_is_in_use(tmp_path: Path) -> None:
    node = LocalNode("us", tmp_path)
    with node.open_warehouse():
        done = _cli("generate", "--node", "us", "--root", str(tmp_path), "--rows", "10",
                    "--no-progress")
    assert done.returncode == 2
    assert done.stderr.startswith("error: node 'us' is in use by another process")
    assert "fix: wait" in done.stderr and "key" not in done.stderr.split("fix:")[0].lower()
    assert done.stderr.count("\n") == 1


def test_status_and_reset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--node", "us", "--root", str(tmp_path)]
    assert main(["node", "status", *base]) == 2  # no such node yet
    assert "fix:" in capsys.readouterr().err
    assert main(["generate", *base, "--rows", "20", "--no-progress"]) == 0
    stray = LocalNode("us", tmp_path).bucket / "patient_genomic_data" / ".x.tmp-999999999-a"
    stray.write_bytes(b"left by a killed run")
    capsys.readouterr()
    assert main(["node", "status", *base]) == 0
    out = capsys.readouterr().out
    assert "patient_genomic_data" in out and "20 rows" in out and "(committed)" in out
    assert not stray.exists()  # dead writers' temporaries are cleaned
    assert main(["node", "reset", *base]) == 2
    assert "add --yes" in capsys.readouterr().err
    assert LocalNode("us", tmp_path).warehouse_path.exists()
    assert main(["node", "reset", *base, "--yes"]) == 0
    assert not LocalNode("us", tmp_path).folder.exists()
    assert LocalNode("us", tmp_path).key_path.exists()


def test_an_empty_node_summary_shows_no_nan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with LocalNode("us", tmp_path).open_warehouse() as wh:
        wh.ensure_tables([PATIENT_GENOMIC_DATA])
    assert main(["summary", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out.lower() and "no patients yet" in out


@pytest.mark.parametrize("failure", [
    OSError(errno.ENOSPC, "No space left on device", "/data/x.duckdb.wal"),
    duckdb.IOException('Could not write file "x.wal": No space left on device'),
    OSError(errno.EACCES, "Permission denied", "/readonly/us"),
])
def test_os_refusals_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr("workloads.cli.generate.generate_node", fail)
    assert main(["generate", "--node", "us", "--root", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "fix:" in err and err.count("\n") == 1
    assert ("disk is full" in err) == ("space" in str(failure))


def test_an_unwritable_root_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["generate", "--node", "us", "--root", str(blocker / "nodes"),
                 "--formats", "warehouse", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--root" in err and "cannot write there" in err and err.count("\n") == 1


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["vcf", "batch", "run-local", "--node", "us", "--workers", "0"],
                 ["vcf", "synth", "--node", "us", "--samples", "x"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "fix:" in err and err.count("\n") == 1


def test_a_closed_pipe_and_library_warnings(tmp_path: Path) -> None:
    assert _cli("generate", "--node", "us", "--root", str(tmp_path), "--rows", "50",
                "--no-progress").returncode == 0
    proc = subprocess.Popen(  # the reader is gone before the command writes
        [sys.executable, "-m", "workloads", "node", "status", "--node", "us", "--root",
         str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 2
    assert err.startswith("error: the output pipe was closed") and "Traceback" not in err
    outputs = tmp_path / "outputs.json"
    outputs.write_text("{}")
    done = _cli("vcf", "batch", "dry-run", "--stack-outputs", str(outputs), "--shard", "x")
    assert "FutureWarning" not in done.stderr and "Traceback" not in done.stderr


def test_a_truncated_plain_gzip_is_located_without_htslib_noise(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from workloads.vcf.validate import VcfInputError, validate_vcf

    lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"chr1\t{i}\t.\tA\tC\t{i % 97}\tPASS\t." for i in range(1, 60_001)]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    path = tmp_path / "plain.vcf.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VcfInputError, match=r"plain\.vcf\.gz:\d+: truncated or corrupt gzip") \
            as caught:
        validate_vcf(path)
    assert caught.value.line > 1000  # where the data ran out, not line 1
    path.write_bytes(data)  # the whole plain gzip is fine
    assert validate_vcf(path).records == 60_000
    captured = capfd.readouterr()
    assert "[E::" not in captured.err and "[W::" not in captured.err


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_run_local_workers_die_with_the_command(tmp_path: Path, sig: signal.Signals) -> None:
    base = ["--node", "us", "--root", str(tmp_path)]
    assert _cli("generate", *base, "--rows", "400", "--no-progress").returncode == 0
    assert _cli("vcf", "synth", *base, "--records", "6000", "--shards", "6",
                "--no-progress").returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "workloads", "vcf", "batch", "run-local",
                             *base, "--workers", "2", "--no-progress"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.time() + 60
    workers: set[int] = set()
    while time.time() < deadline and len(workers) < 2:
        workers = _children(proc.pid)
        time.sleep(0.2)
    assert workers, "no worker started"
    descendants = workers | {g for w in workers for g in _children(w)}
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    if sig == signal.SIGTERM:
        assert code == 143 and "error: terminated" in err and "Traceback" not in err
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(p) for p in descendants):
        time.sleep(0.2)
    assert not any(_alive(p) for p in descendants)
