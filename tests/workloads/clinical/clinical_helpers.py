"""Helpers for the clinical tests: fixture paths, patient tables, provider bundles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from workloads.clinical.records import walk_references

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SYNTHEA = FIXTURES / "synthea"
CONFORMANCE = FIXTURES / "sql-on-fhir-v2" / "tests"
PATIENTS = 30  # patients of the test node


def patients_table(n: int, seed: int = 7, node: str = "US") -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "patient_id": [f"{node}-{i:04d}" for i in range(n)],
        "age": rng.integers(25, 81, n),
        "variant_brca1": rng.choice(3, n, p=[0.8, 0.15, 0.05]),
        "variant_tp53": rng.choice(3, n, p=[0.85, 0.1, 0.05]),
        "variant_apoe4": rng.choice(3, n, p=[0.7, 0.25, 0.05]),
        "bmi": np.round(rng.uniform(18.5, 40, n), 1),
        "diagnosis_cancer": rng.integers(0, 2, n),
    })


def provider_bundles_for(bundles: list[Path]) -> list[dict[str, Any]]:
    """The hospital and practitioner bundles Synthea writes beside patient bundles (these
    fixtures come without them): one resource per conditional reference the bundles make."""
    wanted: dict[str, tuple[str, str, str]] = {}
    for path in bundles:
        for ref in walk_references(json.loads(path.read_text())):
            target = ref["reference"]
            if "?identifier=" in target:
                rtype, _, ident = target.partition("?identifier=")
                system, _, value = ident.rpartition("|")
                wanted[target] = (rtype, system, value)
    hospital, practitioners = [], []
    for i, (rtype, system, value) in enumerate(sorted(wanted.values())):
        resource: dict[str, Any] = {"resourceType": rtype, "id": f"{rtype.lower()}-{i}",
                                    "identifier": [{"system": system, "value": value}]}
        if rtype == "Practitioner":
            resource["name"] = [{"family": "Doe", "given": ["Alex"]}]
            practitioners.append(resource)
        else:
            resource["name"] = f"{rtype} {value[:8]}"
            hospital.append(resource)

    def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}", "resource": r,
             "request": {"method": "POST", "url": r["resourceType"]}}
            for i, r in enumerate(resources)]}

    return [bundle(hospital), bundle(practitioners)]
