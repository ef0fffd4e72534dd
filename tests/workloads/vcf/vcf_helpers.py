"""Helpers for the VCF tests: fixture paths and patient tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

# Real VCFs from bcftools' and hail's test suites (provenance: tests/fixtures/README.md).
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "vcf"


def patients_table(n: int, seed: int = 7, node: str = "US") -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "patient_id": [f"{node}-{i:04d}" for i in range(n)],
        "age": rng.integers(25, 81, n),
        "variant_brca1": rng.choice(3, n, p=[0.8, 0.15, 0.05]),
        "variant_tp53": rng.choice(3, n, p=[0.85, 0.1, 0.05]),
        "variant_apoe4": rng.choice(3, n, p=[0.7, 0.25, 0.05]),
        "bmi": rng.normal(27, 4, n),
        "diagnosis_cancer": rng.integers(0, 2, n),
    })


