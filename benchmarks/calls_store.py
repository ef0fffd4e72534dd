"""Local calls store: loading genotype calls into the encrypted DuckDB node warehouse.

    python benchmarks/calls_store.py                       # 57,500 variants x 2,000 samples
    python benchmarks/calls_store.py --variants 5000 --nested-variants 1000

Target (issue 17): 115M calls loaded in under 2 minutes with under 1.5 GB peak RSS.
Each line runs in a fresh child process (peak RSS = ru_maxrss of that process), on
synthetic calls made with numpy in batches of ~1M calls:
  nested   today's local layout: processed_variants-like rows with call LIST<STRUCT<name,
           genotype LIST, phaseset, DP, GQ, AD LIST, PL LIST>>, one INSERT in one
           transaction (what vcf/load.py does today)
  long     a long calls table (variant key, sample, allele indices, phased, DP, GQ, AD and
           PL as scalars), one INSERT in one transaction
  long-chunked  the same table, one INSERT + COMMIT per ~10M calls (rows of a file would
           be visible only once its ledger row commits; a crashed load's rows are removed
           by the next one)
Reported: seconds, calls/s and peak RSS, and the time/peak at the target size.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("SOVEREIGN_NODE_KEY_BENCH", "cd" * 32)

SAMPLES = 2000


def _batches(layout: str, variants: int, samples: int) -> Iterator[Any]:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(0)
    per = max(1, 1_000_000 // samples)
    names = pa.array([f"S{i:05d}" for i in range(samples)])
    for lo in range(0, variants, per):
        k = min(per, variants - lo)
        m = k * samples
        sample = np.tile(np.arange(samples, dtype=np.int32), k)
        g0 = rng.integers(0, 2, m, dtype=np.int8)
        g1 = rng.integers(0, 2, m, dtype=np.int8)
        dp = rng.integers(10, 40, m, dtype=np.int32)
        if layout != "nested":
            yield pa.record_batch({
                "variant": np.repeat(np.arange(lo, lo + k, dtype=np.int64), samples),
                "sample": pa.DictionaryArray.from_arrays(pa.array(sample), names),
                "g0": g0, "g1": g1, "phased": np.zeros(m, bool), "DP": dp, "GQ": dp,
                "AD_ref": dp, "AD_alt": dp, "PL0": dp, "PL1": dp, "PL2": dp})
            continue

        def lists(values: Any, width: int, m: int = m) -> Any:
            return pa.ListArray.from_arrays(
                pa.array(np.arange(m + 1, dtype=np.int32) * width), pa.array(values))

        call = pa.StructArray.from_arrays(
            [pa.DictionaryArray.from_arrays(pa.array(sample), names).cast(pa.string()),
             lists(np.stack([g0, g1], 1).ravel().astype(np.int64), 2),
             pa.nulls(m, pa.string()), pa.array(dp.astype(np.int64)),
             pa.array(dp.astype(np.int64)), lists(np.repeat(dp, 2).astype(np.int64), 2),
             lists(np.repeat(dp, 3).astype(np.int64), 3)],
            ["name", "genotype", "phaseset", "DP", "GQ", "AD", "PL"])
        yield pa.record_batch({
            "variant": np.arange(lo, lo + k, dtype=np.int64),
            "call": pa.ListArray.from_arrays(
                pa.array(np.arange(k + 1, dtype=np.int32) * samples), call)})


def _load(layout: str, variants: int, samples: int, out: Any) -> None:
    import pyarrow as pa

    from workloads.local_node import LocalNode

    node = LocalNode("bench", Path(tempfile.mkdtemp(prefix="calls-bench-")))
    with node.open_warehouse() as warehouse:
        con = warehouse._con  # the benchmark drives DuckDB directly
        batches = _batches(layout, variants, samples)
        first = next(batches)
        con.register("first", pa.Table.from_batches([first]))
        con.execute("CREATE TABLE node.main.calls AS SELECT * FROM first LIMIT 0")
        start = time.perf_counter()
        if layout == "long-chunked":
            stream = itertools.chain([first], batches)
            while group := list(itertools.islice(stream, 10)):
                con.register("grp", pa.Table.from_batches(group))
                con.execute("INSERT INTO node.main.calls SELECT * FROM grp")  # autocommit
                con.unregister("grp")
        else:
            reader = pa.RecordBatchReader.from_batches(
                first.schema, itertools.chain([first], batches))
            con.register("src", reader)
            con.execute("BEGIN TRANSACTION")
            con.execute("INSERT INTO node.main.calls SELECT * FROM src")
            con.execute("COMMIT")
        wall = time.perf_counter() - start
    out.put((wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=int, default=57_500, help="for the long layouts")
    parser.add_argument("--nested-variants", type=int, default=2_500,
                        help="for the nested layout (slow: keep it small)")
    parser.add_argument("--samples", type=int, default=SAMPLES)
    args = parser.parse_args()
    print(f"calls store benchmark: encrypted DuckDB, {args.samples} samples, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'layout':<14}{'calls':>14}{'seconds':>10}{'calls/s':>14}{'peak MB':>10}")
    ctx = mp.get_context("spawn")
    for layout, variants in (("nested", args.nested_variants), ("long", args.variants),
                             ("long-chunked", args.variants)):
        queue = ctx.Queue()
        proc = ctx.Process(target=_load, args=(layout, variants, args.samples, queue))
        proc.start()
        wall, peak = queue.get()
        proc.join()
        calls = variants * args.samples
        print(f"{layout:<14}{calls:>14,}{wall:>10.1f}{calls / wall:>14,.0f}{peak:>10.0f}",
              flush=True)
    print("target: 115,000,000 calls in < 120 s with < 1,500 MB peak RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
