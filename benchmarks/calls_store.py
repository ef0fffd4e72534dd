"""Local calls store: the real VCF load (workloads.vcf.load.load_staged) into an encrypted
DuckDB node, long layout (today's) against the nested layout (the baseline), same run.

    python -m benchmarks.calls_store                  # 2,000 samples; nested and long at
                                                      # 1,000 and 2,000 variants, long at 57,478
    python -m benchmarks.calls_store --sizes 500,1000 --target 5000   # quicker

Target (issue 17): 57,478 variants x 2,000 samples (115M calls) loaded in under 2 minutes
with under 1.5 GB peak RSS.

For each size a child process stages one file as the pipeline does (Parquet in the
processed_variants schema, sealed into the node's encrypted store, with its APOE table
and manifest); then each layout loads it in a fresh child process with `load_staged`,
the function `vcf process` and `run-local` call: overlap check, rows, APOE and ledger.
Reported: the load's wall time, calls/s and the child's peak RSS (ru_maxrss: includes
the interpreter and libraries, ~200 MB), the ratios nested/long, then `vcf derive`'s
time on the long layout. Baseline `nested`: DuckDBWarehouse(nested=True), the declared
LIST<STRUCT> `call` column in one transaction (the local layout before this one).
The calls are synthetic (numpy), not parsed from a VCF: the VCF pipeline's own speed is
`benchmarks/vcf.py`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NODE = "us"
STAGED_ID = "0" * 64
TARGET = 57_478


def _batches(variants: int, samples: int) -> Iterator[Any]:
    """processed_variants batches of ~1M calls (the pipeline's batch size), names
    dictionary-encoded as the pipeline writes them."""
    import numpy as np
    import pyarrow as pa

    from workloads.contracts.tables.genomics import PROCESSED_VARIANTS

    schema = PROCESSED_VARIANTS.arrow_schema()
    rng = np.random.default_rng(0)
    names = pa.array([f"US-{i:04d}" for i in range(samples)])
    per = max(1, 1_000_000 // samples)
    for lo in range(0, variants, per):
        k = min(per, variants - lo)
        m = k * samples

        def lists(values: Any, width: int, n: int) -> Any:
            return pa.ListArray.from_arrays(
                pa.array(np.arange(n + 1, dtype=np.int32) * width), pa.array(values))

        dp = rng.integers(10, 40, m).astype(np.int64)
        call = pa.StructArray.from_arrays(
            [pa.DictionaryArray.from_arrays(
                pa.array(np.tile(np.arange(samples, dtype=np.int32), k)), names),
             lists(rng.integers(0, 2, 2 * m).astype(np.int64), 2, m),
             pa.nulls(m, pa.string()), pa.array(dp), pa.array(dp),
             lists(np.repeat(dp, 2), 2, m), lists(np.repeat(dp, 3), 3, m),
             pa.nulls(m, pa.string())],
            [f.name for f in schema.field("call").type.value_type])
        pos = np.arange(lo, lo + k, dtype=np.int64) * 100 + 1_000_000
        yield pa.record_batch({
            "reference_name": pa.array(["chr1"] * k), "start_position": pos,
            "end_position": pos + 1, "reference_bases": pa.array(["A"] * k),
            "alternate_bases": pa.array(["G"] * k),
            "names": pa.array([[f"rs{i}"] for i in range(lo, lo + k)]),
            "quality": np.full(k, 50.0), "filter": pa.array([["PASS"]] * k),
            "info": pa.array(['{"AF":[0.5]}'] * k), "gene": pa.nulls(k, pa.string()),
            "call": pa.ListArray.from_arrays(
                pa.array(np.arange(k + 1, dtype=np.int32) * samples), call),
            "source_fingerprint": pa.array([STAGED_ID] * k)})


def _stage(root: str, variants: int, samples: int) -> None:
    """Write the staged file, APOE table and manifest a processed shard leaves."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from workloads.contracts.tables.genomics import SAMPLE_APOE
    from workloads.local_node import LocalNode
    from workloads.vcf.pipeline import staged_keys, write_parquet

    store = LocalNode(NODE, Path(root)).store()
    keys = staged_keys(STAGED_ID)
    batches = _batches(variants, samples)
    first = next(batches)
    with store.open_write(keys["variants"]) as out:
        write_parquet(itertools.chain([first], batches), first.schema, out)
    apoe = pa.table({"sample": [f"US-{i:04d}" for i in range(samples)],
                     "apoe_genotype": ["e3/e3"] * samples, "e4_count": [0] * samples,
                     "phased": [False] * samples, "source_fingerprint": [STAGED_ID] * samples},
                    schema=SAMPLE_APOE.arrow_schema())
    with store.open_write(keys["apoe"]) as out:
        pq.write_table(apoe, out)
    manifest = {"fingerprint": "f" * 64, "source": "bench.vcf.gz", "variant_rows": variants,
                "samples": samples, "staged_id": STAGED_ID}
    store.write_bytes(keys["manifest"], json.dumps(manifest).encode())


def _load(root: str, layout: str, out: Any) -> None:
    from workloads.local_node import LocalNode
    from workloads.vcf.features import derive_features
    from workloads.vcf.load import load_staged
    from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

    node = LocalNode(NODE, Path(root))
    with DuckDBWarehouse(node.name, node.warehouse_path, node.key(),
                         nested=layout == "nested") as warehouse:
        start = time.perf_counter()
        outcome = load_staged(warehouse, node.store(), STAGED_ID)
        wall = time.perf_counter() - start
        assert outcome.loaded, outcome
        start = time.perf_counter()
        derive_features(warehouse)
        derive = time.perf_counter() - start
    out.put((wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, derive))


def _child(target: Any, *args: Any) -> Any:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue) if target is _load else args)
    proc.start()
    result = queue.get() if target is _load else None
    proc.join()
    if proc.exitcode:
        raise SystemExit(f"{target.__name__} failed with exit code {proc.exitcode}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--sizes", default="1000,2000",
                        help="variants for the side-by-side lines (nested is slow: keep small)")
    parser.add_argument("--target", type=int, default=TARGET,
                        help="variants for the long layout alone (0 = skip)")
    args = parser.parse_args()
    os.environ.setdefault("SOVEREIGN_NODE_KEY_" + NODE.upper(), "cd" * 32)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"calls store benchmark: load_staged into encrypted DuckDB, {args.samples:,} samples, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'layout':<8}{'variants':>9}{'calls':>13}{'load s':>9}{'calls/s':>13}"
          f"{'peak MB':>9}{'derive s':>10}  ratio nested/long")
    work = Path(tempfile.mkdtemp(prefix="calls-bench-"))
    runs: list[tuple[int, tuple[str, ...]]] = [(n, ("nested", "long")) for n in sizes]
    if args.target:
        runs.append((args.target, ("long",)))
    try:
        for variants, layouts in runs:
            seen: dict[str, tuple[float, float]] = {}
            for layout in layouts:
                root = work / f"{variants}-{layout}"
                _child(_stage, str(root), variants, args.samples)
                wall, peak, derive = _child(_load, str(root), layout)
                shutil.rmtree(root)
                seen[layout] = (wall, peak)
                calls = variants * args.samples
                ratio = ""
                if layout == "long" and "nested" in seen:
                    ratio = (f"  time {seen['nested'][0] / wall:.1f}x, "
                             f"peak {seen['nested'][1] / peak:.1f}x")
                print(f"{layout:<8}{variants:>9,}{calls:>13,}{wall:>9.1f}{calls / wall:>13,.0f}"
                      f"{peak:>9.0f}{derive:>10.1f}{ratio}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("target: 115,000,000 calls (57,478 variants x 2,000 samples) in < 120 s with "
          "< 1,500 MB peak RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
