"""Bad input: a UserError naming file and line, the file quarantined with a JSON reason,
nothing of it staged or loaded, and the other shards unaffected."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pysam
import pytest

from workloads.batch.local import run_local
from workloads.contracts.batch import TaskRequest
from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PROCESSED_VARIANTS, VCF_LOADS
from workloads.local_node import LocalNode
from workloads.objectstore.folder import FolderStore
from workloads.vcf.pipeline import ShardResult, process_shard
from workloads.vcf.synth import PatientGenotypes, write_synthetic_vcf
from workloads.vcf.validate import validate_vcf

Edit = Callable[[list[str]], list[str]]


def _first_record(lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines) if not line.startswith("#"))


def _edit_record(change: Callable[[list[str]], list[str]]) -> Edit:
    def edit(lines: list[str]) -> list[str]:
        i = _first_record(lines) + 2
        lines[i] = "\t".join(change(lines[i].split("\t")))
        return lines
    return edit


def _replace_field(index: int, value: str) -> Edit:
    return _edit_record(lambda cols: [*cols[:index], value, *cols[index + 1:]])


# (name, edit of the text lines, expected reason, expected line: record 3 or the header)
TEXT_CASES: list[tuple[str, Edit, str, str]] = [
    ("missing_header", lambda ls: ls[_first_record(ls):], "missing VCF header", "1"),
    ("wrong_columns", _edit_record(lambda cols: cols[:-1]), "wrong column count", "record"),
    ("non_numeric_pos", _replace_field(1, "12x4"), "POS", "record"),
    ("undefined_info", _edit_record(
        lambda cols: [*cols[:7], cols[7] + ";NOPE=1", *cols[8:]]), "INFO tag 'NOPE'", "record"),
    ("undefined_format", _edit_record(
        lambda cols: [*cols[:8], cols[8] + ":ZZ", *cols[9:]]), "FORMAT tag 'ZZ'", "record"),
    ("unknown_sample", lambda ls: [
        line.replace("\tUS-0003", "\tEU-9999") if line.startswith("#CHROM") else line
        for line in ls], "not patients of this node: EU-9999", "chrom"),
]


@pytest.fixture
def good(node: LocalNode) -> tuple[Path, list[str]]:
    with node.open_warehouse() as wh:
        patients = PatientGenotypes.from_warehouse(wh)
    [path] = write_synthetic_vcf(patients, node.bucket / "vcf", records=60, seed=1,
                                 progress=False)
    return path, patients.ids


def _write_text(lines: list[str], dest: Path) -> None:
    plain = dest.with_suffix("")
    plain.write_text("\n".join(lines) + "\n")
    pysam.tabix_compress(str(plain), str(dest), force=True)
    plain.unlink()


def _assert_quarantined(node: LocalNode, key: str, reason: str, line: int) -> None:
    store = FolderStore(node.bucket)
    assert not store.exists(key) and store.exists(f"quarantine/{key}")
    record = json.loads(store.read_bytes(f"quarantine/{key}.reason.json"))
    assert set(record) >= {"file", "line", "reason", "time"}
    assert record["file"].endswith(key) and record["line"] == line
    assert reason in record["reason"]
    assert not store.list("staging/")  # nothing of it reaches staging


@pytest.mark.parametrize(("name", "edit", "reason", "where"), TEXT_CASES,
                         ids=[c[0] for c in TEXT_CASES])
def test_bad_text_is_quarantined_with_file_and_line(
    node: LocalNode, good: tuple[Path, list[str]], name: str, edit: Edit, reason: str,
    where: str,
) -> None:
    path, patients = good
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    bad = edit(list(lines))
    key = f"vcf/{name}.vcf.gz"
    _write_text(bad, node.bucket / key)
    if where == "chrom":
        line = next(i for i, x in enumerate(bad, 1) if x.startswith("#CHROM"))
    else:
        line = 1 if where == "1" else _first_record(lines) + 3
    with pytest.raises(UserError, match=f"{name}.vcf.gz:{line}: .*fix: "):
        validate_vcf(node.bucket / key, known_samples=set(patients))
    store = FolderStore(node.bucket)
    result = process_shard(store, key, store, known_samples=set(patients))
    assert result.status == "quarantined" and f":{line}: " in result.reason
    _assert_quarantined(node, key, reason, line)


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "cut_at_block"])
def test_damaged_bgzip_is_quarantined(
    node: LocalNode, good: tuple[Path, list[str]], damage: str
) -> None:
    path, patients = good
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "cut_at_block":  # whole blocks only: just the bgzip EOF block is gone
        data = data[:-28]
    else:
        for i in range(len(data) // 2, len(data) // 2 + 64):
            data[i] ^= 0xFF
    key = f"vcf/{damage}.vcf.gz"
    (node.bucket / key).write_bytes(bytes(data))
    store = FolderStore(node.bucket)
    result = process_shard(store, key, store, known_samples=set(patients))
    assert result.status == "quarantined"
    assert "truncated" in result.reason and f"{damage}.vcf.gz:" in result.reason
    record = json.loads(store.read_bytes(f"quarantine/{key}.reason.json"))
    assert record["line"] >= 1  # the first line not read whole (htslib reads by block)
    _assert_quarantined(node, key, "truncated", record["line"])


def test_other_shards_are_unaffected_in_a_local_run(
    node: LocalNode, good: tuple[Path, list[str]]
) -> None:
    path, _ = good
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    _write_text(_replace_field(1, "oops")(list(lines)), node.bucket / "vcf" / "bad.vcf.gz")
    shards = ["vcf/bad.vcf.gz", f"vcf/{path.name}"]
    run = run_local(node, TaskRequest("vcf", tuple(shards)), workers=2, progress=False)
    assert [s.status for s in run.results] == ["quarantined", "staged"]
    staged = run.results[1]
    assert isinstance(staged, ShardResult)
    with node.open_warehouse() as wh:
        loaded = wh.query(f"SELECT fingerprint FROM {wh.table_ref(VCF_LOADS)}")
        assert loaded.column("fingerprint").to_pylist() == [staged.fingerprint]
        sources = wh.query(
            f"SELECT DISTINCT source_fingerprint AS f FROM {wh.table_ref(PROCESSED_VARIANTS)}")
        assert sources.column("f").to_pylist() == [staged.fingerprint]
    assert FolderStore(node.bucket).exists("quarantine/vcf/bad.vcf.gz.reason.json")


def test_values_bcftools_cannot_parse_are_quarantined(
    node: LocalNode, good: tuple[Path, list[str]]
) -> None:
    path, patients = good
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    # A non-integer DP passes the structural checks; bcftools itself refuses it.
    bad = _edit_record(lambda cols: [*cols[:9], "0/1:abc:1,2:0,0,0", *cols[10:]])(list(lines))
    key = "vcf/bad_value.vcf.gz"
    _write_text(bad, node.bucket / key)
    store = FolderStore(node.bucket)
    result = process_shard(store, key, store, known_samples=set(patients))
    assert result.status == "quarantined" and "bcftools norm -m -any failed" in result.reason
    _assert_quarantined(node, key, "VCF parse error", 0)
