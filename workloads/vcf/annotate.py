"""APOE e2/e3/e4 per sample from rs429358 and rs7412 (gene symbols: reference.GeneIndex).

Haplotype alleles: e4 = C (alt) at rs429358 with C (ref) at rs7412, e3 = T,C, e2 = T,T
and the rare e1 = C,T. Phased calls give the haplotypes directly; unphased calls are
resolved assuming e1 only when the counts force it (the usual convention: 1 C + 1 T
is e2/e4).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from workloads.contracts.tables.genomics import SAMPLE_APOE
from workloads.vcf.reference import APOE_SNPS, RS7412, RS429358, Snp

_HAPLOTYPE = {(1, 0): "e4", (0, 0): "e3", (0, 1): "e2", (1, 1): "e1"}


def _matches(snp: Snp, chrom: str, pos: int, ref: str, alts: list[str]) -> bool:
    return (
        chrom.removeprefix("chr") == snp.chrom.removeprefix("chr")
        and pos == snp.pos and ref == snp.ref and alts == [snp.alt]
    )


def apoe_genotype(
    c429: np.ndarray, t7412: np.ndarray, phased: bool
) -> tuple[str | None, int | None]:
    """One sample's (genotype label, e4 count) from its alt-allele flags at the two SNPs."""
    if len(c429) != 2 or len(t7412) != 2 or (c429 < 0).any() or (t7412 < 0).any():
        return None, None
    if phased:
        haps = sorted(_HAPLOTYPE[(int(a), int(b))] for a, b in zip(c429, t7412, strict=True))
    else:
        ca, cb = int(c429.sum()), int(t7412.sum())
        e1 = max(0, ca + cb - 2)
        haps = sorted(["e1"] * e1 + ["e4"] * (ca - e1) + ["e2"] * (cb - e1)
                      + ["e3"] * (2 - ca - cb + e1))
    return "/".join(haps), haps.count("e4")


class ApoeCollector:
    """Keeps the two APOE SNPs' calls while the file streams past, then types every sample."""

    def __init__(self, samples: list[str]) -> None:
        self.samples = samples
        self._calls: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def offer(
        self, chrom: str, pos: int, ref: str, alts: list[str], alleles: np.ndarray,
        phased: np.ndarray,
    ) -> None:
        for snp in APOE_SNPS:
            if _matches(snp, chrom, pos, ref, alts):
                self._calls[snp.rsid] = (alleles.copy(), phased.copy())

    @property
    def complete(self) -> bool:
        return RS429358.rsid in self._calls and RS7412.rsid in self._calls

    def table(self, fingerprint: str) -> pa.Table:
        rows: dict[str, list[object]] = {c: [] for c in SAMPLE_APOE.column_names}
        if self.complete:
            a, pa_ = self._calls[RS429358.rsid]
            b, pb = self._calls[RS7412.rsid]
            for i, sample in enumerate(self.samples):
                phased = bool(pa_[i] and pb[i])
                label, e4 = apoe_genotype(a[i][a[i] != -2], b[i][b[i] != -2], phased)
                rows["sample"].append(sample)
                rows["apoe_genotype"].append(label)
                rows["e4_count"].append(e4)
                rows["phased"].append(phased)
                rows["source_fingerprint"].append(fingerprint)
        return pa.Table.from_pydict(rows, schema=SAMPLE_APOE.arrow_schema())
