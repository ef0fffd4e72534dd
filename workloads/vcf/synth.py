"""Synthetic multi-sample GRCh38 VCFs whose genotypes reproduce a node's patients.

Each patient's BRCA1 and TP53 variant allele counts become the genotype of one
pathogenic-like SNV inside the gene's span; the APOE e4 allele count becomes phased
haplotypes over rs429358 and rs7412 (e4 = C,C; e3 = T,C; e2 = T,T). Background records
(SNVs, indels, multi-allelic sites, missing and phased calls, INFO Number=A/R and FORMAT
Number=R/G fields) fall outside the configured gene spans, so the per-patient features
derived from the file equal the patients' values exactly.

Genotypes are drawn with numpy a block of records at a time and every sample column is
looked up in a precomputed token table, so no Python object is built per call; lines
are written to BGZF and indexed (CSI) with htslib through pysam.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pysam
from tqdm import tqdm

from workloads.contracts.errors import UserError
from workloads.generator.sampling import DEFAULT_SEED
from workloads.objectstore.base import ObjectStore
from workloads.vcf import SYNTH_RECORDS
from workloads.vcf.reference import (
    ASSEMBLY,
    CONTIG_LENGTHS,
    RS7412,
    RS429358,
    GeneIndex,
    Snp,
)
from workloads.warehouse.base import Warehouse

# One pathogenic-like SNV per cancer gene (synthetic ids; positions inside the GRCh38 spans).
BRCA1_SITE = Snp("syn_BRCA1_1", "chr17", 43_094_464, "G", "A")
TP53_SITE = Snp("syn_TP53_1", "chr17", 7_674_220, "C", "T")
SPECIAL_SITES = (TP53_SITE, BRCA1_SITE, RS429358, RS7412)
AUTOSOMES = tuple(f"chr{i}" for i in range(1, 23))
E2_SHARE_OF_NON_E4 = 0.1  # e2 among haplotypes that are not e4; the rest are e3
FORMAT_KEYS = "GT:DP:AD:PL"
_DP_MIN, _DP_LEVELS = 10, 31
_BASES = np.array(list("ACGT"))


@dataclass(frozen=True)
class PatientGenotypes:
    """What a VCF must reproduce for each patient (sample = patient id)."""

    ids: list[str]
    brca1: np.ndarray
    tp53: np.ndarray
    apoe4: np.ndarray

    @classmethod
    def from_arrow(cls, table: pa.Table) -> PatientGenotypes:
        cols = table.to_pydict()
        ids = [str(i) for i in cols["patient_id"]]
        if not ids:
            raise UserError("the node has no patients; fix: generate patients first")
        counts = {k: np.asarray(cols[k], dtype=np.int8) for k in
                  ("variant_brca1", "variant_tp53", "variant_apoe4")}
        for name, values in counts.items():
            if values.min() < 0 or values.max() > 2:
                raise UserError(f"patient_genomic_data.{name} must be 0-2 (allele counts)")
        return cls(ids, counts["variant_brca1"], counts["variant_tp53"], counts["variant_apoe4"])

    def first(self, n: int | None) -> PatientGenotypes:
        """The first n patients by id (all when n is None)."""
        if n is None:
            return self
        if n < 1:
            raise UserError(f"--samples {n}: fix: pass a positive number of samples")
        return PatientGenotypes(self.ids[:n], self.brca1[:n], self.tp53[:n], self.apoe4[:n])

    @classmethod
    def from_warehouse(cls, warehouse: Warehouse) -> PatientGenotypes:
        from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA

        ref = warehouse.table_ref(PATIENT_GENOMIC_DATA)
        return cls.from_arrow(warehouse.query(
            f"SELECT patient_id, variant_brca1, variant_tp53, variant_apoe4 FROM {ref} "
            f"ORDER BY patient_id"
        ))


@dataclass
class _Sites:
    """Record metadata for every record, sorted by contig then position."""

    chrom: np.ndarray  # contig index into AUTOSOMES
    pos: np.ndarray  # 1-based
    ref: list[str]
    alts: list[list[str]]
    ids: list[str]
    special: np.ndarray  # index into SPECIAL_SITES, -1 for background


def vcf_header(samples: list[str]) -> str:
    header = pysam.VariantHeader()
    header.add_meta("reference", ASSEMBLY)
    for contig in AUTOSOMES:
        header.contigs.add(contig, length=CONTIG_LENGTHS[contig], assembly=ASSEMBLY)
    header.add_meta("INFO", items=[("ID", "AC"), ("Number", "A"), ("Type", "Integer"),
                                   ("Description", "Alternate allele count in genotypes")])
    header.add_meta("INFO", items=[("ID", "AF"), ("Number", "A"), ("Type", "Float"),
                                   ("Description", "Alternate allele frequency")])
    header.add_meta("INFO", items=[("ID", "AN"), ("Number", "1"), ("Type", "Integer"),
                                   ("Description", "Called alleles")])
    header.add_meta("INFO", items=[("ID", "DP"), ("Number", "1"), ("Type", "Integer"),
                                   ("Description", "Total depth")])
    header.add_meta("INFO", items=[("ID", "ADT"), ("Number", "R"), ("Type", "Integer"),
                                   ("Description", "Total depth per allele (ref, alts)")])
    header.add_meta("FORMAT", items=[("ID", "GT"), ("Number", "1"), ("Type", "String"),
                                     ("Description", "Genotype")])
    header.add_meta("FORMAT", items=[("ID", "DP"), ("Number", "1"), ("Type", "Integer"),
                                     ("Description", "Read depth")])
    header.add_meta("FORMAT", items=[("ID", "AD"), ("Number", "R"), ("Type", "Integer"),
                                     ("Description", "Allelic depths (ref, alts)")])
    header.add_meta("FORMAT", items=[("ID", "PL"), ("Number", "G"), ("Type", "Integer"),
                                     ("Description", "Phred-scaled genotype likelihoods")])
    for sample in samples:
        header.add_sample(sample)
    return str(header)


class _Tokens:
    """Every sample column text for n alleles, indexed by (a0 * n + a1) * DP levels + dp."""

    def __init__(self, n: int, phased: bool) -> None:
        sep = "|" if phased else "/"
        n_gt = n * (n + 1) // 2
        texts: list[str] = []
        ad = np.zeros((n * n * _DP_LEVELS + 1, n), dtype=np.int64)
        for a0 in range(n):
            for a1 in range(n):
                lo, hi = min(a0, a1), max(a0, a1)
                gt = f"{a0}{sep}{a1}" if phased else f"{lo}/{hi}"
                called = hi * (hi + 1) // 2 + lo  # VCF order of genotype likelihoods
                for level in range(_DP_LEVELS):
                    dp = _DP_MIN + level
                    depths = np.zeros(n, dtype=np.int64)
                    depths[lo] += dp // 2 if lo != hi else dp
                    if lo != hi:
                        depths[hi] += dp - dp // 2
                    ad[len(texts)] = depths
                    pl = [0 if g == called else min(255, 3 * dp + 7 * g) for g in range(n_gt)]
                    texts.append(
                        f"{gt}:{dp}:{','.join(map(str, depths))}:{','.join(map(str, pl))}"
                    )
        texts.append("./." if not phased else ".|.")  # a no-call: trailing fields omitted
        self.text = np.array(texts, dtype=object)
        self.ad = ad
        self.missing = len(texts) - 1


def _sites(n_records: int, genes: GeneIndex, rng: np.random.Generator) -> _Sites:
    """Background positions spread over the autosomes by length, outside the gene spans."""
    n_background = max(0, n_records - len(SPECIAL_SITES))
    lengths = np.array([CONTIG_LENGTHS[c] for c in AUTOSOMES], dtype=np.float64)
    per_contig = rng.multinomial(n_background, lengths / lengths.sum())
    chrom_parts, pos_parts = [], []
    for ci, count in enumerate(per_contig):
        if count == 0:
            continue
        taken: set[int] = set()
        while len(taken) < count:  # distinct positions, none inside a gene of interest
            for p in rng.integers(1, CONTIG_LENGTHS[AUTOSOMES[ci]] - 100, count).tolist():
                if len(taken) < count and not genes.contains(AUTOSOMES[ci], p - 1):
                    taken.add(p)
        pos_parts.append(np.sort(np.fromiter(taken, dtype=np.int64)))
        chrom_parts.append(np.full(count, ci, dtype=np.int64))
    chrom = np.concatenate([*chrom_parts, [AUTOSOMES.index(s.chrom) for s in SPECIAL_SITES]])
    pos = np.concatenate([*pos_parts, [s.pos for s in SPECIAL_SITES]]).astype(np.int64)
    special = np.concatenate([np.full(n_background, -1), np.arange(len(SPECIAL_SITES))])
    order = np.lexsort((pos, chrom))
    chrom, pos, special = chrom[order], pos[order], special[order]

    kind = rng.random(len(pos))
    ref_base = _BASES[rng.integers(0, 4, len(pos))]
    refs: list[str] = []
    alts: list[list[str]] = []
    ids: list[str] = []
    for i in range(len(pos)):
        if special[i] >= 0:
            site = SPECIAL_SITES[special[i]]
            refs.append(site.ref)
            alts.append([site.alt])
            ids.append(site.rsid)
            continue
        base = str(ref_base[i])
        others = [b for b in "ACGT" if b != base]
        extra = "".join(_BASES[rng.integers(0, 4, int(rng.integers(1, 6)))])
        if kind[i] < 0.80:  # SNV
            refs.append(base)
            alts.append([others[int(rng.integers(0, 3))]])
        elif kind[i] < 0.86:  # deletion
            refs.append(base + extra)
            alts.append([base])
        elif kind[i] < 0.90:  # insertion
            refs.append(base)
            alts.append([base + extra])
        elif kind[i] < 0.96:  # multi-allelic SNV
            refs.append(base)
            alts.append(list(rng.choice(others, int(rng.integers(2, 4)), replace=False)))
        else:  # multi-allelic insertion of different lengths (a microsatellite)
            refs.append(base)
            alts.append([base + "T" * k for k in range(1, int(rng.integers(3, 5)))])
        ids.append(f"rs{100_000_000 + i}" if rng.random() < 0.3 else ".")
    return _Sites(chrom, pos, refs, alts, ids, special)


def _special_alleles(
    patients: PatientGenotypes, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[bool]]:
    """Haplotype alleles (S, 2) for each special site, and whether the calls are phased."""
    s = len(patients.ids)

    def count_to_haplotypes(count: np.ndarray) -> np.ndarray:
        return np.stack([(count >= 2), (count >= 1)], axis=1).astype(np.int8)

    # APOE: the first apoe4 haplotypes are e4, the others e2 or e3; then a random phase.
    hap = np.arange(2)[None, :]
    e4 = hap < patients.apoe4[:, None]
    e2 = ~e4 & (rng.random((s, 2)) < E2_SHARE_OF_NON_E4)
    flip = rng.random(s) < 0.5
    e4[flip] = e4[flip][:, ::-1]
    e2[flip] = e2[flip][:, ::-1]
    by_site = {
        TP53_SITE.rsid: (count_to_haplotypes(patients.tp53), False),
        BRCA1_SITE.rsid: (count_to_haplotypes(patients.brca1), False),
        RS429358.rsid: (e4.astype(np.int8), True),  # C at rs429358 only on e4
        RS7412.rsid: (e2.astype(np.int8), True),  # T at rs7412 only on e2
    }
    return [by_site[s.rsid][0] for s in SPECIAL_SITES], [by_site[s.rsid][1] for s in SPECIAL_SITES]


def shard_paths(out_dir: Path, prefix: str, shards: int) -> list[Path]:
    return [out_dir / f"{prefix}-{i:04d}-of-{shards:04d}.vcf.gz" for i in range(shards)]


def write_synthetic_vcf(
    patients: PatientGenotypes,
    out_dir: Path,
    *,
    records: int = SYNTH_RECORDS,
    shards: int = 1,
    seed: int = DEFAULT_SEED,
    prefix: str = "synthetic",
    genes: GeneIndex | None = None,
    missing_rate: float = 0.01,
    phased_share: float = 0.3,
    block: int = 500,
    progress: bool = True,
) -> list[Path]:
    """Write `shards` bgzipped, CSI-indexed VCFs (contiguous genome regions); returns paths."""
    if records < len(SPECIAL_SITES) or shards < 1 or shards > records:
        raise UserError(
            f"records={records}, shards={shards}: need records >= {len(SPECIAL_SITES)} "
            f"and 1 <= shards <= records; fix: pass --records >= {len(SPECIAL_SITES)} and "
            f"--shards between 1 and --records"
        )
    rng = np.random.default_rng(seed)
    sites = _sites(records, genes or GeneIndex.from_bed(), rng)
    special_alleles, special_phased = _special_alleles(patients, rng)
    header = vcf_header(patients.ids).encode()
    tokens: dict[tuple[int, bool], _Tokens] = {}
    n = len(sites.pos)
    bounds = np.linspace(0, n, shards + 1).astype(int)
    paths = shard_paths(Path(out_dir), prefix, shards)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=n, desc="synth VCF records", unit="rec", file=sys.stderr, disable=not progress)
    for shard, path in enumerate(paths):
        tmp = path.with_name(path.name + ".tmp")
        with pysam.BGZFile(str(tmp), "wb", index=None) as out:
            out.write(header)
            for lo in range(bounds[shard], bounds[shard + 1], block):
                hi = min(lo + block, bounds[shard + 1])
                for line in _lines(sites, lo, hi, patients, special_alleles, special_phased,
                                   tokens, rng, missing_rate, phased_share):
                    out.write(line)
                bar.update(hi - lo)
        tmp.replace(path)
        pysam.tabix_index(str(path), preset="vcf", csi=True, force=True)
    bar.close()
    return paths


def synth_into_store(
    patients: PatientGenotypes, store: ObjectStore, prefix: str, **options: Any
) -> list[str]:
    """write_synthetic_vcf into an object store (encrypted at rest in a node's bucket):
    the files are made in a private temporary folder, uploaded, and removed."""
    with tempfile.TemporaryDirectory(prefix="vcf-synth-") as tmp:
        paths = write_synthetic_vcf(patients, Path(tmp), **options)
        keys = [prefix + path.name for path in paths]
        for path, key in zip(paths, keys, strict=True):
            store.upload(path, key)
    return keys


def _lines(
    sites: _Sites,
    lo: int,
    hi: int,
    patients: PatientGenotypes,
    special_alleles: list[np.ndarray],
    special_phased: list[bool],
    tokens: dict[tuple[int, bool], _Tokens],
    rng: np.random.Generator,
    missing_rate: float,
    phased_share: float,
) -> Iterator[bytes]:
    b, s = hi - lo, len(patients.ids)
    n_alleles = np.array([1 + len(a) for a in sites.alts[lo:hi]], dtype=np.int64)
    # Alt allele frequencies: mostly rare, split among the alts of multi-allelic sites.
    alt_total = np.clip(rng.beta(0.5, 4.0, b), 0.01, 0.6)
    cum = np.ones((b, 3))  # cumulative thresholds for alleles 1..3 (unused = 1)
    for r in range(b):
        k = n_alleles[r] - 1
        shares = rng.dirichlet(np.ones(k)) * alt_total[r]
        cum[r, :k] = 1.0 - alt_total[r] + np.cumsum(shares)[:k] - shares[:k]
    u = rng.random((b, s, 2))
    alleles = (u[..., None] >= cum[:, None, None, :]).sum(-1).astype(np.int64)
    missing = rng.random((b, s)) < missing_rate
    phased = rng.random(b) < phased_share
    dp_level = rng.integers(0, _DP_LEVELS, (b, s))
    for r in range(b):
        sp = sites.special[lo + r]
        if sp >= 0:
            alleles[r] = special_alleles[sp]
            missing[r] = False
            phased[r] = special_phased[sp]
    for r in range(b):
        i = lo + r
        n = int(n_alleles[r])
        table = tokens.get((n, bool(phased[r])))
        if table is None:
            table = tokens[(n, bool(phased[r]))] = _Tokens(n, bool(phased[r]))
        idx = (alleles[r, :, 0] * n + alleles[r, :, 1]) * _DP_LEVELS + dp_level[r]
        idx[missing[r]] = table.missing
        called = ~missing[r]
        an = 2 * int(called.sum())
        ac = [int((alleles[r][called] == a).sum()) for a in range(1, n)]
        af = ",".join(f"{c / an:.4g}" if an else "." for c in ac)
        adt = table.ad[idx].sum(axis=0)
        info = (
            f"AC={','.join(map(str, ac))};AF={af};AN={an};DP={int(adt.sum())};"
            f"ADT={','.join(map(str, adt.tolist()))}"
        )
        qual = 30 + (i * 7919) % 970
        fixed = (
            f"{AUTOSOMES[sites.chrom[i]]}\t{sites.pos[i]}\t{sites.ids[i]}\t{sites.ref[i]}\t"
            f"{','.join(sites.alts[i])}\t{qual}\tPASS\t{info}\t{FORMAT_KEYS}\t"
        )
        yield (fixed + "\t".join(table.text[idx].tolist()) + "\n").encode()
