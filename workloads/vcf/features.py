"""Per-patient features derived from processed_variants with SQL (DuckDB dialect).

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


def features_sql(warehouse: Warehouse) -> str:
    pv = warehouse.table_ref(PROCESSED_VARIANTS)

    def at(snp: Snp, alias: str) -> str:
        return (
            f"sum(CASE WHEN reference_name IN ('{snp.chrom}', '{snp.chrom[3:]}') "
            f"AND start_position = {snp.pos - 1} AND reference_bases = '{snp.ref}' "
            f"AND alternate_bases = '{snp.alt}' THEN alt_alleles END) AS {alias}"
        )

    return f"""
WITH calls AS (
  SELECT reference_name, start_position, reference_bases, alternate_bases, gene,
         c.name AS patient_id,
         len(list_filter(c.genotype, g -> g = 1)) AS alt_alleles
  FROM (SELECT *, unnest("call") AS c FROM {pv}
        WHERE gene IN ('BRCA1', 'TP53') OR reference_name IN ('chr19', '19'))
), per_patient AS (
  SELECT patient_id,
         sum(CASE WHEN gene = 'BRCA1' THEN alt_alleles ELSE 0 END) AS brca1,
         sum(CASE WHEN gene = 'TP53' THEN alt_alleles ELSE 0 END) AS tp53,
         {at(RS429358, 'c429')},
         {at(RS7412, 't7412')}
  FROM calls GROUP BY patient_id
)
SELECT patient_id,
       least(2, brca1)::BIGINT AS variant_brca1,
       least(2, tp53)::BIGINT AS variant_tp53,
       least(c429, 2 - t7412)::BIGINT AS variant_apoe4
FROM per_patient ORDER BY patient_id
"""


def derive_features(warehouse: Warehouse) -> LoadResult:
    """Recompute variant_features from processed_variants (an idempotent upsert)."""
    warehouse.ensure_tables([PROCESSED_VARIANTS, VARIANT_FEATURES])
    table = warehouse.query(features_sql(warehouse))
    return warehouse.merge(VARIANT_FEATURES, table, label="variant_features")


def feature_mismatches(warehouse: Warehouse) -> pa.Table:
    """Patients whose derived features differ from patient_genomic_data (empty = all equal)."""
    pg, vf = warehouse.table_ref(PATIENT_GENOMIC_DATA), warehouse.table_ref(VARIANT_FEATURES)
    return warehouse.query(f"""
SELECT p.patient_id,
       p.variant_brca1, f.variant_brca1 AS derived_brca1,
       p.variant_tp53, f.variant_tp53 AS derived_tp53,
       p.variant_apoe4, f.variant_apoe4 AS derived_apoe4
FROM {pg} p FULL OUTER JOIN {vf} f USING (patient_id)
WHERE p.variant_brca1 IS DISTINCT FROM f.variant_brca1
   OR p.variant_tp53 IS DISTINCT FROM f.variant_tp53
   OR p.variant_apoe4 IS DISTINCT FROM f.variant_apoe4
ORDER BY patient_id""")
