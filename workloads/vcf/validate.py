"""Explicit checks of a raw VCF before bcftools sees it.

bcftools is lenient (an undefined INFO/FORMAT tag is only a warning; some malformed
lines are skipped), so one streaming pass over the text checks what the pipeline relies
on and names the file and line of the first problem. The pass reads only the fixed
columns of each line (str.split with a limit) and counts tabs in C, so it costs about
one decompression of the file.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import pysam

from workloads.contracts.errors import UserError

FIXED = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")


class VcfInputError(UserError):
    """A raw VCF the pipeline refuses; `line` is 1-based in the decompressed text (0 = file)."""

    def __init__(self, file: str, line: int, reason: str, fix: str) -> None:
        self.file, self.line, self.reason, self.fix = file, line, reason, fix
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {reason}; fix: {fix}")

    def __reduce__(self) -> tuple[type[VcfInputError], tuple[str, int, str, str]]:
        # Validation runs in a child process: the error must cross back whole.
        return (VcfInputError, (self.file, self.line, self.reason, self.fix))


@dataclass(frozen=True)
class VcfSummary:
    samples: list[str]
    records: int
    info_ids: frozenset[str]
    format_ids: frozenset[str]


# The empty block bgzip writes last: without it the file was cut short.
BGZF_EOF = bytes.fromhex(
    "1f8b08040000000000ff0600424302001b0003000000000000000000")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _has_bgzf_eof(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < len(BGZF_EOF):
            return False
        f.seek(-len(BGZF_EOF), os.SEEK_END)
        return f.read() == BGZF_EOF


def _is_bgzf(path: Path) -> bool:
    """gzip with the BGZF extra field ('BC') in its first member's header."""
    with open(path, "rb") as f:
        head = f.read(16)
    return len(head) >= 14 and head[3] & 4 == 4 and head[12:14] == b"BC"


def _lines(path: Path) -> Iterator[bytes]:
    """Decompressed lines; htslib (libdeflate) inflates BGZF about twice as fast as gzip.

    A damaged or cut stream raises OSError/EOFError after the last whole line, so the
    caller names the first line that could not be read."""
    if not _is_gzip(path):
        with open(path, "rb") as f:
            yield from f
        return
    if not _is_bgzf(path):  # plain gzip: Python's reader says where it ended
        with gzip.open(path, "rb") as f:
            yield from f
        return
    # A damaged block ends the iteration early; htslib reports it when the file closes.
    # Its own messages on stderr are silenced: our error names the file and line instead.
    quiet = pysam.set_verbosity(0)
    try:
        with pysam.BGZFile(str(path), "rb", index=None) as f:
            yield from f
    finally:
        pysam.set_verbosity(quiet)


def _ids(line: str) -> str:
    start = line.index("ID=") + 3
    end = min(i for i in (line.find(",", start), line.find(">", start), len(line)) if i >= 0)
    return line[start:end]


def validate_vcf(
    path: Path, *, known_samples: Collection[str] | None = None, name: str | None = None
) -> VcfSummary:
    """Check header, columns, POS, INFO/FORMAT tags and sample names; raise VcfInputError."""
    label = name or str(path)
    info_ids: set[str] = set()
    format_ids: set[str] = set()
    samples: list[str] | None = None
    n_tabs = 0
    records = 0
    number = 0
    try:
        for number, raw in enumerate(_lines(Path(path)), start=1):
            if samples is None:
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                if number == 1 and not text.startswith("##fileformat=VCF"):
                    raise VcfInputError(
                        label, 1, "missing VCF header (no ##fileformat line)",
                        "write the VCF header (##fileformat, ##INFO/##FORMAT/##contig, "
                        "#CHROM) before the records",
                    )
                if text.startswith("##INFO=<"):
                    info_ids.add(_ids(text))
                elif text.startswith("##FORMAT=<"):
                    format_ids.add(_ids(text))
                elif text.startswith("#CHROM"):
                    cols = text.split("\t")
                    if tuple(cols[:8]) != FIXED:
                        raise VcfInputError(label, number, "malformed #CHROM line",
                                            "use the 8 tab-separated VCF fixed columns")
                    samples = cols[9:]
                    n_tabs = len(cols) - 1
                    _check_samples(label, number, samples, known_samples)
                elif not text.startswith("##"):
                    raise VcfInputError(label, number, "record before the #CHROM header line",
                                        "write the #CHROM line before the records")
                continue
            records += 1
            _check_record(label, number, raw, n_tabs, len(samples), info_ids, format_ids)
    except (OSError, EOFError, zlib.error) as exc:
        kind = "bgzip" if _is_bgzf(Path(path)) else "gzip"
        raise VcfInputError(
            label, number + 1, f"truncated or corrupt {kind} data ({exc})",
            f"re-upload the complete file (check it with `{'bgzip' if kind == 'bgzip' else 'gzip'}"
            f" -t`)",
        ) from exc
    if _is_bgzf(Path(path)) and not _has_bgzf_eof(Path(path)):
        raise VcfInputError(
            label, number + 1, "truncated or not BGZF: the bgzip end-of-file block is missing",
            "re-upload the complete file, compressed with bgzip (check it with `bgzip -t`)",
        )
    if samples is None:
        raise VcfInputError(label, number, "no #CHROM header line",
                            "write the VCF header before the records")
    return VcfSummary(samples, records, frozenset(info_ids), frozenset(format_ids))


def _check_samples(
    label: str, number: int, samples: list[str], known: Collection[str] | None
) -> None:
    if len(set(samples)) != len(samples):
        raise VcfInputError(label, number, "duplicate sample names", "make sample names unique")
    if known is None:
        return
    unknown = [s for s in samples if s not in known]
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise VcfInputError(
            label, number, f"{len(unknown)} sample(s) are not patients of this node: {shown}",
            "name samples by the node's patient ids (patient_genomic_data.patient_id)",
        )


def _check_record(
    label: str,
    number: int,
    raw: bytes,
    n_tabs: int,
    n_samples: int,
    info_ids: set[str],
    format_ids: set[str],
) -> None:
    found = raw.count(b"\t")
    if found != n_tabs:
        raise VcfInputError(
            label, number, f"wrong column count: {found + 1} columns, the header has {n_tabs + 1}",
            "give every record the header's columns (8 fixed, FORMAT and one per sample)",
        )
    parts = raw.split(b"\t", 9)
    if not parts[1].isdigit() or int(parts[1]) == 0:
        pos = parts[1][:20].decode("utf-8", "replace")
        raise VcfInputError(label, number, f"POS {pos!r} is not a positive integer",
                            "write POS as a 1-based integer (the first base is 1)")
    info = parts[7].rstrip(b"\r\n")
    if info != b".":
        for item in info.split(b";"):
            tag = item.split(b"=", 1)[0].decode("utf-8", "replace")
            if tag not in info_ids:
                raise VcfInputError(label, number, f"INFO tag {tag!r} is not defined in the header",
                                    f"add a ##INFO=<ID={tag},...> line or drop the tag")
    if n_samples:
        for tag_b in parts[8].split(b":"):
            tag = tag_b.decode("utf-8", "replace")
            if tag not in format_ids:
                raise VcfInputError(
                    label, number, f"FORMAT tag {tag!r} is not defined in the header",
                    f"add a ##FORMAT=<ID={tag},...> line or drop the tag",
                )
