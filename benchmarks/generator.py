"""Benchmark: `python -m workloads generate` against a seed-like script, both as whole
processes writing N rows of CSV (wall clock and peak RSS of each process).

- baseline: `python benchmarks/generator_baseline.py --rows N --out DIR`, a standalone
  seed-like script (one pandas DataFrame, `to_csv`; imports numpy and pandas only).
- export: `python -m workloads generate --node us --rows N --formats csv --out DIR
  --no-progress`, the command a user runs for a CSV export (a plain file, the one
  exception to encryption at rest).
- sealed: the same without `--out`: the CSV as an object of the node's store, sealed
  with the node's key (what `generate --formats csv` does by default).

Each is a fresh process started from the shell's point of view: wall clock from spawn
to exit (interpreter start and imports included), peak RSS = the child's ru_maxrss
(os.wait4). Runs are interleaved and repeated (--repeat; the fastest run of each is
kept, with its peak), as the machine is shared. Every CSV is checked to hold N rows.

Usage: python -m benchmarks.generator [--sizes 1000000,10000000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE = "us"


def _command(impl: str, rows: int, out: Path) -> list[str]:
    if impl == "baseline":
        return [sys.executable, str(ROOT / "benchmarks" / "generator_baseline.py"),
                "--rows", str(rows), "--out", str(out)]
    command = [sys.executable, "-m", "workloads", "generate", "--node", NODE, "--rows",
               str(rows), "--seed", "42", "--formats", "csv", "--root", str(out / "root"),
               "--no-progress"]
    return [*command, "--out", str(out)] if impl == "export" else command


def run_process(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one whole child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    errors = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}): {errors.decode()}")
    return wall, usage.ru_maxrss / 1024  # KiB on Linux


def _csv_rows(out: Path, impl: str) -> int:
    if impl == "sealed":  # read back through the node's store (decrypting)
        from workloads.local_node import LocalNode

        store = LocalNode(NODE, out / "root").store(create=False)
        [key] = [k for k in store.list("patient_genomic_data/") if k.endswith(".csv")]
        with store.open_read(key) as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 22), b"")) - 1
    [path] = list(out.glob("*.csv"))
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 22), b"")) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each (fastest kept)")
    parser.add_argument("--impls", default="baseline,export,sealed")
    args = parser.parse_args()
    impls = args.impls.split(",")
    print(f"generator benchmark: whole processes writing CSV, US profile; python "
          f"{sys.version.split()[0]}, {os.cpu_count()} cpu, load average "
          f"{os.getloadavg()[0]:.1f} at start")
    header = (f"{'rows':>11} {'impl':<9} {'seconds':>8} {'rows/s':>12} {'peak RSS MB':>12} "
              f"{'time ratio':>11} {'peak ratio':>11}")
    print(header)
    print("-" * len(header))
    for rows in [int(s) for s in args.sizes.split(",") if s]:
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeat):
            for impl in impls:  # interleaved
                with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
                    wall, peak = run_process(_command(impl, rows, Path(tmp)))
                    written = _csv_rows(Path(tmp), impl)
                if written != rows:
                    raise SystemExit(f"{impl} wrote {written:,} rows, not {rows:,}")
                if impl not in best or wall < best[impl][0]:
                    best[impl] = (wall, peak)
        for impl in impls:
            wall, peak = best[impl]
            ratios = ""
            if "baseline" in best and impl != "baseline":
                ratios = (f"{best['baseline'][0] / wall:>10.1f}x "
                          f"{best['baseline'][1] / peak:>10.1f}x")
            print(f"{rows:>11,} {impl:<9} {wall:>8.2f} {rows / wall:>12,.0f} {peak:>12.0f} "
                  f"{ratios}", flush=True)
    print("target (issue 17): 10x the baseline's time at 10M rows, peak under 500 MB")


if __name__ == "__main__":
    main()
