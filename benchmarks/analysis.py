"""Logistic fit pushed down into each node's warehouse vs pulling the rows into numpy.

    .venv/bin/python benchmarks/analysis.py                          # 2 nodes x 1M and 10M rows
    .venv/bin/python benchmarks/analysis.py --rows 1000000 --nodes us

Baseline (named "numpy", today's federation worker): each node reads its rows out of its
warehouse into numpy, then every Newton round computes the gradient and Hessian in numpy;
the hub sums them. Measured: the push-down fit (workloads.analysis: one SQL aggregate per
node per round, no row leaves DuckDB). Same model, same public scaling, same tolerance.
Each method runs in its own process, so its peak RSS (VmHWM) is its own; wall time
covers opening the warehouses to the final coefficients. Nodes are generated with the
generator once and reused (a re-run checks the row count and skips generation).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from workloads.analysis import glm
from workloads.analysis.spec import from_dict, validate
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.local_node import LocalNode

COVARIATES = ["age", "bmi", "variant_brca1", "variant_tp53", "variant_apoe4"]
SPEC = from_dict({"table": PATIENT_GENOMIC_DATA.name, "outcome": "diagnosis_cancer",
                  "covariates": COVARIATES, "tolerance": 1e-10})


def ensure_nodes(root: Path, nodes: list[str], rows: int) -> None:
    from workloads.generator.profile import find_profile
    from workloads.generator.run import WAREHOUSE, generate_node

    for seed, name in enumerate(nodes, start=1):
        node = LocalNode(name, root)
        if node.warehouse_path.exists():
            with node.open_warehouse(create=False) as warehouse:
                have = warehouse.query(
                    f"SELECT count(*) AS n FROM {warehouse.table_ref(PATIENT_GENOMIC_DATA)}"
                ).column("n")[0].as_py()
            if have == rows:
                continue
            raise SystemExit(f"{node.folder} holds {have} rows, not {rows}; remove it")
        started = time.perf_counter()
        generate_node(find_profile(name), rows=rows, seed=seed, root=root, formats=(WAREHOUSE,))
        print(f"generated {name}: {rows:,} rows in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)


def fit_pushdown(root: Path, nodes: list[str]) -> dict[str, Any]:
    warehouses = {n: LocalNode(n, root).open_warehouse(create=False) for n in nodes}
    try:
        result = glm.run_local_fit(warehouses, SPEC)
    finally:
        for warehouse in warehouses.values():
            warehouse.close()
    return {"coefficients": result.coefficients.tolist(), "rounds": result.iterations}


def fit_numpy(root: Path, nodes: list[str]) -> dict[str, Any]:
    """Today's way: rows into numpy at each node, numpy gradient/Hessian per round."""
    design = validate(SPEC)
    centre = np.array([t.centre for t in design.terms[1:]])
    scale = np.array([t.scale for t in design.terms[1:]])
    data = []
    for name in nodes:
        with LocalNode(name, root).open_warehouse(create=False) as warehouse:
            table = warehouse.query(
                f"SELECT {', '.join(COVARIATES)}, diagnosis_cancer "
                f"FROM {warehouse.table_ref(PATIENT_GENOMIC_DATA)}")
        x = np.column_stack([table.column(c).to_numpy().astype(np.float64) for c in COVARIATES])
        y = table.column("diagnosis_cancer").to_numpy().astype(np.float64)
        del table
        data.append((np.column_stack([np.ones(len(y)), (x - centre) / scale]), y))
        del x
    beta = np.zeros(len(design.terms))
    rounds = 0
    while rounds < 50:
        rounds += 1
        gradient = np.zeros_like(beta)
        hessian = np.zeros((len(beta), len(beta)))
        for xs, y in data:  # each node's terms, summed at the hub
            p = 1.0 / (1.0 + np.exp(-(xs @ beta)))
            gradient += xs.T @ (y - p)
            hessian += (xs * (p * (1.0 - p))[:, None]).T @ xs
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        if np.max(np.abs(step)) < SPEC.tolerance:
            break
    return {"coefficients": (glm.unscale_matrix(design) @ beta).tolist(), "rounds": rounds}


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries that over from the
    parent across fork and exec, so a child would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(method: str, root: Path, nodes: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", method, "--root", str(root),
         "--nodes", ",".join(nodes)],
        check=True, capture_output=True, text=True,
    )
    parsed: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="rows per node, a list")
    parser.add_argument("--nodes", default="us,eu")
    parser.add_argument("--root", type=Path, default=Path("/tmp/analysis-bench"),
                        help="where the generated nodes are kept between runs")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run each method this many times; report the fastest")
    parser.add_argument("--child", choices=["numpy", "pushdown"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    nodes = [n for n in args.nodes.split(",") if n]
    if args.child:
        started = time.perf_counter()
        result = (fit_numpy if args.child == "numpy" else fit_pushdown)(args.root, nodes)
        result["seconds"] = time.perf_counter() - started
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return
    print(f"{'rows/node':>12} {'nodes':>5} {'method':>9} {'wall s':>8} {'rounds':>6} "
          f"{'peak RSS MB':>11} {'vs numpy':>9} {'max |coef diff|':>16}")
    for rows in (int(r) for r in args.rows.split(",")):
        root = args.root / str(rows)
        ensure_nodes(root, nodes, rows)
        numpy_runs, push_runs = [], []
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            numpy_runs.append(run_child("numpy", root, nodes))
            push_runs.append(run_child("pushdown", root, nodes))
        numpy_run = min(numpy_runs, key=lambda r: r["seconds"])
        push = min(push_runs, key=lambda r: r["seconds"])
        if args.repeats > 1:
            print(f"  runs: numpy {[round(r['seconds'], 2) for r in numpy_runs]}, pushdown "
                  f"{[round(r['seconds'], 2) for r in push_runs]}")
        diff = float(np.max(np.abs(np.array(push["coefficients"]) -
                                   np.array(numpy_run["coefficients"]))))
        for name, run in (("numpy", numpy_run), ("pushdown", push)):
            ratio = run["seconds"] / numpy_run["seconds"]
            print(f"{rows:>12,} {len(nodes):>5} {name:>9} {run['seconds']:>8.2f} "
                  f"{run['rounds']:>6} {run['peak_rss_mb']:>11.0f} {ratio:>8.2f}x "
                  f"{diff if name == 'pushdown' else 0.0:>16.2e}", flush=True)


if __name__ == "__main__":
    main()
