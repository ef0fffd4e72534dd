"""The generator benchmark's baseline, run as a whole process of its own: a seed-like
script that builds the whole population in one pandas DataFrame and writes it as CSV.

    python benchmarks/generator_baseline.py --rows 10000000 --out DIR

Same profile as `workloads/generator/profiles/us.toml` (US- ids, age, allele counts,
BMI, the logistic diagnosis), drawn the seed's way: ids from a Python list
comprehension, numpy draws, `DataFrame.to_csv`. Only numpy and pandas are imported, as
in the seed; nothing of this project.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def generate(rows: int, seed: int) -> pd.DataFrame:
    np.random.seed(seed)  # the seed's legacy global generator
    ids = [f"US-{i:04d}" for i in range(1, rows + 1)]
    ages = np.clip(np.random.normal(52, 12, rows).astype(int), 25, 80)
    bmis = np.clip(np.random.normal(28.5, 4, rows), 18.5, 40.0)
    brca1 = np.random.choice([0, 1, 2], rows, p=[0.85, 0.12, 0.03])
    tp53 = np.random.choice([0, 1, 2], rows, p=[0.90, 0.08, 0.02])
    apoe4 = np.random.choice([0, 1, 2], rows, p=[0.80, 0.15, 0.05])
    logits = -3.0 + 0.03 * (ages - 50) + 0.8 * brca1 + 0.5 * tp53
    cancer = (np.random.random(rows) < 1 / (1 + np.exp(-logits))).astype(int)
    return pd.DataFrame({
        "patient_id": ids, "age": ages, "variant_brca1": brca1, "variant_tp53": tp53,
        "variant_apoe4": apoe4, "bmi": np.round(bmis, 1), "diagnosis_cancer": cancer,
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    generate(args.rows, args.seed).to_csv(
        args.out / "patient_genomic_data_us.csv", index=False)


if __name__ == "__main__":
    main()
