"""Federated DP synthetic data vs a centralised Gaussian copula on the pooled rows.

    .venv/bin/python benchmarks/synthetic.py                      # the full grid
    .venv/bin/python benchmarks/synthetic.py --sites 2 --epsilons 1,inf --rows-per-node 2000

Data: patient_genomic_data from the project's generator, `--rows-per-node` patients per
site (profiles us and eu alternating, a seed per site), pooled; a holdout of a fifth as
many per site, never used for fitting. Partitions: IID (rows dealt at random to the
sites) and non-IID (Dirichlet(alpha) label skew on diagnosis_cancer). The federated model
runs the simulator (the protocol of `federate synth`: each site a real local node with
its worker and guard, DP histograms and DP normal-score sums per site through the guard,
SecAgg+ sums over the in-process transport, latent correlation, Higham repair), one
round, epsilon per site. "inf" asks for the guard's floor noise (multiplier 1e-3, a
standard deviation of ~0.002 counts): the nodes' guards never release without noise.
Seconds include creating the sites' nodes (encrypted warehouses, keys) and the run.

Baseline (named, measured in the same run on the same pooled rows): SDV 2.0's
GaussianCopulaSynthesizer (centralised, not private), run from its own virtualenv
(`--sdv-python`, because SDV pulls torch and is not in the project's environment); if that
interpreter is missing, copulas' GaussianMultivariate (which SDV wraps) in this one.

Scores (SDMetrics 0.32, against the pooled real rows): overall, column shapes, pair trends
as SDMetrics defines them (n/a when no real pair is strongly associated, as here), pair
trends over all pairs, and DCROverfittingProtection (distance to closest record: 1 when
synthetic rows are no closer to the training rows than to the holdout rows).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.generator.profile import find_profile
from workloads.generator.sampling import generate_batches
from workloads.synthetic.quality import QualityEvaluator, sdmetrics_metadata
from workloads.synthetic.simulator import FederatedTrainingSimulator

COLUMNS = [c for c in PATIENT_GENOMIC_DATA.column_names if c != "patient_id"]

_SDV_SCRIPT = """
import json, sys, warnings
warnings.simplefilter("ignore")
import numpy as np, pandas as pd
from sdv.metadata import Metadata
from sdv.single_table import GaussianCopulaSynthesizer
src, out, meta, n, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
real = pd.read_csv(src)
synth = GaussianCopulaSynthesizer(Metadata.load_from_dict(json.load(open(meta))))
synth.fit({"t": real})
np.random.seed(seed)
sample = synth.sample(n)
(sample["t"] if isinstance(sample, dict) else sample).to_csv(out, index=False)
"""


def site_rows(site: int, rows: int, seed: int) -> pd.DataFrame:
    profile = find_profile("us" if site % 2 == 0 else "eu")
    batches = list(generate_batches(profile, rows, seed))
    return pd.concat([b.to_pandas() for b in batches], ignore_index=True)[COLUMNS]


def sdv_metadata() -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for name in COLUMNS:
        column = PATIENT_GENOMIC_DATA.column(name)
        if column.levels:
            columns[name] = {"sdtype": "categorical"}
        else:
            columns[name] = {"sdtype": "numerical",
                             "computer_representation": "Int64" if column.type == "INTEGER"
                             else "Float"}
    return {"tables": {"t": {"columns": columns}}, "METADATA_SPEC_VERSION": "V1"}


def baseline(pooled: pd.DataFrame, n: int, seed: int, sdv_python: Path) -> tuple[str, pd.DataFrame]:
    if sdv_python.exists():
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            pooled.to_csv(folder / "real.csv", index=False)
            (folder / "meta.json").write_text(json.dumps(sdv_metadata()))
            (folder / "fit.py").write_text(_SDV_SCRIPT)
            subprocess.run([str(sdv_python), str(folder / "fit.py"), str(folder / "real.csv"),
                            str(folder / "out.csv"), str(folder / "meta.json"), str(n), str(seed)],
                           check=True, capture_output=True)
            return "SDV GaussianCopulaSynthesizer", pd.read_csv(folder / "out.csv")[COLUMNS]
    from copulas.multivariate import GaussianMultivariate  # type: ignore[import-untyped]

    model = GaussianMultivariate()
    model.fit(pooled.astype(float))
    sample = model.sample(n)
    for name in COLUMNS:
        column = PATIENT_GENOMIC_DATA.column(name)
        low, high = column.bounds or (-math.inf, math.inf)
        sample[name] = sample[name].clip(low, high)
        if column.type == "INTEGER":
            sample[name] = sample[name].round().astype(np.int64)
    return "copulas GaussianMultivariate", sample[COLUMNS]


def scores(real: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame,
           dcr_rows: int) -> dict[str, Any]:
    from sdmetrics.single_table import DCROverfittingProtection  # type: ignore[import-untyped]

    quality = QualityEvaluator(real, synthetic, PATIENT_GENOMIC_DATA)
    metadata = sdmetrics_metadata(COLUMNS, PATIENT_GENOMIC_DATA, real)["tables"]["table"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcr = DCROverfittingProtection.compute_breakdown(
            real, synthetic, holdout, metadata, None,
            num_rows_subsample=min(dcr_rows, len(holdout), len(real), len(synthetic)))
    return {
        "overall": quality.overall_score,
        "shapes": quality.column_shapes,
        "pairs": quality.pair_trends,
        "pairs_all": quality.pair_trends_all,
        "dcr": float(dcr["score"]),
        "closer_to_training": float(dcr["synthetic_data_percentages"]["closer_to_training"]),
    }


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows-per-node", type=int, default=10_000)
    parser.add_argument("--sites", default="2,3,5")
    parser.add_argument("--epsilons", default="1,3,10,inf")
    parser.add_argument("--alpha", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dcr-rows", type=int, default=1000)
    parser.add_argument("--sdv-python", type=Path, default=Path("/tmp/sdv-venv/bin/python"))
    args = parser.parse_args()
    sites_list = [int(s) for s in args.sites.split(",")]
    epsilons = [math.inf if e == "inf" else float(e) for e in args.epsilons.split(",")]

    print("| sites | partition | epsilon | overall | column shapes | pair trends (SDMetrics) "
          "| pair trends (all pairs) | DCR overfitting protection | closer to training "
          "| overall vs baseline | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    checks: list[str] = []
    for k in sites_list:
        pooled = pd.concat([site_rows(i, args.rows_per_node, args.seed * 100 + i + 1)
                            for i in range(k)], ignore_index=True)
        holdout = pd.concat([site_rows(i, args.rows_per_node // 5, 10_000 + args.seed * 100 + i)
                             for i in range(k)], ignore_index=True)
        start = time.perf_counter()
        name, base_sample = baseline(pooled, len(pooled), args.seed, args.sdv_python)
        base_seconds = time.perf_counter() - start
        base = scores(pooled, base_sample, holdout, args.dcr_rows)
        print(f"| {k} | pooled | {name} (not private) | {fmt(base['overall'])} "
              f"| {fmt(base['shapes'])} | {fmt(base['pairs'])} | {fmt(base['pairs_all'])} "
              f"| {fmt(base['dcr'])} | {base['closer_to_training']:.3f} | 1.000 "
              f"| {base_seconds:.1f} |", flush=True)
        for partition in ("IID", f"non-IID a={args.alpha}"):
            for epsilon in epsilons:
                simulator = FederatedTrainingSimulator(
                    k, epsilon=epsilon, site_budget=math.inf, seed=args.seed)
                if partition == "IID":
                    simulator.setup_from_data(pooled)
                else:
                    simulator.setup_non_iid(pooled, "diagnosis_cancer", alpha=args.alpha)
                start = time.perf_counter()
                simulator.simulate_training(n_rounds=1)
                synthetic = simulator.generate_synthetic(len(pooled))
                seconds = time.perf_counter() - start
                got = scores(pooled, synthetic, holdout, args.dcr_rows)
                ratio = got["overall"] / base["overall"]
                print(f"| {k} | {partition} | {epsilon:g} | {fmt(got['overall'])} "
                      f"| {fmt(got['shapes'])} | {fmt(got['pairs'])} | {fmt(got['pairs_all'])} "
                      f"| {fmt(got['dcr'])} | {got['closer_to_training']:.3f} | {ratio:.3f} "
                      f"| {seconds:.1f} |", flush=True)
                if math.isinf(epsilon):
                    gap = base["overall"] - got["overall"]
                    checks.append(f"{k} sites {partition}, no noise: overall {got['overall']:.4f}"
                                  f" vs baseline {base['overall']:.4f} (gap {gap:+.4f}): "
                                  f"{'PASS' if gap <= 0.02 else 'FAIL'} (target gap <= 0.02)")
                if epsilon == 1.0 and args.rows_per_node >= 10_000:
                    checks.append(f"{k} sites {partition}, epsilon 1: column shapes "
                                  f"{got['shapes']:.4f}: "
                                  f"{'PASS' if got['shapes'] >= 0.90 else 'FAIL'} (target >= 0.90)")
    print()
    for line in checks:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
