"""Loads keyed by content: the same records load once however they are compressed, and a
second file with other genotypes for the same samples and sites is refused, naming both."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pysam

from workloads.contracts.tables.genomics import PROCESSED_VARIANTS, SAMPLE_APOE, VCF_LOADS
from workloads.local_node import LocalNode
from workloads.objectstore.folder import FolderStore
from workloads.vcf.features import derive_features
from workloads.vcf.load import load_staged
from workloads.vcf.pipeline import QUARANTINE, process_shard
from workloads.vcf.synth import PatientGenotypes, write_synthetic_vcf
from workloads.warehouse.base import Warehouse


def _counts(wh: Warehouse) -> dict[str, int]:
    return {t.name: int(wh.query(f"SELECT count(*) AS n FROM {wh.table_ref(t)}")
                        .column("n")[0].as_py())
            for t in (PROCESSED_VARIANTS, SAMPLE_APOE, VCF_LOADS)}


def _features(wh: Warehouse) -> list[dict[str, object]]:
    return wh.query(f"SELECT * FROM {wh.table_ref('variant_features')} "
                    "ORDER BY patient_id").to_pylist()


def _process(node: LocalNode, wh: Warehouse, path: Path, known: list[str]) -> tuple[str, str]:
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    shard = process_shard(FolderStore(path.parent), path.name, node.store(),
                          known_samples=set(known))
    assert shard.status in ("staged", "already-staged"), shard.reason
    outcome = load_staged(wh, node.store(), shard.staged_id)
    if outcome.loaded:
        derive_features(wh)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before  # read, never changed
    return outcome.status, outcome.reason


def test_same_records_gz_plain_recompressed_load_once(node: LocalNode, tmp_path: Path) -> None:
    with node.open_warehouse() as wh:
        patients = PatientGenotypes.from_warehouse(wh)
    [gz] = write_synthetic_vcf(patients, tmp_path / "a", records=80, seed=3, progress=False)
    plain = tmp_path / "b" / "same.vcf"
    plain.parent.mkdir()
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    recompressed = tmp_path / "c" / "same.vcf.gz"
    recompressed.parent.mkdir()
    with pysam.BGZFile(str(recompressed), "wb1", index=None) as out:  # another level
        out.write(plain.read_bytes())
    assert len({gz.read_bytes(), plain.read_bytes(), recompressed.read_bytes()}) == 3
    with node.open_warehouse() as wh:
        assert _process(node, wh, gz, patients.ids)[0] == "loaded"
        counts, features = _counts(wh), _features(wh)
        assert counts[VCF_LOADS.name] == 1 and counts[SAMPLE_APOE.name] == 40
        for again in (plain, recompressed, gz):
            assert _process(node, wh, again, patients.ids)[0] == "already-loaded"
            assert _counts(wh) == counts and _features(wh) == features


def test_other_genotypes_for_the_same_samples_and_sites_are_refused(
    node: LocalNode, tmp_path: Path
) -> None:
    with node.open_warehouse() as wh:
        patients = PatientGenotypes.from_warehouse(wh)
    [first] = write_synthetic_vcf(patients, tmp_path / "a", records=80, seed=3, progress=False)
    # Same samples, same sites (same seed), other APOE genotypes: e4/e4 vs e3/e3 and so on.
    other = PatientGenotypes(patients.ids, patients.brca1, patients.tp53,
                             (2 - patients.apoe4).astype(np.int8))
    [second] = write_synthetic_vcf(other, tmp_path / "b", records=80, seed=3, progress=False)
    with node.open_warehouse() as wh:
        assert _process(node, wh, first, patients.ids)[0] == "loaded"
        counts, features = _counts(wh), _features(wh)
        status, reason = _process(node, wh, second, patients.ids)
        assert status == "conflict"
        assert str(second) in reason and str(first) in reason  # both sources named
        assert "conflicting calls" in reason and "fix:" in reason
        assert _counts(wh) == counts and _features(wh) == features  # nothing of it loaded
    store = node.store()
    [record_key] = [k for k in store.list(QUARANTINE) if k.endswith("conflict.reason.json")]
    record = json.loads(store.read_bytes(record_key))
    assert record["file"] == str(second) and record["overlaps"]
    assert {o["other_source"] for o in record["overlaps"]} == {str(first)}
