"""Robot telemetry: rows per second and peak memory, ours next to the original's approach.

    .venv/bin/python benchmarks/robotics.py                     # 5,000 procedures at 10 Hz
    .venv/bin/python benchmarks/robotics.py --procedures 500 --small 100 --baseline-rows 100000

Baseline (the seed's generator, rewritten here): a Python loop building one dict per sample
(independent random values per field, as the original did) and `json.dumps` per line,
written out as JSON lines. It is run on the first --baseline-rows samples and its rate
extrapolated (running it on ~350M rows would take hours). Ours: the vectorised generator
(`workloads.robotics.telemetry`), streamed in chunks; timed to Arrow batches ready to load,
and, separately, including Parquet encoding (zstd, the lake's format). Both write to
/dev/null, so disk speed is out of the comparison. Each measurement runs in its own process
and reports that process's peak RSS; two fleet sizes show that memory stays flat.
Target: ours >= 50x the baseline's rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time

import numpy as np

from workloads.robotics.fleet import Fleet, Patients, ProcedurePlan, build_fleet
from workloads.robotics.profile import find_profile

HZ = 10.0
SEED = 42


def fleet(procedures: int) -> Fleet:
    profile = find_profile("us")
    patients = Patients([f"US-{i:04d}" for i in range(1, 5001)],
                        np.random.default_rng(0).integers(25, 81, 5000))
    robots = max(10, procedures // 100)
    config = profile.config(procedures=procedures, robots=robots,
                            facilities=min(10, robots), hz=HZ)
    return build_fleet(profile, config, patients, SEED)


def baseline(plans: list[ProcedurePlan], max_rows: int) -> int:
    """The original's way: one dict per sample, json.dumps per line."""
    tools = ["grasper", "needle_driver", "monopolar_scissors", "bipolar_forceps", "stapler",
             "clip_applier", "suction_irrigator", "bone_burr"]
    rows = 0
    with open(os.devnull, "w") as out:
        for plan in plans:
            n = max(1, int(plan.duration_s * HZ))
            for i in range(n):
                ts = plan.start_us / 1e6 + i / HZ
                record = {
                    "telemetry_id": f"{plan.procedure_id}-{i}",
                    "procedure_id": plan.procedure_id,
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)),
                    "arm_position_x": round(random.uniform(-200, 200), 2),
                    "arm_position_y": round(random.uniform(-200, 200), 2),
                    "arm_position_z": round(random.uniform(0, 300), 2),
                    "arm_rotation": round(random.uniform(-180, 180), 2),
                    "tool_type": random.choice(tools),
                    "grip_pressure": round(random.uniform(0, 15), 2),
                    "tremor_compensation": round(random.uniform(80, 100), 2),
                    "camera_zoom": round(random.uniform(1, 10), 2),
                    "camera_angle": round(random.uniform(-45, 45), 2),
                    "force_feedback_x": round(random.gauss(0, 1), 3),
                    "force_feedback_y": round(random.gauss(0, 1), 3),
                    "force_feedback_z": round(random.gauss(0, 1), 3),
                    "system_temperature": round(random.uniform(25, 45), 2),
                    "power_consumption": round(random.uniform(1000, 3000), 1),
                }
                out.write(json.dumps(record) + "\n")
                rows += 1
                if rows >= max_rows:
                    return rows
    return rows


def ours(plans: list[ProcedurePlan], parquet: bool) -> int:
    import pyarrow.parquet as pq

    from workloads.robotics.run import PARQUET_OPTIONS
    from workloads.robotics.telemetry import telemetry_chunks

    rows = 0
    with open(os.devnull, "wb") as sink:
        writer = None
        for chunk in telemetry_chunks(plans, HZ, SEED, "us"):
            if parquet:
                if writer is None:
                    writer = pq.ParquetWriter(sink, chunk.schema, **PARQUET_OPTIONS)
                writer.write_table(chunk)
            rows += chunk.num_rows
        if writer is not None:
            writer.close()
    return rows


def child(kind: str, procedures: int, baseline_rows: int) -> None:
    plans = fleet(procedures).plans
    start = time.perf_counter()
    if kind == "baseline":
        rows = baseline(plans, baseline_rows)
    else:
        rows = ours(plans, parquet=kind == "parquet")
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak_mb}))


def measure(kind: str, procedures: int, baseline_rows: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--procedures", str(procedures),
         "--baseline-rows", str(baseline_rows)], check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--procedures", type=int, default=5000)
    parser.add_argument("--small", type=int, default=500,
                        help="the smaller fleet for the flat-memory comparison")
    parser.add_argument("--baseline-rows", type=int, default=300_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.procedures, args.baseline_rows)
        return
    total = sum(max(1, int(p.duration_s * HZ)) for p in fleet(args.procedures).plans)
    print(f"telemetry at {HZ:g} Hz: {args.procedures:,} procedures = {total:,} rows")
    base = measure("baseline", args.procedures, args.baseline_rows)
    base_rate = base["rows"] / base["seconds"]
    print(f"baseline (dict + json.dumps per sample), first {base['rows']:,.0f} rows: "
          f"{base_rate:,.0f} rows/s, peak {base['peak_mb']:.0f} MB; extrapolated to all "
          f"{total:,} rows: {total / base_rate / 3600:.1f} h")
    for kind, label in (("arrow", "ours, to Arrow batches"), ("parquet", "ours, + Parquet zstd")):
        for size in (args.small, args.procedures):
            m = measure(kind, size, 0)
            rate = m["rows"] / m["seconds"]
            print(f"{label:<24} {size:>6,} procedures: {m['rows']:>12,.0f} rows in "
                  f"{m['seconds']:7.1f} s = {rate:>12,.0f} rows/s ({rate / base_rate:5.0f}x "
                  f"baseline), peak {m['peak_mb']:5.0f} MB")


if __name__ == "__main__":
    main()
