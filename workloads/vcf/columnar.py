"""Normalised VCF/BCF -> Arrow record batches in the processed_variants schema.

cyvcf2 (htslib) reads the records; genotypes and numeric FORMAT fields come out as numpy
arrays per record and the per-call columns are assembled from numpy offsets into Arrow
list/struct arrays a batch of records at a time, so no Python object is made per call
and memory stays flat however long the file is. Per record only the site fields and
the INFO JSON are built in Python.

Reading (`pending`, holds the GIL: htslib calls per record) and building (`build`:
numpy, Arrow and the content digest, which mostly release it) are separate steps, so a
caller can build and write one batch on another thread while the next is read.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cyvcf2
import numpy as np
import pyarrow as pa

from workloads.contracts.tables.genomics import PROCESSED_VARIANTS
from workloads.vcf.annotate import ApoeCollector
from workloads.vcf.reference import APOE_SNPS, GeneIndex

INT32_MISSING = np.iinfo(np.int32).min  # htslib bcf_int32_missing
INT32_END = INT32_MISSING + 1  # htslib bcf_int32_vector_end
GT_END = -2  # cyvcf2 genotype.array(): -1 no-call, -2 vector end (lower ploidy)
TYPED_SCALARS = ("DP", "GQ")
TYPED_LISTS = ("AD", "PL")
_DICT = pa.dictionary(pa.int32(), pa.string())
_DICT_CALL_FIELDS = ("name", "phaseset")
CALLS_PER_BATCH = 1_000_000  # ~40-80 MB of Arrow per batch
MAX_RECORDS_PER_BATCH = 5_000  # bounds a batch's site columns when there are few samples


SITE_COLUMNS = ("reference_name", "start_position", "end_position", "reference_bases",
                "alternate_bases", "names", "quality", "filter", "info", "gene")


@dataclass
class Pending:
    """The records read for the next batch, as htslib gave them (built by `build`)."""

    # Per record: (CHROM, start, end, REF, ALT, ID, QUAL, FILTERS, INFO as JSON).
    sites: list[tuple[Any, ...]] = field(default_factory=list)
    # Raw per-record arrays from htslib, turned into Arrow once per batch.
    gt: list[np.ndarray] = field(default_factory=list)  # (S, ploidy + 1) each
    fmt: dict[str, list[np.ndarray | None]] = field(
        default_factory=lambda: {k: [] for k in (*TYPED_SCALARS, *TYPED_LISTS)})
    other: list[list[str | None] | None] = field(default_factory=list)

    @property
    def records(self) -> int:
        return len(self.sites)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, tuple):
        return [_json_safe(v) for v in value]
    return value


def _stack(arrays: list[np.ndarray | None]) -> np.ndarray | None:
    """The records' (S, k) arrays as one (records * S, k) array, if they share k and exist."""
    present = [a for a in arrays if a is not None]
    if not present or len(present) != len(arrays) or len({a.shape[1] for a in present}) != 1:
        return None
    return np.concatenate(present)


def _scalars(arrays: list[np.ndarray | None], s: int) -> np.ndarray:
    """First value per call; records lacking the field give missing values."""
    stacked = _stack(arrays)
    if stacked is not None:
        return stacked[:, 0]
    return np.concatenate([np.full(s, INT32_MISSING, np.int32) if a is None else a[:, 0]
                           for a in arrays])


def _scalar_array(values: np.ndarray) -> pa.Array:
    missing = values == INT32_MISSING
    wide = values.astype(np.int64)
    return pa.array(wide, mask=missing) if missing.any() else pa.array(wide)


def _ragged(values: np.ndarray, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a padded 2-D array without the padding: flat values and row lengths."""
    if values.min() > end:  # the common case: nothing padded
        return values.ravel(), np.full(len(values), values.shape[1], dtype=np.int64)
    present = values != end
    return values[present], present.sum(axis=1, dtype=np.int64)


def _genotypes(gts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | int, np.ndarray]:
    """Allele indices (-1 = no-call, padding of lower ploidy dropped), lengths, phased."""
    parts = [np.concatenate(gts)] if len({g.shape[1] for g in gts}) == 1 else gts
    if len(parts) == 1 and parts[0][:, :-1].min() > GT_END:  # one ploidy, nothing padded
        g = parts[0]  # widened straight from the strided view: one pass, no copy first
        return g[:, :-1].astype(np.int64).ravel(), g.shape[1] - 1, g[:, -1].astype(bool)
    flats, lengths, phased = [], [], []
    for g in parts:
        flat, length = _ragged(g[:, :-1], GT_END)
        flats.append(flat)
        lengths.append(length)
        phased.append(g[:, -1].astype(bool))
    return np.concatenate(flats), np.concatenate(lengths), np.concatenate(phased)


def _int_lists(
    arrays: list[np.ndarray | None], s: int
) -> tuple[np.ndarray, np.ndarray | int]:
    """Per-call integer vectors; a field missing as a whole -> empty, a missing item -> -1.

    Lengths are one int when every call has the same (the common case: no copy, no mask)."""
    stacked = _stack(arrays)
    if stacked is not None and (not stacked.size or stacked.min() > INT32_END):
        return stacked.ravel(), stacked.shape[1]
    parts = [stacked] if stacked is not None else arrays
    flats, lengths = [], []
    for values in parts:
        if values is None:  # the record has no such field: empty lists
            flats.append(np.zeros(0, np.int32))
            lengths.append(np.zeros(s, np.int64))
            continue
        whole_missing = values[:, 0] == INT32_MISSING  # '.' for the field: an empty list
        rest = np.compress(~whole_missing, values, axis=0) if whole_missing.any() else values
        if not len(rest) or rest.min() > INT32_END:  # the common case: rows are complete
            flats.append(rest.ravel())
            lengths.append(np.where(whole_missing, 0, values.shape[1]).astype(np.int64))
            continue
        values = values.copy()
        values[whole_missing] = INT32_END
        values[values == INT32_MISSING] = -1
        flat, length = _ragged(values, INT32_END)
        flats.append(flat)
        lengths.append(length)
    return np.concatenate(flats), np.concatenate(lengths)


def _list_array(flat: np.ndarray, lengths: np.ndarray | int) -> pa.Array:
    if isinstance(lengths, int):
        n = len(flat) // lengths if lengths else 0
        offsets = pa.array(np.arange(n + 1, dtype=np.int32) * lengths)
    else:
        offsets = _offsets(lengths)
    return pa.ListArray.from_arrays(offsets, pa.array(flat.astype(np.int64, copy=False)))


class VariantConverter:
    """Stream a normalised (split) VCF/BCF into processed_variants record batches.

    `source` is a path or a readable file descriptor (a pipe from `bcftools norm`),
    which the converter then owns."""

    def __init__(
        self, source: Path | int, genes: GeneIndex, fingerprint: str, *,
        calls_per_batch: int = 0,
    ) -> None:
        self.vcf = cyvcf2.VCF(source if isinstance(source, int) else str(source),
                              gts012=False, strict_gt=False)
        self.samples: list[str] = list(self.vcf.samples)
        self.genes = genes
        self.fingerprint = fingerprint
        self.apoe = ApoeCollector(self.samples)
        self._apoe_positions = frozenset(snp.pos for snp in APOE_SNPS)
        self.table_schema = PROCESSED_VARIANTS.arrow_schema()
        # The batches carry the per-call strings (sample name, phaseset) dictionary-encoded:
        # the same values as the table's STRING columns, written as Parquet dictionary
        # pages without hashing ~100M strings (write with store_schema=False and readers
        # see plain strings). `as_table` turns a batch into the table schema proper.
        self._call_type = pa.struct([
            pa.field(f.name, _DICT, f.nullable) if f.name in _DICT_CALL_FIELDS else f
            for f in self.table_schema.field("call").type.value_type
        ])
        self.schema = pa.schema([
            pa.field("call", pa.list_(self._call_type)) if f.name == "call" else f
            for f in self.table_schema
        ])
        n = max(1, len(self.samples))
        self.records_per_batch = min(
            MAX_RECORDS_PER_BATCH, max(1, (calls_per_batch or CALLS_PER_BATCH) // n))
        self._names = pa.array(self.samples, pa.string())
        self._name_indices: dict[int, pa.Array] = {}  # by records in a batch
        self._phased_dictionary = pa.array(["*"])
        types = {h.info()["ID"]: h.info() for h in self.vcf.header_iter()
                 if h.info().get("HeaderType") == "FORMAT"}
        # Typed call fields only when the header declares them as the schema expects.
        self._typed = {k for k in (*TYPED_SCALARS, *TYPED_LISTS)
                       if types.get(k, {}).get("Type") == "Integer"}
        self._skip_other = {"GT", *self._typed}
        self.rows = 0
        # The load key: a digest of the normalised records as they are stored (site
        # fields, INFO, genotypes, FORMAT values, sample names), not of the file's bytes,
        # so the same records bgzipped, plain or recompressed are one load. `build` feeds
        # it record by record, in file order.
        self._digest = hashlib.sha256(b"processed_variants records v1\0")
        self._digest.update("\t".join(self.samples).encode() + b"\n")

    @property
    def content_digest(self) -> str:
        """sha256 of the records built so far (all of them once `batches` is exhausted)."""
        return self._digest.hexdigest()

    def _hash(self, array: np.ndarray | None) -> None:
        if array is None:
            self._digest.update(b"-")
            return
        self._digest.update(repr((array.dtype.str, array.shape)).encode())
        self._digest.update(np.ascontiguousarray(array).data.cast("B"))

    def batches(self) -> Iterator[pa.RecordBatch]:
        return map(self.build, self.pending())

    def close(self) -> None:
        self.vcf.close()

    def pending(self) -> Iterator[Pending]:
        """The records read from htslib, a batch at a time; each goes through `build`,
        in order (the content digest follows the file's order)."""
        pending = Pending()
        try:
            for record in self.vcf:
                self._add(pending, record)
                if pending.records >= self.records_per_batch:
                    yield pending
                    pending = Pending()
            if pending.records:
                yield pending
        finally:
            self.vcf.close()

    def _add(self, p: Pending, r: Any) -> None:
        alts = r.ALT
        p.sites.append((r.CHROM, r.start, r.end, r.REF, alts, r.ID, r.QUAL, r.FILTERS,
                        json.dumps({k: _json_safe(v) for k, v in r.INFO})))
        if not self.samples:
            return
        gt = r.genotype.array()  # (S, ploidy + 1): alleles then the phased flag
        p.gt.append(gt)
        if r.POS in self._apoe_positions:
            self.apoe.offer(r.CHROM, r.POS, r.REF, alts, gt[:, :-1], gt[:, -1].astype(bool))
        fmt = r.FORMAT
        for key, values in p.fmt.items():
            values.append(r.format(key) if key in self._typed and key in fmt else None)
        others = [k for k in fmt if k not in self._skip_other]
        p.other.append(self._other_format(r, others) if others else None)

    def _other_format(self, r: Any, keys: list[str]) -> list[str | None]:
        """FORMAT fields outside the typed columns, one JSON object per sample (rare)."""
        per_sample: list[dict[str, Any]] = [{} for _ in self.samples]
        for key in keys:
            values = r.format(key)
            if values is None:
                continue
            for i, row in enumerate(values):
                if values.dtype.kind in "SU":
                    text = row.decode() if isinstance(row, bytes) else str(row)
                    per_sample[i][key] = None if text in (".", "") else text
                elif values.dtype.kind == "f":
                    raw = row.astype(np.float32).view(np.int32)
                    keep = raw != 0x7F800002  # htslib float vector end
                    items = [None if (b == 0x7F800001 or math.isnan(v)) else float(v)
                             for v, b in zip(row[keep].tolist(), raw[keep].tolist(), strict=True)]
                    per_sample[i][key] = items[0] if len(items) == 1 else items
                else:
                    items = [None if v == INT32_MISSING else int(v)
                             for v in row.tolist() if v != INT32_END]
                    per_sample[i][key] = items[0] if len(items) == 1 else items
        return [json.dumps(d) if d else None for d in per_sample]

    def _digest_records(self, p: Pending) -> None:
        """Feed the batch's records to the content digest, each as read (v1 byte layout)."""
        update = self._digest.update
        for i, site in enumerate(p.sites):
            update(repr(site).encode())
            if not self.samples:
                continue
            self._hash(p.gt[i])
            for values in p.fmt.values():
                self._hash(values[i])
            update(json.dumps(p.other[i]).encode())

    def build(self, p: Pending) -> pa.RecordBatch:
        """One batch of records as Arrow columns (and into the content digest)."""
        self._digest_records(p)
        n_rec, s = p.records, len(self.samples)
        chrom, start, end, ref, alts, ids, qual, filters, info = zip(*p.sites, strict=True)
        site: dict[str, list[Any] | tuple[Any, ...]] = {
            "reference_name": chrom, "start_position": start, "end_position": end,
            "reference_bases": ref, "alternate_bases": [a[0] if a else None for a in alts],
            "names": [i.split(";") if i else [] for i in ids], "quality": qual,
            "filter": [f or [] for f in filters], "info": info,
            "gene": [self.genes.gene_at(*where) for where in zip(chrom, start, end,
                                                                 strict=True)],
        }
        columns: dict[str, pa.Array] = {
            name: pa.array(site[name], self.schema.field(name).type) for name in SITE_COLUMNS
        }
        n_calls = n_rec * s
        if s:
            flat, lengths, phased = _genotypes(p.gt)
            phaseset = pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n_calls, np.int32), mask=~phased), self._phased_dictionary)
            if n_rec not in self._name_indices:
                self._name_indices[n_rec] = pa.array(np.tile(np.arange(s, dtype=np.int32),
                                                             n_rec))
            fields: dict[str, pa.Array] = {
                "name": pa.DictionaryArray.from_arrays(self._name_indices[n_rec], self._names),
                "genotype": _list_array(flat, lengths),
                "phaseset": phaseset,
            }
            for key in TYPED_SCALARS:
                fields[key] = _scalar_array(_scalars(p.fmt[key], s))
            for key in TYPED_LISTS:
                fields[key] = _list_array(*_int_lists(p.fmt[key], s))
            if any(o is not None for o in p.other):
                texts: list[str | None] = []
                for o in p.other:
                    texts.extend(o if o is not None else [None] * s)
                fields["other_format"] = pa.array(texts, pa.string())
            else:
                fields["other_format"] = pa.nulls(n_calls, pa.string())
            calls = pa.StructArray.from_arrays(
                [fields[f.name].cast(f.type) for f in self._call_type],
                fields=list(self._call_type),
            )
        else:
            calls = pa.array([], self._call_type)
        columns["call"] = pa.ListArray.from_arrays(
            pa.array(np.arange(n_rec + 1, dtype=np.int32) * s), calls)
        columns["source_fingerprint"] = pa.array([self.fingerprint] * n_rec, pa.string())
        self.rows += n_rec
        return pa.RecordBatch.from_arrays(
            [columns[f.name] for f in self.schema], schema=self.schema)


def _offsets(lengths: np.ndarray) -> pa.Array:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.array(offsets)


def as_table(batches: list[pa.RecordBatch]) -> pa.Table:
    """Converter batches as a table in the processed_variants schema (plain strings)."""
    return pa.Table.from_batches(batches).cast(PROCESSED_VARIANTS.arrow_schema())
