"""Split records -> processed_variants rows (Variant Transforms-like), streamed in batches."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from vcf_helpers import FIXTURES

from workloads.contracts.tables.genomics import PROCESSED_VARIANTS
from workloads.vcf.columnar import VariantConverter, as_table
from workloads.vcf.normalise import normalise
from workloads.vcf.reference import GeneIndex, GeneRegion


def _rows(src: Path, tmp: Path, genes: GeneIndex | None = None, calls: int = 0) -> pa.Table:
    split = normalise(src, tmp / "split.bcf")
    conv = VariantConverter(split, genes or GeneIndex.from_bed(), "f" * 64,
                            calls_per_batch=calls)
    return as_table(list(conv.batches()))


def test_one_row_per_alt_with_sliced_fields(tmp_path: Path) -> None:
    table = _rows(FIXTURES / "bcftools_norm.split.vcf", tmp_path)
    assert table.schema == PROCESSED_VARIANTS.arrow_schema()
    assert table.num_rows == 30  # records in bcftools' golden split output
    rows = table.to_pylist()
    first, second = rows[0], rows[1]  # 1:105 TAAACCCTAAA -> TAA, TAACCCTAAA
    assert (first["reference_name"], first["start_position"], first["end_position"]) == (
        "1", 104, 115)
    assert (first["alternate_bases"], second["alternate_bases"]) == ("TAA", "TAACCCTAAA")
    assert first["quality"] == 999 and first["filter"] == ["PASS"]
    info1, info2 = json.loads(first["info"]), json.loads(second["info"])
    assert (info1["XAI"], info2["XAI"]) == (1111, 5555)  # Number=A: the i-th value
    assert (info1["XRI"], info2["XRI"]) == ([1111, 2222], [1111, 5555])  # Number=R
    assert (info1["XGI"], info2["XGI"]) == ([1111, 2222, 3333], [1111, 5555, 9999])  # G
    call1, call2 = first["call"][0], second["call"][0]  # sample 1/2 -> 1/0 and 0/1
    assert call1["name"] == "XY00001"
    assert (call1["genotype"], call2["genotype"]) == ([1, 0], [0, 1])
    assert (call1["PL"], call2["PL"]) == ([1, 2, 3], [1, 4, 6])
    other = json.loads(call2["other_format"])  # FORMAT tags outside the typed columns
    assert other["FRI"] == [1111, 5555] and other["FAS"] == "BB"


def test_no_calls_haploid_and_ref_only_records(tmp_path: Path) -> None:
    rows = _rows(FIXTURES / "bcftools_norm.split.vcf", tmp_path).to_pylist()
    ref_only = [r for r in rows if r["start_position"] == 58]
    assert ref_only[0]["alternate_bases"] is None
    missing = next(r for r in rows if r["start_position"] == 273)
    assert missing["call"][0]["genotype"] == [-1, -1]
    assert missing["call"][0]["phaseset"] is None
    haploid = [r for r in rows if r["start_position"] == 274]
    assert [r["call"][0]["genotype"] for r in haploid] == [[0], [1]]
    assert [r["call"][0]["PL"] for r in haploid] == [[0, 0], [0, 0]]
    ids = [r for r in rows if r["reference_name"] == "21"]
    assert all(r["names"] == ["id"] for r in ids)


def test_spanning_deletion_and_missing_fields(tmp_path: Path) -> None:
    rows = _rows(FIXTURES / "hail_split_test.vcf", tmp_path).to_pylist()
    star = next(r for r in rows if r["alternate_bases"] == "*")
    assert star["start_position"] == 1182
    assert star["call"][3]["genotype"] == [1, 1] and star["call"][3]["AD"] == [0, 6]
    assert all(len(c["PL"]) in (0, 3) for r in rows for c in r["call"])


def test_gene_annotation_from_bed_boundaries(tmp_path: Path) -> None:
    # Gene X covers 0-based [104, 110) on contig 1: the record at 104..115 overlaps it.
    genes = GeneIndex([GeneRegion("1", 104, 110, "X"), GeneRegion("20", 0, 2, "Y")])
    rows = _rows(FIXTURES / "bcftools_norm.split.vcf", tmp_path, genes).to_pylist()
    assert {r["gene"] for r in rows if r["reference_name"] == "1"} == {"X"}
    # 20:3 (0-based 2) starts where Y's half-open span ends: not inside.
    assert {r["gene"] for r in rows if r["reference_name"] == "20"} == {None}
    assert GeneIndex.from_bed().gene_at("chr17", 43_044_294, 43_044_295) == "BRCA1"
    assert GeneIndex.from_bed().gene_at("chr17", 43_044_293, 43_044_294) is None


@pytest.mark.parametrize("calls", [2, 5, 1000])
def test_batch_size_does_not_change_rows(tmp_path: Path, calls: int) -> None:
    whole = _rows(FIXTURES / "hail_split_test.vcf", tmp_path)
    small = _rows(FIXTURES / "hail_split_test.vcf", tmp_path, calls=calls)
    assert small.equals(whole)
