"""Per-patient features derived from processed_variants with SQL (any warehouse backend).

variant_brca1 / variant_tp53: alternate alleles a patient carries at variants annotated
with the gene, capped at 2 (the generator's 0-2 allele count; the synthetic files put
one pathogenic-like SNV in each gene and no background inside the gene spans).
variant_apoe4: C alleles at rs429358 that sit with C at rs7412 - least(C@rs429358,
2 - T@rs7412), exact unless a sample carries the rare e1 haplotype unphased.
"""

from __future__ import annotations

import pyarrow as pa

from workloads.contracts.tables.genomics import (
    PATIENT_GENOMIC_DATA,
    PROCESSED_VARIANTS,
    VARIANT_FEATURES,
)
from workloads.vcf.reference import RS7412, RS429358, Snp
from workloads.warehouse.base import LoadResult, Warehouse


def features_sql() -> str:
    """Per-patient features (DuckDB dialect, plain table names; see warehouse.render)."""

    def at(snp: Snp, alias: str) -> str:
        return (
            f"sum(CASE WHEN reference_name IN ('{snp.chrom}', '{snp.chrom[3:]}') "
            f"AND start_position = {snp.pos - 1} AND reference_bases = '{snp.ref}' "
            f"AND alternate_bases = '{snp.alt}' THEN alt_alleles END) AS {alias}"
        )

    # Two lateral unnests (calls, then alleles) instead of list lambdas: the same
    # vectorised plan in DuckDB, and SQL sqlglot maps faithfully to BigQuery.
    return f"""
WITH calls AS (
  SELECT p.reference_name, p.start_position, p.reference_bases, p.alternate_bases, p.gene,
         c.name AS patient_id,
         sum(CASE WHEN g = 1 THEN 1 ELSE 0 END) AS alt_alleles
  FROM processed_variants AS p
  CROSS JOIN unnest(p."call") AS t(c)
  CROSS JOIN unnest(c.genotype) AS u(g)
  WHERE p.gene IN ('BRCA1', 'TP53') OR p.reference_name IN ('chr19', '19')
  GROUP BY p.reference_name, p.start_position, p.reference_bases, p.alternate_bases, p.gene,
           c.name
), per_patient AS (
  SELECT patient_id,
         sum(CASE WHEN gene = 'BRCA1' THEN alt_alleles ELSE 0 END) AS brca1,
         sum(CASE WHEN gene = 'TP53' THEN alt_alleles ELSE 0 END) AS tp53,
         {at(RS429358, 'c429')},
         {at(RS7412, 't7412')}
  FROM calls GROUP BY patient_id
)
SELECT patient_id,
       CAST(least(2, brca1) AS BIGINT) AS variant_brca1,
       CAST(least(2, tp53) AS BIGINT) AS variant_tp53,
       CAST(least(c429, 2 - t7412) AS BIGINT) AS variant_apoe4
FROM per_patient ORDER BY patient_id
"""


def mismatches_sql() -> str:
    # Sequenced patients only (`vcf synth --samples N` covers a subset): a derived row with
    # no patient, or other values than the patient's, is a mismatch; a patient without
    # variants is counted apart (unsequenced_sql), not as one.
    return """
SELECT f.patient_id,
       p.variant_brca1, f.variant_brca1 AS derived_brca1,
       p.variant_tp53, f.variant_tp53 AS derived_tp53,
       p.variant_apoe4, f.variant_apoe4 AS derived_apoe4
FROM variant_features AS f LEFT JOIN patient_genomic_data AS p
  ON p.patient_id = f.patient_id
WHERE p.patient_id IS NULL
   OR p.variant_brca1 IS DISTINCT FROM f.variant_brca1
   OR p.variant_tp53 IS DISTINCT FROM f.variant_tp53
   OR p.variant_apoe4 IS DISTINCT FROM f.variant_apoe4
ORDER BY p.patient_id"""


def unsequenced_sql() -> str:
    return """
SELECT COUNT(*) AS n FROM patient_genomic_data AS p
WHERE NOT EXISTS (SELECT 1 FROM variant_features AS f WHERE f.patient_id = p.patient_id)"""


def unsequenced_patients(warehouse: Warehouse) -> int:
    """Patients of patient_genomic_data with no derived features (no calls loaded)."""
    warehouse.ensure_tables([PATIENT_GENOMIC_DATA, VARIANT_FEATURES])
    [sql] = warehouse.render(unsequenced_sql())
    return int(warehouse.query(sql).column("n")[0].as_py())


def derive_features(warehouse: Warehouse) -> LoadResult:
    """Recompute variant_features from processed_variants (an idempotent upsert)."""
    warehouse.ensure_tables([PROCESSED_VARIANTS, VARIANT_FEATURES])
    [sql] = warehouse.render(features_sql())
    return warehouse.merge(VARIANT_FEATURES, warehouse.query(sql), label="variant_features")


def feature_mismatches(warehouse: Warehouse) -> pa.Table:
    """Patients whose derived features differ from patient_genomic_data (empty = all equal)."""
    warehouse.ensure_tables([PATIENT_GENOMIC_DATA, VARIANT_FEATURES])
    [sql] = warehouse.render(mismatches_sql())
    return warehouse.query(sql)
