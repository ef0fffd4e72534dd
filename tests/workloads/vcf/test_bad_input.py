"""Bad input: a UserError naming file and line, a copy quarantined in the node's bucket with
a JSON reason, the user's file untouched, nothing of it staged or loaded, and the other
shards unaffected."""

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
from workloads.vcf.pipeline import ShardResult, process_shard, quarantine_key
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
    ("word_pos", _replace_field(1, "forty"), "POS 'forty' is not", "record"),  # not b'forty'
    ("zero_pos", _replace_field(1, "0"), "POS '0' is not a positive integer", "record"),
    ("undefined_info", _edit_record(
        lambda cols: [*cols[:7], cols[7] + ";NOPE=1", *cols[8:]]), "INFO tag 'NOPE'", "record"),
    ("undefined_format", _edit_record(
        lambda cols: [*cols[:8], cols[8] + ":ZZ", *cols[9:]]), "FORMAT tag 'ZZ'", "record"),
    ("unknown_sample", lambda ls: [
        line.replace("\tUS-0003", "\tEU-9999") if line.startswith("#CHROM") else line
        for line in ls], "not patients of this node: EU-9999", "chrom"),
]


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    """A user's own folder of VCFs (outside the node)."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    return folder


@pytest.fixture
def good(node: LocalNode, incoming: Path) -> tuple[Path, list[str]]:
    with node.open_warehouse() as wh:
        patients = PatientGenotypes.from_warehouse(wh)
    [path] = write_synthetic_vcf(patients, incoming / "good", records=60, seed=1,
                                 progress=False)
    return path, patients.ids


def _stat(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def _process_user_file(node: LocalNode, path: Path, patients: list[str]) -> ShardResult:
    """process_shard over a user's file; asserts the file's bytes and mtime are unchanged."""
    before = _stat(path)
    result = process_shard(FolderStore(path.parent), path.name, node.store(),
                           known_samples=set(patients))
    assert path.exists() and _stat(path) == before
    return result


def _write_text(lines: list[str], dest: Path) -> None:
    plain = dest.with_suffix("")
    plain.write_text("\n".join(lines) + "\n")
    pysam.tabix_compress(str(plain), str(dest), force=True)
    plain.unlink()


def _assert_quarantined(
    node: LocalNode, path: Path, result: ShardResult, reason: str, line: int
) -> None:
    store = node.store()
    copy = quarantine_key(result.staged_id, path.name)
    assert store.read_bytes(copy) == path.read_bytes()  # the copy, encrypted at rest
    assert (node.bucket / copy).read_bytes() != path.read_bytes()
    record = json.loads(store.read_bytes(f"{copy}.reason.json"))
    assert set(record) >= {"file", "line", "reason", "time", "copy"}
    assert record["file"] == str(path) and record["line"] == line
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
    user_file = path.parent.parent / f"{name}.vcf.gz"
    _write_text(bad, user_file)
    if where == "chrom":
        line = next(i for i, x in enumerate(bad, 1) if x.startswith("#CHROM"))
    else:
        line = 1 if where == "1" else _first_record(lines) + 3
    with pytest.raises(UserError, match=f"{name}.vcf.gz:{line}: .*fix: "):
        validate_vcf(user_file, known_samples=set(patients))
    result = _process_user_file(node, user_file, patients)
    assert result.status == "quarantined" and f":{line}: " in result.reason
    _assert_quarantined(node, user_file, result, reason, line)


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
    user_file = path.parent.parent / f"{damage}.vcf.gz"
    user_file.write_bytes(bytes(data))
    result = _process_user_file(node, user_file, patients)
    assert result.status == "quarantined"
    assert "truncated" in result.reason and f"{damage}.vcf.gz:" in result.reason
    copy = quarantine_key(result.staged_id, user_file.name)
    record = json.loads(node.store().read_bytes(f"{copy}.reason.json"))
    assert record["line"] >= 1  # the first line not read whole (htslib reads by block)
    _assert_quarantined(node, user_file, result, "truncated", record["line"])


def test_other_shards_are_unaffected_in_a_local_run(
    node: LocalNode, good: tuple[Path, list[str]]
) -> None:
    path, _ = good
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    bad = path.parent / "bad.vcf.gz"
    _write_text(_replace_field(1, "oops")(list(lines)), bad)
    store = node.store()
    store.upload(bad, "vcf/bad.vcf.gz")
    store.upload(path, f"vcf/{path.name}")
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
    copy = quarantine_key(run.results[0].staged_id, "bad.vcf.gz")  # type: ignore[attr-defined]
    assert store.exists(f"{copy}.reason.json") and store.exists("vcf/bad.vcf.gz")


def test_values_bcftools_cannot_parse_are_quarantined(
    node: LocalNode, good: tuple[Path, list[str]]
) -> None:
    path, patients = good
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    # A non-integer DP passes the structural checks; bcftools itself refuses it.
    bad = _edit_record(lambda cols: [*cols[:9], "0/1:abc:1,2:0,0,0", *cols[10:]])(list(lines))
    user_file = path.parent.parent / "bad_value.vcf.gz"
    _write_text(bad, user_file)
    result = _process_user_file(node, user_file, patients)
    assert result.status == "quarantined" and "bcftools norm -m -any failed" in result.reason
    _assert_quarantined(node, user_file, result, "VCF parse error", 0)
