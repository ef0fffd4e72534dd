"""The fast converter (streamed from bcftools, vectorised, digest on the writer thread)
gives exactly what the converter before it gave: the same rows, the same APOE table and
the same content digest (the load key, so nothing loaded before is loaded again), on the
real fixtures and on hostile inputs; and the streaming never leaves bcftools running."""

from __future__ import annotations

import contextlib
import gzip
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from columnar_before import VariantConverter as ConverterBefore
from columnar_before import as_table as as_table_before
from vcf_helpers import FIXTURES

from workloads.objectstore.folder import FolderStore
from workloads.vcf import pipeline
from workloads.vcf.columnar import VariantConverter, as_table
from workloads.vcf.normalise import normalise, split_stream
from workloads.vcf.pipeline import convert_file, staged_keys
from workloads.vcf.reference import GeneIndex
from workloads.vcf.validate import VcfInputError

SAMPLES = ["S1", "S2", "S3", "S4", "S5"]
HEADER = """##fileformat=VCFv4.2
##contig=<ID=chr17,length=83257441>
##contig=<ID=chr19,length=58617616>
##INFO=<ID=AC,Number=A,Type=Integer,Description="a">
##INFO=<ID=AF,Number=A,Type=Float,Description="a">
##INFO=<ID=DB,Number=0,Type=Flag,Description="a">
##INFO=<ID=NOTE,Number=1,Type=String,Description="a">
##FILTER=<ID=q10,Description="a">
##FORMAT=<ID=GT,Number=1,Type=String,Description="a">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="a">
##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="a">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="a">
##FORMAT=<ID=PL,Number=G,Type=Integer,Description="a">
##FORMAT=<ID=FT,Number=1,Type=String,Description="a">
##FORMAT=<ID=XF,Number=2,Type=Float,Description="a">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t""" + "\t".join(SAMPLES)

# Every shape of call the converter has a path for: complete, multi-allelic (split by
# bcftools), whole field missing, items missing, fields absent from a record, mixed and
# odd ploidy, phased and not, string and float FORMAT fields, the APOE SNPs, no ALT.
RECORDS = [
    "chr17\t43044300\trs1\tA\tG\t50\tPASS\tAC=3;AF=0.3\tGT:DP:GQ:AD:PL"
    "\t0/1:10:20:5,5:10,0,10\t0/0:8:30:8,0:0,20,30\t1/1:9:10:0,9:40,20,0"
    "\t0/1:7:15:3,4:12,0,9\t0/0:6:25:6,0:0,18,25",
    "chr17\t43044400\trs2;rs3\tC\tT,G\t.\tq10\tAC=1,2;AF=0.1,0.2;DB\tGT:DP:AD:PL"
    "\t1/2:10:2,4,4:50,30,40,20,0,30\t0/0:.:.:.\t./.:.:.:.\t0|2:5:3,.,2:0,.,5,.,.,9"
    "\t2/2:4:0,0,4:90,80,70,60,50,0",
    "chr17\t7670000\t.\tG\tGA\t12.5\t.\tNOTE=x;AC=1\tGT:DP:FT:XF"
    "\t0/1:3:PASS:0.5,1.5\t0:2:.:.\t1|0:1:lowq:2.5,.\t.:.:.:.\t0/0/1:5:PASS:1,2",
    "chr17\t7670100\t.\tT\tC\t30\tPASS\t.\tGT\t0\t1\t0/1\t.\t1|1",
    "chr17\t7670200\t.\tT\t.\t30\tPASS\t.\tGT:DP\t0/0:5\t0/0:6\t./.:.\t0/0:7\t0/0:8",
    "chr19\t44908684\trs429358\tT\tC\t99\tPASS\t.\tGT:DP:GQ\t0|1:9:9\t1|1:9:9\t0/0:9:9"
    "\t0/1:9:9\t./.:.:.",
    "chr19\t44908822\trs7412\tC\tT\t99\tPASS\t.\tGT:DP:GQ\t0|0:9:9\t0|0:9:9\t0/1:9:9"
    "\t1/1:9:9\t0/0:9:9",
    "chr19\t44909000\t.\tA\tC,G,T\t99\tPASS\tAC=1,1,1\tGT:AD:PL\t1/3:1,2,3,4:"
    + ",".join(str(i) for i in range(10)) + "\t0/0:5,0,0,0:" + ",".join(["0"] * 10)
    + "\t./.:.:.\t2|3:0,0,3,3:" + ",".join(str(9 - i) for i in range(10))
    + "\t0:4,.,.,.:0,1,2,3",
]


def _hostile(tmp: Path, records: list[str] = RECORDS, header: str = HEADER) -> Path:
    path = tmp / "hostile.vcf"
    path.write_text(header + "\n" + "\n".join(records) + "\n")
    return path


def _zero_samples(tmp: Path) -> Path:
    header = HEADER.rsplit("\tFORMAT", 1)[0]
    return _hostile(tmp, ["\t".join(r.split("\t")[:8]) for r in RECORDS], header)


INPUTS = {
    "bcftools_norm": lambda tmp: FIXTURES / "bcftools_norm.split.vcf",
    "hail_split": lambda tmp: FIXTURES / "hail_split_test.vcf",
    "ad_bias": lambda tmp: FIXTURES / "bcftools_ad-bias.2.vcf",
    "hostile": _hostile,
    "zero_samples": _zero_samples,
}


def _before(split: Path, calls: int = 0) -> tuple[pa.Table, str, pa.Table, int]:
    conv = ConverterBefore(split, GeneIndex.from_bed(), "f" * 64, calls_per_batch=calls)
    table = as_table_before(list(conv.batches()))
    return table, conv.content_digest, conv.apoe.table("f" * 64), conv.rows


@pytest.mark.parametrize("name", sorted(INPUTS))
@pytest.mark.parametrize("calls", [0, 1, 7])
def test_fast_converter_equals_the_converter_before(
    tmp_path: Path, name: str, calls: int
) -> None:
    split = normalise(INPUTS[name](tmp_path), tmp_path / "split.bcf")
    table, digest, apoe, rows = _before(split, calls)
    conv = VariantConverter(split, GeneIndex.from_bed(), "f" * 64, calls_per_batch=calls)
    fast = as_table(list(conv.batches()))
    assert fast.equals(table)
    assert conv.content_digest == digest  # the load key is unchanged
    assert conv.apoe.table("f" * 64).equals(apoe) and conv.rows == rows
    if name == "hostile":
        assert conv.apoe.complete and rows > len(RECORDS)  # split records and APOE typed


@pytest.mark.parametrize("name", ["hail_split", "hostile"])
def test_streamed_pipeline_writes_what_the_file_path_wrote(tmp_path: Path, name: str) -> None:
    src = INPUTS[name](tmp_path)
    table, digest, apoe, rows = _before(normalise(src, tmp_path / "split.bcf"))
    store = FolderStore(tmp_path / "bucket")
    got_rows, samples, got_digest = convert_file(
        src, store, staged_id="f" * 64, genes=GeneIndex.from_bed())
    assert (got_rows, got_digest) == (rows, digest)
    assert samples == len(table.column("call")[0])
    keys = staged_keys("f" * 64)
    with store.open_read(keys["variants"]) as f:
        written = pq.read_table(f)
    assert written.cast(table.schema).equals(table)
    with store.open_read(keys["apoe"]) as f:
        assert pq.read_table(f).equals(apoe)
    meta = pq.ParquetFile(tmp_path / "bucket" / keys["variants"]).metadata
    column = [meta.row_group(0).column(i) for i in range(meta.num_columns)]
    stats = {c.path_in_schema: c.is_stats_set for c in column}
    assert stats["start_position"] and not stats["call.list.element.DP"]


def _children() -> set[int]:
    """This process's live children (zombies, dead but not yet reaped, do not count, nor
    multiprocessing's resource tracker, started once per interpreter on first use)."""
    me = os.getpid()
    found: set[int] = set()
    for task in os.listdir(f"/proc/{me}/task"):
        try:
            with open(f"/proc/{me}/task/{task}/children") as f:
                pids = f.read().split()
        except FileNotFoundError:  # a thread that ended meanwhile had no children to list
            continue
        for pid in pids:
            with contextlib.suppress(OSError):
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                tracker = b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
                if state != "Z" and not tracker:
                    found.add(int(pid))
    return found


def test_a_reader_that_stops_early_leaves_no_bcftools_behind(tmp_path: Path) -> None:
    before = _children()
    with split_stream(FIXTURES / "hail_split_test.vcf") as split:
        conv = VariantConverter(split.take_fd(), GeneIndex.from_bed(), "f" * 64)
        assert _children() - before  # bcftools runs in a child
        next(conv.pending())
        conv.close()
    assert not _children() - before


def test_bcftools_failing_mid_stream_is_bad_input_and_nothing_is_committed(
    tmp_path: Path
) -> None:
    # Valid text up to the last record, whose DP bcftools cannot parse: the stream ends
    # after the good records and the failure must still surface (and commit nothing).
    records = [*RECORDS[:2] * 50, RECORDS[0].replace(":10:20:", ":ten:20:")]
    src = _hostile(tmp_path, records)
    store = FolderStore(tmp_path / "bucket")
    with pytest.raises(VcfInputError, match="bcftools norm -m -any failed"):
        convert_file(src, store, staged_id="f" * 64, genes=GeneIndex.from_bed())
    assert not store.list("staging/")


def test_the_validation_error_wins_over_bcftools(tmp_path: Path) -> None:
    text = _hostile(tmp_path).read_text().replace("\t43044400\t", "\tforty\t")
    src = tmp_path / "bad.vcf.gz"
    src.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(VcfInputError, match=r"bad.vcf.gz:\d+: POS 'forty'"):
        convert_file(src, FolderStore(tmp_path / "bucket"), staged_id="f" * 64,
                     genes=GeneIndex.from_bed(), name=str(src))


def test_a_failing_writer_stops_the_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pipeline.pq, "ParquetWriter", broken)
    before = _children()
    with pytest.raises(OSError, match="disk full"):
        convert_file(_hostile(tmp_path), FolderStore(tmp_path / "bucket"),
                     staged_id="f" * 64, genes=GeneIndex.from_bed())
    deadline = time.monotonic() + 10  # killed children may take a moment to go
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _children() - before
