"""Utility of a DP federated logistic fit at epsilon 1, 3 and 10 (issue #11's proof).

Three generated nodes (us, eu, sg; sizes below), the spec `diagnosis_cancer ~ age + bmi +
variant_brca1 (categorical)`, fitted through the full federation protocol in-process:
once exactly (the reference), then with DP at each epsilon, `--repeats` times, each run on
a fresh copy of the node folders (a node's lifetime odometer would otherwise refuse the
second run). Prints, per epsilon and term, the median over repeats of
|DP estimate - exact estimate| in units of the exact standard error, and the noise
multiplier the nodes applied.

    .venv/bin/python -m benchmarks.analysis_dp --repeats 5
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np

from workloads.analysis.spec import from_dict
from workloads.federation.analysis_hub import fit_spec
from workloads.federation.coordinator import DPRequest, RunConfig
from workloads.federation.local import local_federation
from workloads.generator.profile import find_profile
from workloads.generator.run import WAREHOUSE, generate_node

SPEC = {"table": "patient_genomic_data", "outcome": "diagnosis_cancer",
        "covariates": ["age", "bmi"], "categorical": {"variant_brca1": "0"}}
RELEASES = 6  # DP Newton rounds (the engine's plan for a fit)


def fit(root: Path, dp: DPRequest | None) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    nodes = ["us", "eu", "sg"]
    with local_federation(root, nodes) as hub:
        coordinator = hub.coordinator(RunConfig(tuple(nodes), max_rounds=25, dp=dp))
        result = fit_spec(coordinator, from_dict(SPEC))
        coordinator.finish()
    multiplier = dp.noise_multiplier if dp else 0.0
    return result.coefficients, result.std_errors, [t.name for t in result.terms], multiplier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="us=20000,eu=5000,sg=1000")
    parser.add_argument("--epsilons", default="1,3,10")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sizes = {k: int(v) for k, v in (item.split("=") for item in args.sizes.split(","))}
    with tempfile.TemporaryDirectory(prefix="analysis-dp-") as tmp:
        base = Path(tmp) / "base"
        for seed, (name, rows) in enumerate(sizes.items(), start=11):
            generate_node(find_profile(name), rows=rows, seed=seed, root=base,
                          formats=(WAREHOUSE,), progress=False)

        def fresh(label: str) -> Path:
            copy = Path(tmp) / label
            shutil.copytree(base, copy)
            return copy

        exact, se, names, _ = fit(fresh("exact"), None)
        print(f"nodes {sizes}; spec {SPEC}; {RELEASES} DP rounds; {args.repeats} repeats")
        print("| epsilon per node | noise multiplier | "
              + " | ".join(f"{n}" for n in names) + " |")
        print("|---|---|" + "---|" * len(names))
        print("| exact (estimate) | - | " + " | ".join(f"{v:.4g}" for v in exact) + " |")
        print("| exact (std. error) | - | " + " | ".join(f"{v:.3g}" for v in se) + " |")
        for epsilon in (float(e) for e in args.epsilons.split(",")):
            errors = []
            multiplier = 0.0
            for r in range(args.repeats):
                dp = DPRequest(epsilon, RELEASES)
                coefficients, _, _, multiplier = fit(fresh(f"e{epsilon:g}-{r}"), dp)
                errors.append(np.abs(coefficients - exact) / se)
            median = [statistics.median(e[j] for e in errors) for j in range(len(names))]
            print(f"| {epsilon:g} | {multiplier:.3g} | "
                  + " | ".join(f"{m:.2f}" for m in median) + " |")


if __name__ == "__main__":
    main()
