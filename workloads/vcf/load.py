"""Load a staged shard into a node warehouse (DuckDB or BigQuery), at most once per content.

The load key is the digest of the normalised records (the manifest's `fingerprint`), so
the same records sent bgzipped, plain or recompressed load once; a second attempt says
"already loaded". The rows, the file's APOE genotypes and the ledger row (vcf_loads) are
written by one transaction, each guarded by "fingerprint not in the ledger": a failure
leaves nothing and a concurrent duplicate adds nothing.

One call per sample, site and allele (the documented rule): before loading, the staged
calls are compared with the calls already in the node from *other* loads. Any overlap
refuses the whole file - nothing of it is loaded - and quarantines it in the node's
bucket with a reason naming both sources and the first overlapping calls (with both
genotypes, and whether they conflict or merely repeat). Features count alleles per
call, so an overlap would either double a patient's alleles or make them ambiguous;
to replace a file's calls, reset the node and load the corrected files.

The SQL is written once (DuckDB dialect) and translated per backend by the warehouse
(workloads.warehouse.dialect).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from workloads.contracts.tables.genomics import PROCESSED_VARIANTS, SAMPLE_APOE, VCF_LOADS
from workloads.objectstore.base import ObjectStore
from workloads.vcf.pipeline import QUARANTINE, read_manifest, staged_keys
from workloads.warehouse.base import Warehouse
from workloads.warehouse.dialect import literal

STAGED_VARIANTS = "_staged_variants"
STAGED_APOE = "_staged_apoe"
SITE = ("reference_name", "start_position", "reference_bases", "alternate_bases")
SHOWN_OVERLAPS = 5


@dataclass(frozen=True)
class LoadOutcome:
    fingerprint: str
    status: str  # loaded | already-loaded | conflict
    variant_rows: int
    reason: str = ""

    @property
    def loaded(self) -> bool:
        return self.status == "loaded"


def is_loaded(warehouse: Warehouse, fp: str) -> bool:
    [sql] = warehouse.render(
        f"SELECT count(*) AS n FROM vcf_loads WHERE fingerprint = {literal(fp)}")
    return bool(warehouse.query(sql).column("n")[0].as_py())


def overlap_sql(fp: str) -> str:
    """Calls of the staged file at a sample, site and allele already loaded from elsewhere."""
    on = " AND ".join(f"p.{c} = s.{c}" for c in SITE)
    cols = ", ".join(f"p.{c}" for c in SITE)
    # Arrays compare as JSON text: BigQuery has no array equality.
    differs = ("CAST(to_json(o.genotype) AS VARCHAR) <> "
               "CAST(to_json(n.genotype) AS VARCHAR)")
    return f"""
WITH overlap AS (
  SELECT DISTINCT {cols}, p.source_fingerprint
  FROM processed_variants AS p JOIN {STAGED_VARIANTS} AS s ON {on}
  WHERE p.source_fingerprint <> {literal(fp)}
), old_calls AS (
  SELECT {cols}, p.source_fingerprint, c.name AS sample, c.genotype AS genotype
  FROM processed_variants AS p
  JOIN overlap AS o ON {" AND ".join(f"p.{c} = o.{c}" for c in SITE)}
    AND p.source_fingerprint = o.source_fingerprint
  CROSS JOIN unnest(p."call") AS t(c)
), new_calls AS (
  SELECT {", ".join(f"s.{c}" for c in SITE)}, c.name AS sample, c.genotype AS genotype
  FROM {STAGED_VARIANTS} AS s
  JOIN (SELECT DISTINCT {", ".join(SITE)} FROM overlap) AS o
    ON {" AND ".join(f"s.{c} = o.{c}" for c in SITE)}
  CROSS JOIN unnest(s."call") AS t(c)
)
SELECT n.reference_name, n.start_position, n.reference_bases, n.alternate_bases, n.sample,
       o.source_fingerprint AS other_fingerprint, l.source AS other_source,
       o.genotype AS other_genotype, n.genotype AS genotype,
       count(*) OVER () AS overlapping_calls,
       sum(CASE WHEN {differs} THEN 1 ELSE 0 END) OVER () AS conflicting_calls
FROM new_calls AS n
JOIN old_calls AS o
  ON {" AND ".join(f"n.{c} = o.{c}" for c in SITE)} AND n.sample = o.sample
LEFT JOIN vcf_loads AS l ON l.fingerprint = o.source_fingerprint
ORDER BY CASE WHEN {differs} THEN 0 ELSE 1 END, n.reference_name, n.start_position,
         n.sample
LIMIT {SHOWN_OVERLAPS}
"""


def load_sql(fp: str, source: str, rows: int) -> str:
    """The ledger-guarded load: three statements the warehouse runs as one transaction."""
    fresh = f"NOT EXISTS (SELECT 1 FROM vcf_loads WHERE fingerprint = {literal(fp)})"

    def insert(table: str, columns: list[str], staged: str) -> str:
        picked = ", ".join(f"s.{c}" if c != "source_fingerprint" else
                           f"{literal(fp)} AS source_fingerprint" for c in columns)
        return (f"INSERT INTO {table} ({', '.join(columns)}) "
                f"SELECT {picked} FROM {staged} AS s WHERE {fresh}")

    quoted = [f'"{c}"' if c == "call" else c for c in PROCESSED_VARIANTS.column_names]
    return ";\n".join([
        insert(PROCESSED_VARIANTS.name, quoted, STAGED_VARIANTS),
        insert(SAMPLE_APOE.name, list(SAMPLE_APOE.column_names), STAGED_APOE),
        f"INSERT INTO {VCF_LOADS.name} (fingerprint, source, variant_rows, loaded_at) "
        f"SELECT {literal(fp)}, {literal(source)}, {literal(rows)}, CURRENT_TIMESTAMP "
        f"FROM (SELECT 1 AS one) AS one WHERE {fresh}",
    ])


def _describe(overlaps: list[dict[str, Any]], fp: str, source: str) -> str:
    first = overlaps[0]
    conflicting = [o for o in overlaps if o["genotype"] != o["other_genotype"]]
    kind = (f"{first['conflicting_calls']} conflicting calls" if conflicting
            else "the same calls again")
    shown = "; ".join(
        f"{o['sample']} at {o['reference_name']}:{o['start_position'] + 1} "
        f"{o['reference_bases']}>{o['alternate_bases']}: genotype {o['genotype']} here, "
        f"{o['other_genotype']} in {o['other_source'] or o['other_fingerprint']}"
        for o in (conflicting or overlaps)[:3])
    return (f"{source}: {first['overlapping_calls']} call(s) for samples and sites already "
            f"loaded from {first['other_source'] or first['other_fingerprint']} ({kind}: "
            f"{shown}); nothing of it was loaded; fix: one call per sample and site - drop "
            f"the overlapping samples or records, or reset the node and load the corrected "
            f"files")


def _quarantine_conflict(
    staging: ObjectStore, staged_id: str, source: str, reason: str,
    overlaps: list[dict[str, Any]],
) -> None:
    key = f"{QUARANTINE}{staged_id}/conflict.reason.json"
    record = {"file": source, "reason": "calls overlap an earlier load", "message": reason,
              "overlaps": overlaps, "staged": staged_keys(staged_id)["variants"],
              "time": datetime.now(UTC).isoformat()}
    staging.write_bytes(key, json.dumps(record, indent=2, default=str).encode())


def load_staged(warehouse: Warehouse, staging: ObjectStore, staged_id: str) -> LoadOutcome:
    warehouse.ensure_tables([PROCESSED_VARIANTS, SAMPLE_APOE, VCF_LOADS])
    manifest = read_manifest(staging, staged_id)
    fp, source = str(manifest["fingerprint"]), str(manifest["source"])
    rows = int(str(manifest["variant_rows"]))
    if is_loaded(warehouse, fp):
        return LoadOutcome(fp, "already-loaded", 0)
    keys = staged_keys(staged_id)
    warehouse.stage_parquet(staging, keys["variants"], STAGED_VARIANTS, PROCESSED_VARIANTS, fp)
    try:
        [check] = warehouse.render(overlap_sql(fp))
        overlaps = warehouse.query(check).to_pylist()
        if overlaps:
            reason = _describe(overlaps, fp, source)
            _quarantine_conflict(staging, staged_id, source, reason, overlaps)
            return LoadOutcome(fp, "conflict", 0, reason)
        warehouse.stage_parquet(staging, keys["apoe"], STAGED_APOE, SAMPLE_APOE, fp)
        try:
            warehouse.run_atomic(load_sql(fp, source, rows), job_id=f"vcf_load_{fp}")
        finally:
            warehouse.unstage(STAGED_APOE)
    finally:
        warehouse.unstage(STAGED_VARIANTS)
    return LoadOutcome(fp, "loaded", rows)
