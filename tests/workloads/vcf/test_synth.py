"""Synthetic VCFs: valid for bcftools, deterministic, realistic, and true to the patients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pysam
import pysam.bcftools
import pytest
from vcf_helpers import patients_table

from workloads.contracts.errors import UserError
from workloads.vcf.reference import CONTIG_LENGTHS, GeneIndex
from workloads.vcf.synth import BRCA1_SITE, TP53_SITE, PatientGenotypes, write_synthetic_vcf


@pytest.fixture(scope="module")
def patients() -> PatientGenotypes:
    return PatientGenotypes.from_arrow(patients_table(30, seed=3))


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory, patients: PatientGenotypes) -> list[Path]:
    out = tmp_path_factory.mktemp("synth")
    return write_synthetic_vcf(patients, out, records=600, shards=2, seed=5, progress=False)


def test_files_are_bgzipped_indexed_and_parse_with_bcftools(shards: list[Path]) -> None:
    for path in shards:
        assert path.read_bytes()[:4] == b"\x1f\x8b\x08\x04"  # BGZF: gzip with extra field
        assert Path(str(path) + ".csi").exists()
        stats = pysam.bcftools.stats(str(path))
        assert "number of samples:\t30" in stats
    # The CSI index answers region queries (needs a valid, sorted, bgzipped file).
    with pysam.VariantFile(str(shards[1])) as vcf:
        assert [r.id for r in vcf.fetch("chr17", 7_674_000, 7_675_000)] == [TP53_SITE.rsid]


def test_header_has_grch38_contigs_reference_and_patients(
    shards: list[Path], patients: PatientGenotypes
) -> None:
    with pysam.VariantFile(str(shards[0])) as vcf:
        header = vcf.header
        assert list(header.samples) == patients.ids
        assert header.contigs["chr1"].length == CONTIG_LENGTHS["chr1"]
        assert any(r.key == "reference" and r.value == "GRCh38" for r in header.records)
        numbers = {header.info[k].number for k in header.info} | {
            header.formats[k].number for k in header.formats}
        assert {"A", "R", "G"} <= numbers


def test_background_is_realistic(shards: list[Path]) -> None:
    records = [r for path in shards for r in pysam.VariantFile(str(path))]
    assert len(records) == 600
    assert any(len(r.alts) > 1 for r in records)  # multi-allelic
    assert any(len(r.ref) != len(r.alts[0]) for r in records)  # indels
    calls = [s for r in records for s in r.samples.values()]
    assert any(None in s["GT"] for s in calls)  # missing genotypes
    assert any(s.phased for s in calls)  # phased calls
    genes = GeneIndex.from_bed()
    special = {BRCA1_SITE.rsid, TP53_SITE.rsid, "rs429358", "rs7412"}
    inside = [r.id for r in records if genes.gene_at(r.chrom, r.start, r.stop)]
    assert sorted(inside) == sorted(special)  # background stays outside the gene spans


def test_genotypes_reproduce_each_patient(shards: list[Path], patients: PatientGenotypes) -> None:
    by_id = {r.id: r for path in shards for r in pysam.VariantFile(str(path))
             if r.id in {BRCA1_SITE.rsid, TP53_SITE.rsid, "rs429358", "rs7412"}}
    for i, pid in enumerate(patients.ids):
        assert sum(by_id[BRCA1_SITE.rsid].samples[pid]["GT"]) == patients.brca1[i]
        assert sum(by_id[TP53_SITE.rsid].samples[pid]["GT"]) == patients.tp53[i]
        c429 = by_id["rs429358"].samples[pid]
        t7412 = by_id["rs7412"].samples[pid]
        assert c429.phased and t7412.phased
        e4 = sum(1 for a, b in zip(c429["GT"], t7412["GT"], strict=True) if a == 1 and b == 0)
        assert e4 == patients.apoe4[i]
        assert not any(a == 1 and b == 1 for a, b in zip(c429["GT"], t7412["GT"], strict=True))


def test_same_seed_same_bytes(tmp_path: Path, patients: PatientGenotypes) -> None:
    a = write_synthetic_vcf(patients, tmp_path / "a", records=50, seed=9, progress=False)
    b = write_synthetic_vcf(patients, tmp_path / "b", records=50, seed=9, progress=False)
    c = write_synthetic_vcf(patients, tmp_path / "c", records=50, seed=10, progress=False)
    assert a[0].read_bytes() == b[0].read_bytes() != c[0].read_bytes()


def test_refuses_impossible_requests(patients: PatientGenotypes, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="shards"):
        write_synthetic_vcf(patients, tmp_path, records=10, shards=11, progress=False)
    bad = patients_table(3).set_column(2, "variant_brca1", [[0, 3, 1]])
    with pytest.raises(UserError, match="0-2"):
        PatientGenotypes.from_arrow(bad)
    assert np.array_equal(patients.brca1, np.asarray(patients_table(30, seed=3)["variant_brca1"]))
