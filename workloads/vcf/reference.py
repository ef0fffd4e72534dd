"""GRCh38 facts the pipeline reads: contig lengths, gene regions (from a BED file), APOE SNPs."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

from workloads.contracts.errors import UserError

ASSEMBLY = "GRCh38"
DEFAULT_GENES_BED = Path(__file__).parent / "data" / "genes_grch38.bed"

CONTIG_LENGTHS: dict[str, int] = {
    "chr1": 248_956_422, "chr2": 242_193_529, "chr3": 198_295_559, "chr4": 190_214_555,
    "chr5": 181_538_259, "chr6": 170_805_979, "chr7": 159_345_973, "chr8": 145_138_636,
    "chr9": 138_394_717, "chr10": 133_797_422, "chr11": 135_086_622, "chr12": 133_275_309,
    "chr13": 114_364_328, "chr14": 107_043_718, "chr15": 101_991_189, "chr16": 90_338_345,
    "chr17": 83_257_441, "chr18": 80_373_285, "chr19": 58_617_616, "chr20": 64_444_167,
    "chr21": 46_709_983, "chr22": 50_818_468, "chrX": 156_040_895, "chrY": 57_227_415,
    "chrM": 16_569,
}


@dataclass(frozen=True)
class Snp:
    rsid: str
    chrom: str
    pos: int  # 1-based, as in the VCF
    ref: str
    alt: str


# APOE: e4 = C at rs429358 with C at rs7412; e2 = T at both; e3 = T then C.
RS429358 = Snp("rs429358", "chr19", 44_908_684, "T", "C")
RS7412 = Snp("rs7412", "chr19", 44_908_822, "C", "T")
APOE_SNPS = (RS429358, RS7412)


@dataclass(frozen=True)
class GeneRegion:
    chrom: str
    start: int  # 0-based
    end: int  # exclusive
    name: str


class GeneIndex:
    """Which configured gene span holds a variant (overlap of [start, end) intervals)."""

    def __init__(self, regions: list[GeneRegion]) -> None:
        self.regions = regions
        self._by_chrom: dict[str, list[GeneRegion]] = {}
        for region in sorted(regions, key=lambda r: (r.chrom, r.start)):
            self._by_chrom.setdefault(region.chrom, []).append(region)
        self._starts = {c: [r.start for r in rs] for c, rs in self._by_chrom.items()}

    @classmethod
    def from_bed(cls, path: Path = DEFAULT_GENES_BED) -> GeneIndex:
        regions = []
        for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            parts = line.split("\t")
            try:
                chrom, start, end, name = parts[0], int(parts[1]), int(parts[2]), parts[3]
            except (IndexError, ValueError) as exc:
                raise UserError(
                    f"{path}:{number}: not a BED line ({exc}); fix: chrom<TAB>start<TAB>end<TAB>"
                    f"name with 0-based half-open integer coordinates"
                ) from exc
            if not 0 <= start < end:
                raise UserError(f"{path}:{number}: start {start} must be < end {end}")
            regions.append(GeneRegion(chrom, start, end, name))
        return cls(regions)

    def gene_at(self, chrom: str, start: int, end: int) -> str | None:
        """The first gene whose span overlaps the 0-based half-open [start, end)."""
        regions = self._by_chrom.get(chrom)
        if not regions:
            return None
        i = bisect.bisect_right(self._starts[chrom], max(start, end - 1))
        for region in reversed(regions[:i]):
            if region.start < max(end, start + 1) and start < region.end:
                return region.name
        return None

    def contains(self, chrom: str, pos0: int) -> bool:
        return self.gene_at(chrom, pos0, pos0 + 1) is not None
