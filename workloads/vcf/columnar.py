"""Normalised VCF/BCF -> Arrow record batches in the processed_variants schema.

cyvcf2 (htslib) reads the records; genotypes and numeric FORMAT fields come out as numpy
arrays per record and the per-call columns are assembled from numpy offsets into Arrow
list/struct arrays a batch of records at a time, so no Python object is made per call
and memory stays flat however long the file is. Per record only the site fields and
the INFO JSON are built in Python.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cyvcf2  # type: ignore[import-untyped]
import numpy as np
import pyarrow as pa

from workloads.tables import PROCESSED_VARIANTS
from workloads.vcf.annotate import ApoeCollector
from workloads.vcf.reference import GeneIndex

INT32_MISSING = np.iinfo(np.int32).min  # htslib bcf_int32_missing
INT32_END = INT32_MISSING + 1  # htslib bcf_int32_vector_end
GT_END = -2  # cyvcf2 genotype.array(): -1 no-call, -2 vector end (lower ploidy)
TYPED_SCALARS = ("DP", "GQ")
TYPED_LISTS = ("AD", "PL")
_DICT = pa.dictionary(pa.int32(), pa.string())
_DICT_CALL_FIELDS = ("name", "phaseset")
CALLS_PER_BATCH = 1_000_000  # ~40-80 MB of Arrow per batch
MAX_RECORDS_PER_BATCH = 5_000  # bounds a batch's site columns when there are few samples


@dataclass
class _Pending:
    """Columns of the records gathered for the next batch."""

    site: dict[str, list[Any]] = field(default_factory=lambda: {
        "reference_name": [], "start_position": [], "end_position": [],
        "reference_bases": [], "alternate_bases": [], "names": [], "quality": [],
        "filter": [], "info": [], "gene": [],
    })
    gt_values: list[np.ndarray] = field(default_factory=list)
    gt_lengths: list[np.ndarray] = field(default_factory=list)
    phased: list[np.ndarray] = field(default_factory=list)
    scalars: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {k: [] for k in TYPED_SCALARS})
    lists: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = field(
        default_factory=lambda: {k: ([], []) for k in TYPED_LISTS})
    other: list[list[str | None] | None] = field(default_factory=list)

    @property
    def records(self) -> int:
        return len(self.site["start_position"])


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, tuple):
        return [_json_safe(v) for v in value]
    return value


def _int_list(values: np.ndarray, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample integer vectors without htslib's padding; missing elements -> -1."""
    if values.min() > INT32_END:  # the common case: every value present, nothing padded
        return values.ravel(), np.full(n_samples, values.shape[1], dtype=np.int64)
    present = values != INT32_END
    present[values[:, 0] == INT32_MISSING] = False  # '.' for the whole field: an empty list
    values[values == INT32_MISSING] = -1
    return values[present], np.count_nonzero(present, axis=1)


class VariantConverter:
    """Stream a normalised (split) VCF/BCF into processed_variants record batches."""

    def __init__(
        self, path: Path, genes: GeneIndex, fingerprint: str, *, calls_per_batch: int = 0
    ) -> None:
        self.vcf = cyvcf2.VCF(str(path), gts012=False, strict_gt=False)
        self.samples: list[str] = list(self.vcf.samples)
        self.genes = genes
        self.fingerprint = fingerprint
        self.apoe = ApoeCollector(self.samples)
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
        self._phased_dictionary = pa.array(["*"])
        types = {h.info()["ID"]: h.info() for h in self.vcf.header_iter()
                 if h.info().get("HeaderType") == "FORMAT"}
        # Typed call fields only when the header declares them as the schema expects.
        self._typed = {k for k in (*TYPED_SCALARS, *TYPED_LISTS)
                       if types.get(k, {}).get("Type") == "Integer"}
        self._skip_other = {"GT", *self._typed}
        # Shared stand-ins for a FORMAT field a record lacks (read-only, never mutated).
        self._no_scalar = np.full(n, INT32_MISSING, np.int32)
        self._no_list = (np.zeros(0, np.int64), np.zeros(n, np.int64))
        self.rows = 0

    def batches(self) -> Iterator[pa.RecordBatch]:
        pending = _Pending()
        for record in self.vcf:
            self._add(pending, record)
            if pending.records >= self.records_per_batch:
                yield self._flush(pending)
                pending = _Pending()
        if pending.records:
            yield self._flush(pending)
        self.vcf.close()

    def _add(self, p: _Pending, r: Any) -> None:
        s = len(self.samples)
        site = p.site
        chrom, start, end = r.CHROM, r.start, r.end
        site["reference_name"].append(chrom)
        site["start_position"].append(start)
        site["end_position"].append(end)
        site["reference_bases"].append(r.REF)
        alts = r.ALT
        site["alternate_bases"].append(alts[0] if alts else None)
        site["names"].append(r.ID.split(";") if r.ID else [])
        site["quality"].append(r.QUAL)
        site["filter"].append(r.FILTERS or [])
        site["info"].append(json.dumps({k: _json_safe(v) for k, v in r.INFO}))
        site["gene"].append(self.genes.gene_at(chrom, start, end))
        if not s:
            return
        gt = r.genotype.array()  # (S, ploidy + 1): alleles then the phased flag
        alleles = gt[:, :-1]
        if alleles.min() > GT_END:  # every sample has the full ploidy
            p.gt_values.append(alleles.ravel())
            p.gt_lengths.append(np.full(s, alleles.shape[1], dtype=np.int64))
        else:
            present = alleles != GT_END
            p.gt_values.append(alleles[present])
            p.gt_lengths.append(np.count_nonzero(present, axis=1))
        phased = gt[:, -1].astype(bool)
        p.phased.append(phased)
        self.apoe.offer(chrom, r.POS, r.REF, alts, alleles, phased)
        fmt = r.FORMAT
        for key in TYPED_SCALARS:
            values = r.format(key) if key in self._typed and key in fmt else None
            p.scalars[key].append(self._no_scalar if values is None else values[:, 0])
        for key in TYPED_LISTS:
            values = r.format(key) if key in self._typed and key in fmt else None
            flat, lengths = (self._no_list if values is None else _int_list(values, s))
            p.lists[key][0].append(flat)
            p.lists[key][1].append(lengths)
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

    def _flush(self, p: _Pending) -> pa.RecordBatch:
        n_rec, s = p.records, len(self.samples)
        site = p.site
        columns: dict[str, pa.Array] = {
            name: pa.array(values, self.schema.field(name).type)
            for name, values in site.items()
        }
        n_calls = n_rec * s
        if s:
            gt = pa.ListArray.from_arrays(
                _offsets(np.concatenate(p.gt_lengths)),
                pa.array(np.concatenate(p.gt_values).astype(np.int64)))
            phased = np.concatenate(p.phased)
            phaseset = pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n_calls, np.int32), mask=~phased), self._phased_dictionary)
            fields: dict[str, pa.Array] = {
                "name": pa.DictionaryArray.from_arrays(
                    pa.array(np.tile(np.arange(s, dtype=np.int32), n_rec)), self._names),
                "genotype": gt,
                "phaseset": phaseset,
            }
            for key in TYPED_SCALARS:
                values = np.concatenate(p.scalars[key])
                fields[key] = pa.array(values.astype(np.int64), mask=values == INT32_MISSING)
            for key in TYPED_LISTS:
                flat, lengths = p.lists[key]
                fields[key] = pa.ListArray.from_arrays(
                    _offsets(np.concatenate(lengths)),
                    pa.array(np.concatenate(flat).astype(np.int64)))
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
