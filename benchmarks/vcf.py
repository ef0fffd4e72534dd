"""VCF pipeline vs `bcftools norm -m -any | bcftools query` on the same synthetic file.

    python -m benchmarks.vcf                       # 2,000 samples x 50,000 records (+ 1/4 size)
    python -m benchmarks.vcf --samples 500 --records 4000

For each size it writes one synthetic VCF (not timed), then measures in fresh child
processes, one at a time, wall time and peak RSS of:
  baseline  bcftools norm -m -any -Ou | bcftools query -f '<site + every FORMAT field>'
            (pysam's bundled bcftools, two processes joined by a FIFO: a real pipe)
  pipeline  validate + bcftools norm + annotate + content digest + Parquet sealed into the
            node's encrypted store (workloads.vcf.pipeline.convert_file: validation in a
            second process, bcftools norm in a third streaming into the converter, whose
            Parquet writer is a thread; the children's peak RSS is added)
  load      the staged Parquet, read through the store's decrypting reader, into a fresh
            encrypted DuckDB node warehouse (reported apart)
and prints pipeline/baseline ratios of wall time, CPU time (user + system, every process)
and peak RSS. Both sides use the same parallelism: several processes at once on the
machine's cores, neither with `--threads`. Under a shared machine's load the CPU ratio is
the steadier figure; wall time is the target's. Memory is flat if the pipeline's peak RSS
does not grow with the file (the two sizes).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("SOVEREIGN_NODE_KEY_BENCH", "ab" * 32)  # the benchmark node's key

QUERY = "%CHROM\t%POS\t%ID\t%REF\t%ALT\t%QUAL\t%FILTER\t%INFO[\t%GT:%DP:%AD:%PL]\n"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _ChildPeaks:
    """Peak RSS (VmHWM) of each child process, read every 20 ms while they run: the
    pipeline's validation and bcftools processes are alive at once, so their peaks add."""

    def __init__(self) -> None:
        import threading

        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.02):
            with contextlib.suppress(OSError):
                for task in os.listdir(f"/proc/{me}/task"):
                    for pid in Path(f"/proc/{me}/task/{task}/children").read_text().split():
                        with contextlib.suppress(OSError, ValueError, IndexError):
                            status = Path(f"/proc/{pid}/status").read_text()
                            kb = int(status.split("VmHWM:")[1].split()[0])
                            self.peaks[int(pid)] = max(self.peaks.get(int(pid), 0), kb / 1024)

    def total_mb(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.peaks.values())


def _cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _norm(src: str, fifo: str, out: Any) -> None:
    import pysam.bcftools

    cpu = _cpu_s()
    pysam.bcftools.norm("-m", "-any", "-Ou", "-o", fifo, src, catch_stdout=False)
    out.put((_peak_mb(), _cpu_s() - cpu))


def _query(fifo: str, dst: str, out: Any) -> None:
    import pysam.bcftools

    cpu = _cpu_s()
    pysam.bcftools.query("-f", QUERY, "-o", dst, fifo, catch_stdout=False)
    out.put((_peak_mb(), _cpu_s() - cpu))


def _pipeline(src: str, root: str, out: Any) -> None:
    """The task's work on one file as a node runs it: fingerprint, validate, split,
    convert, content digest, Parquet sealed into the node's encrypted store, manifest."""
    import json

    from workloads.local_node import LocalNode
    from workloads.vcf.pipeline import convert_file, fingerprint, staged_keys
    from workloads.vcf.reference import GeneIndex

    store = LocalNode("bench", Path(root)).store()
    children = _ChildPeaks()
    start, cpu = time.perf_counter(), _cpu_s()
    staged_id = fingerprint(Path(src))
    rows, samples, digest = convert_file(Path(src), store, staged_id=staged_id,
                                         genes=GeneIndex.from_bed())
    store.write_bytes(staged_keys(staged_id)["manifest"], json.dumps(
        {"fingerprint": digest, "source": src, "variant_rows": rows,
         "samples": samples}).encode())
    wall = time.perf_counter() - start
    # Validation and bcftools norm run in child processes alongside: count them too (at
    # least the largest child's peak, which the kernel reports exactly).
    child_mb = max(children.total_mb(),
                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    cpu = _cpu_s() - cpu + _cpu_s(resource.RUSAGE_CHILDREN)
    out.put((wall, _peak_mb() + child_mb, cpu, rows, staged_id))


def _load(root: str, staged_id: str, out: Any) -> None:
    from workloads.local_node import LocalNode
    from workloads.vcf.load import load_staged

    node = LocalNode("bench", Path(root))
    start = time.perf_counter()
    with node.open_warehouse() as warehouse:
        outcome = load_staged(warehouse, node.store(), staged_id)
    out.put((time.perf_counter() - start, _peak_mb(), outcome.variant_rows))


def _run(target: Any, *args: Any) -> Any:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def baseline(src: Path, work: Path) -> tuple[float, float, float]:
    fifo = work / "norm.fifo"
    os.mkfifo(fifo)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start = time.perf_counter()
    procs = [ctx.Process(target=_norm, args=(str(src), str(fifo), queue)),
             ctx.Process(target=_query, args=(str(fifo), str(work / "query.tsv"), queue))]
    for p in procs:
        p.start()
    results = [queue.get(), queue.get()]
    for p in procs:
        p.join()
    wall = time.perf_counter() - start
    fifo.unlink()
    # Both processes are alive at once: their RSS adds up.
    return wall, sum(peak for peak, _ in results), sum(cpu for _, cpu in results)


def measure(samples: int, records: int, work: Path, *, load: bool) -> dict[str, float]:
    import numpy as np

    from workloads.vcf.synth import PatientGenotypes, write_synthetic_vcf

    rng = np.random.default_rng(0)
    counts = [rng.integers(0, 3, samples).astype(np.int8) for _ in range(3)]
    patients = PatientGenotypes([f"BENCH-{i:05d}" for i in range(samples)], *counts)
    start = time.perf_counter()
    [src] = write_synthetic_vcf(patients, work / "in", records=records, seed=1)
    synth = time.perf_counter() - start
    print(f"  synthetic VCF: {src.stat().st_size / 1e6:.0f} MB bgzipped, written in "
          f"{synth:.1f} s", flush=True)
    base_wall, base_peak, base_cpu = baseline(src, work)
    print(f"  baseline : {base_wall:7.1f} s  cpu {base_cpu:6.1f} s  peak {base_peak:6.0f} MB",
          flush=True)
    root = work / "nodes"
    wall, peak, cpu, rows, staged_id = _run(_pipeline, str(src), str(root))
    print(f"  pipeline : {wall:7.1f} s  cpu {cpu:6.1f} s  peak {peak:6.0f} MB  ({rows} rows)",
          flush=True)
    result = {"baseline_s": base_wall, "baseline_mb": base_peak, "pipeline_s": wall,
              "pipeline_mb": peak, "rows": rows, "baseline_cpu": base_cpu, "pipeline_cpu": cpu}
    if load:
        lwall, lpeak, _ = _run(_load, str(root), staged_id)
        print(f"  load     : {lwall:7.1f} s  peak {lpeak:6.0f} MB (DuckDB, encrypted)",
              flush=True)
        result |= {"load_s": lwall, "load_mb": lpeak}
    print(f"  ratio pipeline/baseline: time {wall / base_wall:.2f}x, "
          f"cpu {cpu / base_cpu:.2f}x, peak memory {peak / base_peak:.2f}x "
          f"(target: time <= 1.5x, memory <= 2x)", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--small-fraction", type=float, default=0.25,
                        help="the second, smaller size for the memory check (0 = skip)")
    parser.add_argument("--no-load", action="store_true", help="skip the DuckDB load timing")
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder, removed")
    args = parser.parse_args()
    sizes = [args.records]
    if args.small_fraction:
        sizes.insert(0, max(100, int(args.records * args.small_fraction)))
    print(f"VCF pipeline benchmark: {args.samples} samples; baseline = pysam's bundled "
          f"bcftools (norm -m -any -Ou | query) on {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    print("parallelism: baseline = 2 processes (norm | query, no --threads); pipeline = "
          "validation process + bcftools norm process (no --threads) streaming into the "
          "converter, Parquet written by a thread", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for records in sizes:
            print(f"{args.samples} samples x {records} records:", flush=True)
            work = Path(tmp) / str(records)
            work.mkdir()
            results[records] = measure(args.samples, records, work, load=not args.no_load)
            shutil.rmtree(work)
    if len(sizes) == 2:
        small, big = results[sizes[0]], results[sizes[1]]
        print(f"memory growth x{sizes[1] / sizes[0]:.0f} records: pipeline peak "
              f"{small['pipeline_mb']:.0f} -> {big['pipeline_mb']:.0f} MB "
              f"({big['pipeline_mb'] / small['pipeline_mb']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
