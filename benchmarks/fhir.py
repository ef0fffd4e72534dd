"""FHIR ingestion end to end (split, validate, stage, merge, flatten) vs DuckDB's read_json.

    python -m benchmarks.fhir                     # 1,000 generated patients
    python -m benchmarks.fhir --patients 200 --workers 2

Measured, on Synthea-shaped bundles generated for the node's own patients: resources per
second of the first load into an empty node and of an unchanged re-run (0 inserted, 0
updated). Baseline, in the same run: DuckDB's `read_json` of the same resources as NDJSON
(the per-patient files the load split them into) into a table of an in-memory database - no
validation, no references, no merge, no encryption. The ratio is our time / baseline time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import duckdb

if not __package__:  # run as a script, this file (fhir.py) would shadow the fhir package
    sys.exit("run it as a module from the repository root: python -m benchmarks.fhir")

from workloads.clinical.load import INPUT_PREFIX, ingest, node_store, sources_from
from workloads.clinical.records import SPLIT_PREFIX
from workloads.clinical.synth import write_synthetic
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.generator.profile import find_profile
from workloads.generator.run import WAREHOUSE, generate_node
from workloads.local_node import LocalNode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_node(find_profile("us"), rows=args.patients, seed=1, root=root,
                      formats=(WAREHOUSE,))
        node = LocalNode("us", root)
        with node.open_warehouse() as wh:
            patients = wh.query(f"SELECT patient_id, age, bmi, diagnosis_cancer FROM "
                                f"{wh.table_ref(PATIENT_GENOMIC_DATA)} ORDER BY patient_id")
        write_synthetic(patients, node_store(node), INPUT_PREFIX, progress=False)

        start = time.perf_counter()
        first = ingest(node, sources_from(node, []), workers=args.workers, progress=False)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        again = ingest(node, sources_from(node, []), workers=args.workers, progress=False)
        again_s = time.perf_counter() - start
        assert (again.inserted, again.updated) == (0, 0), again.summary()

        # The baseline reads the same resources as plain NDJSON files (a copy made here,
        # outside the node, through the store so it works whatever the store encrypts).
        store = node_store(node)
        plain = root / "plain"
        plain.mkdir()
        for i, key in enumerate(store.list(SPLIT_PREFIX)):
            (plain / f"{i}.ndjson").write_bytes(store.read_bytes(key))
        con = duckdb.connect()
        start = time.perf_counter()
        con.execute(f"CREATE TABLE raw AS SELECT * FROM read_json('{plain}/*.ndjson', "
                    f"format = 'newline_delimited', union_by_name = true)")
        base_rows = con.execute("SELECT count(*) FROM raw").fetchone()
        base_s = time.perf_counter() - start

    n = first.resources
    assert base_rows and base_rows[0] == n, (base_rows, n)
    print(f"patients {args.patients}, resources {n}, workers {args.workers}, "
          f"quarantined {len(first.quarantined)}")
    print(f"first load      {first_s:8.2f} s  {n / first_s:10,.0f} resources/s  "
          f"(inserted {first.inserted})")
    print(f"unchanged rerun {again_s:8.2f} s  {n / again_s:10,.0f} resources/s  "
          f"(inserted {again.inserted}, updated {again.updated})")
    print(f"baseline duckdb read_json {base_s:8.2f} s  {n / base_s:10,.0f} resources/s")
    print(f"time ratio ours / baseline: first load {first_s / base_s:.2f}x, "
          f"unchanged re-run {again_s / base_s:.2f}x")


if __name__ == "__main__":
    main()
