"""Process -> load -> derive on a local node: one copy per file, features equal the patients."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workloads.contracts.tables.genomics import PROCESSED_VARIANTS, SAMPLE_APOE, VCF_LOADS
from workloads.generator.profile import find_profile
from workloads.generator.run import generate_node
from workloads.local_node import LocalNode
from workloads.vcf.features import derive_features, feature_mismatches
from workloads.vcf.load import load_staged
from workloads.vcf.pipeline import process_shard, staged_keys
from workloads.vcf.synth import PatientGenotypes, synth_into_store
from workloads.warehouse.base import Warehouse


def _count(warehouse: Warehouse, table: str) -> int:
    ref = warehouse.table_ref(table)
    return int(warehouse.query(f"SELECT count(*) AS n FROM {ref}").column("n")[0].as_py())


def _synth_and_stage(node: LocalNode, shards: int = 2, records: int = 200) -> list[str]:
    """Staged ids of `shards` synthetic files in the node's (encrypted) bucket."""
    store = node.store()
    with node.open_warehouse() as wh:
        patients = PatientGenotypes.from_warehouse(wh)
    synth_into_store(patients, store, "vcf/", records=records, shards=shards, seed=2,
                     progress=False)
    results = [process_shard(store, k, store, known_samples=set(patients.ids))
               for k in store.list("vcf/") if k.endswith(".vcf.gz")]
    assert all(r.status == "staged" for r in results)
    return [r.staged_id for r in results]


def test_features_from_generator_patients_equal_their_values(tmp_path: Path) -> None:
    root = tmp_path / "nodes"
    generate_node(find_profile("us"), rows=60, seed=4, root=root, formats=("warehouse",),
                  progress=False)
    node = LocalNode("us", root)
    fps = _synth_and_stage(node, shards=3)
    with node.open_warehouse() as wh:
        for fp in fps:
            assert load_staged(wh, node.store(), fp).loaded
        result = derive_features(wh)
        assert result.inserted == 60
        assert feature_mismatches(wh).num_rows == 0
        # The annotator's haplotype-aware APOE typing agrees with the SQL derivation.
        differ = wh.query(
            f"SELECT count(*) AS n FROM {wh.table_ref(SAMPLE_APOE)} a JOIN "
            f"{wh.table_ref('variant_features')} f ON a.sample = f.patient_id "
            f"WHERE a.e4_count IS DISTINCT FROM f.variant_apoe4")
        assert differ.column("n")[0].as_py() == 0
        assert _count(wh, SAMPLE_APOE.name) == 60
        assert derive_features(wh).inserted == 0  # re-running changes nothing


def test_a_file_loaded_twice_leaves_one_copy(node: LocalNode) -> None:
    fps = _synth_and_stage(node, shards=1)
    store = node.store()
    with node.open_warehouse() as wh:
        first = load_staged(wh, store, fps[0])
        rows = _count(wh, PROCESSED_VARIANTS.name)
        again = load_staged(wh, store, fps[0])
        assert first.loaded and not again.loaded
        assert rows == first.variant_rows == _count(wh, PROCESSED_VARIANTS.name)
        assert _count(wh, VCF_LOADS.name) == 1


def test_a_failed_load_leaves_nothing(node: LocalNode) -> None:
    fps = _synth_and_stage(node, shards=1)
    store = node.store()
    # The variants load, then an APOE value cannot be stored: the transaction rolls back.
    bad = pa.table({"sample": ["US-0001"], "apoe_genotype": ["e3/e4"], "e4_count": ["two"],
                    "phased": [True], "source_fingerprint": ["x"]})
    with store.open_write(staged_keys(fps[0])["apoe"]) as out:
        pq.write_table(bad, out)
    with node.open_warehouse() as wh:
        with pytest.raises(Exception, match=r"(?i)convert|cast|two"):
            load_staged(wh, store, fps[0])
        assert _count(wh, PROCESSED_VARIANTS.name) == 0
        assert _count(wh, VCF_LOADS.name) == 0
        assert _count(wh, SAMPLE_APOE.name) == 0


def test_retried_task_reuses_finished_staging(node: LocalNode) -> None:
    fps = _synth_and_stage(node, shards=1)
    store = node.store()
    manifest = node.bucket / staged_keys(fps[0])["manifest"]
    before = manifest.stat().st_mtime_ns
    again = process_shard(store, store.list("vcf/")[0], store)
    assert again.status == "already-staged" and again.staged_id == fps[0]
    assert manifest.stat().st_mtime_ns == before
