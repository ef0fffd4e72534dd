"""Benchmark: the streaming generator against a straightforward single-DataFrame baseline.

Measured path (both implementations): generate N patients of the US profile and write
them as CSV and as Parquet. The warehouse load (encrypted DuckDB MERGE) is reported on
its own line, for the streaming generator only.

- Speed: baseline and streaming run in the SAME child process on the same N, after a
  small warm-up of both (first-call library set-up is not counted), interleaved and
  repeated (--repeat, up to 2M rows; the best run of each is kept, as the machine is
  shared); rows/s and the ratio.
- Peak memory: each implementation runs alone in a fresh child process, and the peak
  resident set size (ru_maxrss) of that process is reported; it includes the Python
  interpreter and imported libraries (reported as "idle" below, measured the same way).

The baseline is what a seed-like script does: the whole population in one pandas
DataFrame (ids from a Python list comprehension, numpy draws, DataFrame.to_csv and
DataFrame.to_parquet).

Usage: .venv/bin/python -m benchmarks.generator [--sizes 1000000,10000000]
       [--skip-baseline-above N] [--warehouse-sizes 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# -- the two implementations ---------------------------------------------------------------


def baseline(rows: int, out: Path, seed: int = 42) -> None:
    """A seed-like single-DataFrame generator (same profile, same outputs)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ids = [f"US-{i:04d}" for i in range(1, rows + 1)]
    ages = np.clip(rng.normal(52, 12, rows).astype(int), 25, 80)
    bmis = np.clip(rng.normal(28.5, 4, rows), 18.5, 40.0)
    brca1 = rng.choice([0, 1, 2], rows, p=[0.85, 0.12, 0.03])
    tp53 = rng.choice([0, 1, 2], rows, p=[0.90, 0.08, 0.02])
    apoe4 = rng.choice([0, 1, 2], rows, p=[0.80, 0.15, 0.05])
    logits = -3.0 + 0.03 * (ages - 50) + 0.8 * brca1 + 0.5 * tp53
    cancer = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(int)
    df = pd.DataFrame({
        "patient_id": ids, "age": ages, "variant_brca1": brca1, "variant_tp53": tp53,
        "variant_apoe4": apoe4, "bmi": np.round(bmis, 1), "diagnosis_cancer": cancer,
    })
    df.to_csv(out / "baseline.csv", index=False)
    df.to_parquet(out / "baseline.parquet", index=False)


def streaming(rows: int, out: Path, seed: int = 42) -> None:
    from workloads.generator import find_profile, generate_node

    generate_node(find_profile("us"), rows=rows, seed=seed, root=out / "root", out_dir=out,
                  formats=("csv", "parquet"), progress=False)


def sealed(rows: int, out: Path, seed: int = 42) -> None:
    """The default path: CSV + Parquet as objects of the node's store, sealed with its key."""
    from workloads.generator import find_profile, generate_node

    os.environ.setdefault("SOVEREIGN_NODE_KEY_US", "ef" * 32)
    generate_node(find_profile("us"), rows=rows, seed=seed, root=out / "root",
                  formats=("csv", "parquet"), progress=False)


def warehouse_load(rows: int, out: Path, seed: int = 42) -> None:
    from workloads.generator import find_profile, generate_node

    generate_node(find_profile("us"), rows=rows, seed=seed, root=out / "root",
                  formats=("warehouse",), progress=False)


def idle(rows: int, out: Path, seed: int = 42) -> None:
    """Imports only: the floor every peak-RSS number includes."""
    import pandas  # noqa: F401

    import workloads.generator  # noqa: F401


IMPLEMENTATIONS = {"baseline": baseline, "streaming": streaming, "sealed": sealed,
                   "warehouse": warehouse_load, "idle": idle}


# -- child-process cases ---------------------------------------------------------------------


def _child(mode: str, rows: int, repeat: int = 1) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        out = Path(tmp)
        if mode == "speed":
            for name in ("baseline", "streaming"):  # warm-up: library first-call set-up
                warm = out / f"warm-{name}"
                warm.mkdir()
                IMPLEMENTATIONS[name](1000, warm)
            result = {"baseline": float("inf"), "streaming": float("inf")}
            for attempt in range(repeat):  # interleaved; the best run of each is kept
                for name in ("baseline", "streaming"):
                    case = out / f"{name}-{attempt}"
                    case.mkdir()
                    start = time.perf_counter()
                    IMPLEMENTATIONS[name](rows, case)
                    result[name] = min(result[name], time.perf_counter() - start)
                    shutil.rmtree(case)
            return result
        start = time.perf_counter()
        IMPLEMENTATIONS[mode](rows, out)
        seconds = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        return {"seconds": seconds, "peak_mb": peak_mb}


def _run_child(mode: str, rows: int, repeat: int = 1) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.generator", "--child", mode, "--rows", str(rows),
         "--repeat", str(repeat)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--skip-baseline-above", type=int, default=10_000_000,
                        help="run the baseline only up to this many rows")
    parser.add_argument("--warehouse-sizes", default="1000000")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3,
                        help="speed runs per implementation up to 2M rows (best kept)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.rows, args.repeat)))
        return

    sizes = [int(s) for s in args.sizes.split(",") if s]
    idle_mb = _run_child("idle", 1)["peak_mb"]
    print(f"generator benchmark: US profile, CSV + Parquet; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cpu, load average {os.getloadavg()[0]:.1f} at start; "
          f"idle process after imports: {idle_mb:.0f} MB peak RSS")
    header = (f"{'rows':>11} {'impl':<10} {'seconds':>8} {'rows/s':>12} {'peak RSS MB':>12} "
              f"{'speed-up':>9}")
    print(header)
    print("-" * len(header))
    for rows in sizes:
        with_baseline = rows <= args.skip_baseline_above
        if with_baseline:
            speed = _run_child("speed", rows, args.repeat if rows <= 2_000_000 else 1)
            base_mem = _run_child("baseline", rows)["peak_mb"]
            print(f"{rows:>11,} {'baseline':<10} {speed['baseline']:>8.2f} "
                  f"{rows / speed['baseline']:>12,.0f} {base_mem:>12.0f} {'1.0x':>9}")
            stream_s = speed["streaming"]
        else:
            stream_s = _run_child("streaming", rows)["seconds"]
        stream_mem = _run_child("streaming", rows)["peak_mb"]
        ratio = f"{speed['baseline'] / stream_s:.1f}x" if with_baseline else "(skipped)"
        print(f"{rows:>11,} {'streaming':<10} {stream_s:>8.2f} {rows / stream_s:>12,.0f} "
              f"{stream_mem:>12.0f} {ratio:>9}")
        enc = _run_child("sealed", rows)
        enc_ratio = f"{speed['baseline'] / enc['seconds']:.1f}x" if with_baseline else ""
        print(f"{rows:>11,} {'sealed':<10} {enc['seconds']:>8.2f} "
              f"{rows / enc['seconds']:>12,.0f} {enc['peak_mb']:>12.0f} {enc_ratio:>9} "
              "(the default: files sealed into the node's store)")
        sys.stdout.flush()
    for rows in [int(s) for s in args.warehouse_sizes.split(",") if s]:
        load = _run_child("warehouse", rows)
        print(f"{rows:>11,} {'warehouse':<10} {load['seconds']:>8.2f} "
              f"{rows / load['seconds']:>12,.0f} {load['peak_mb']:>12.0f} "
              f"{'(load: generate + encrypted DuckDB MERGE into an empty node)':>9}")


if __name__ == "__main__":
    main()
