"""The genomics domain: patients' genomic features and the VCF pipeline's tables.

Kept in the seed's `hospital_data` dataset. The node stack declares exactly these tables in
BigQuery; the local DuckDB warehouse creates them from the same objects.
"""

from __future__ import annotations

from dataclasses import replace

from workloads.contracts.schema import Column, Domain, Partitioning, Table, View
from workloads.contracts.tables.clinical import CLINICAL_FEATURES

ALLELE_COUNT_LEVELS = (0, 1, 2)

PATIENT_GENOMIC_DATA = Table(
    name="patient_genomic_data",
    description=(
        "One row per patient: age, BMI, allele counts of the genes of interest and the "
        "cancer diagnosis. Written by the synthetic generator or derived from variants."
    ),
    columns=(
        Column(
            "patient_id", "STRING", "REQUIRED", "Node-prefixed id, e.g. US-0001", role="identifier"
        ),
        Column(
            "age",
            "INTEGER",
            "REQUIRED",
            "Age in years",
            role="covariate",
            unit="a",
            bounds=(25, 80),
            releasable=True,
        ),
        Column(
            "variant_brca1",
            "INTEGER",
            "REQUIRED",
            "BRCA1 variant allele count",
            role="covariate",
            bounds=(0, 2),
            levels=ALLELE_COUNT_LEVELS,
            releasable=True,
        ),
        Column(
            "variant_tp53",
            "INTEGER",
            "REQUIRED",
            "TP53 variant allele count",
            role="covariate",
            bounds=(0, 2),
            levels=ALLELE_COUNT_LEVELS,
            releasable=True,
        ),
        Column(
            "variant_apoe4",
            "INTEGER",
            "REQUIRED",
            "APOE e4 allele count",
            role="covariate",
            bounds=(0, 2),
            levels=ALLELE_COUNT_LEVELS,
            releasable=True,
        ),
        Column(
            "bmi",
            "FLOAT",
            "REQUIRED",
            "Body-mass index, kg/m2",
            role="covariate",
            unit="kg/m2",
            bounds=(18.5, 40.0),
            releasable=True,
        ),
        Column(
            "diagnosis_cancer",
            "INTEGER",
            "REQUIRED",
            "1 if diagnosed with cancer, else 0",
            role="outcome",
            bounds=(0, 1),
            levels=(0, 1),
            releasable=True,
        ),
    ),
    primary_key=("patient_id",),
    clustering=("patient_id",),
)

# -- the VCF pipeline (workloads/vcf) --------------------------------------------------------
# One row per alternate allele after `bcftools norm -m -any`, modelled on Variant Transforms.
# BigQuery range partitioning needs an INTEGER column: start_position in 250 kb buckets gives
# 1,000 partitions over the longest chromosome (limit 10,000); clustering on
# reference_name, start_position prunes blocks inside a partition for region queries.
_CALL_FIELDS = (
    Column("name", "STRING", "REQUIRED", "Sample name (the patient id)"),
    Column("genotype", "INTEGER", "REPEATED", "Allele indices, -1 for a no-call"),
    Column("phaseset", "STRING", "NULLABLE", "'*' when phased without PS, NULL if unphased"),
    Column("DP", "INTEGER", "NULLABLE", "FORMAT/DP read depth"),
    Column("GQ", "INTEGER", "NULLABLE", "FORMAT/GQ genotype quality"),
    Column("AD", "INTEGER", "REPEATED", "FORMAT/AD (Number=R) for [ref, alt]; -1 = missing"),
    Column("PL", "INTEGER", "REPEATED", "FORMAT/PL (Number=G) for 0/0, 0/1, 1/1; -1 = missing"),
    Column("other_format", "JSON", "NULLABLE", "Other FORMAT fields of the header, if any"),
)

PROCESSED_VARIANTS = Table(
    name="processed_variants",
    description=(
        "Variants after `bcftools norm -m -any` (one row per alternate allele), annotated with "
        "the gene of interest; Variant Transforms-like columns. Written by the VCF pipeline."
    ),
    columns=(
        Column("reference_name", "STRING", "REQUIRED", "Contig, e.g. chr17"),
        Column("start_position", "INTEGER", "REQUIRED", "0-based start"),
        Column("end_position", "INTEGER", "REQUIRED", "0-based exclusive end"),
        Column("reference_bases", "STRING", "REQUIRED", "REF"),
        Column("alternate_bases", "STRING", "NULLABLE", "The ALT after splitting, or NULL"),
        Column("names", "STRING", "REPEATED", "IDs (rsIDs)"),
        Column("quality", "FLOAT", "NULLABLE", "QUAL"),
        Column("filter", "STRING", "REPEATED", "FILTER values (PASS included)"),
        Column("info", "JSON", "NULLABLE", "INFO fields after splitting (Number=A/R/G sliced)"),
        Column("gene", "STRING", "NULLABLE", "Gene of interest whose span holds the variant"),
        Column("call", "RECORD", "REPEATED", "One entry per sample", fields=_CALL_FIELDS),
        Column("source_fingerprint", "STRING", "REQUIRED", "sha256 of the input VCF file"),
    ),
    partitioning=Partitioning(
        "start_position", "RANGE", range_start=0, range_end=250_000_000, range_interval=250_000
    ),
    clustering=("reference_name", "start_position"),
    stored_long="call",  # locally one row per call: 115M calls load in flat memory
)

SAMPLE_APOE = Table(
    name="sample_apoe",
    description=(
        "APOE e2/e3/e4 genotype per sample from rs429358 and rs7412, written by the VCF "
        "annotator in the same load as the file's variants."
    ),
    columns=(
        Column("sample", "STRING", "REQUIRED", "Sample name (the patient id)"),
        Column("apoe_genotype", "STRING", "NULLABLE", "e.g. e3/e4; NULL when a call is missing"),
        Column("e4_count", "INTEGER", "NULLABLE", "Number of e4 alleles, 0-2"),
        Column("phased", "BOOLEAN", "REQUIRED", "Haplotypes read from phased calls"),
        Column("source_fingerprint", "STRING", "REQUIRED", "sha256 of the input VCF file"),
    ),
    primary_key=("sample", "source_fingerprint"),
)

VCF_LOADS = Table(
    name="vcf_loads",
    description=(
        "Ledger of loaded VCF files: a fingerprint here means its rows are in "
        "processed_variants, written in the same transaction, so a file is never loaded twice."
    ),
    columns=(
        Column("fingerprint", "STRING", "REQUIRED", "sha256 of the input VCF file"),
        Column("source", "STRING", "REQUIRED", "Where the file was read from"),
        Column("variant_rows", "INTEGER", "REQUIRED", "Rows loaded into processed_variants"),
        Column("loaded_at", "TIMESTAMP", "REQUIRED", "When the load committed"),
    ),
    primary_key=("fingerprint",),
)

VARIANT_FEATURES = Table(
    name="variant_features",
    description=(
        "Per-patient features derived with SQL from processed_variants: alternate alleles "
        "carried in BRCA1 and TP53 (capped at 2) and APOE e4 alleles from rs429358/rs7412. "
        "Same meaning as the columns of patient_genomic_data, so the two can be compared."
    ),
    columns=(
        Column("patient_id", "STRING", "REQUIRED", "Sample name = patient id"),
        Column("variant_brca1", "INTEGER", "REQUIRED", "BRCA1 variant allele count, 0-2"),
        Column("variant_tp53", "INTEGER", "REQUIRED", "TP53 variant allele count, 0-2"),
        Column("variant_apoe4", "INTEGER", "NULLABLE", "APOE e4 allele count; NULL if no call"),
    ),
    primary_key=("patient_id",),
)

# -- the research view: genomic features joined with clinical covariates, inside the node ---
# Age in whole years on the day the clinical record was extracted (its generated time, else
# when it was merged), in UTC, from the FHIR birthDate; a partial birthDate ("1970") gives
# NULL, which an analysis leaves out and counts. Computed from strings and UTC parts only,
# so BigQuery and DuckDB (whatever its session time zone) give the same number.
_EXTRACTED = "COALESCE(p.generated_ts, p.ingestion_ts)"
_BORN = "SAFE_CAST(p.birth_date AS DATE)"


def _part(part: str, value: str, utc: bool) -> str:
    zone = " AT TIME ZONE 'UTC'" if utc else ""
    return f"EXTRACT({part} FROM {value}{zone})"


_AGE_SQL = (
    f"{_part('YEAR', _EXTRACTED, True)} - {_part('YEAR', _BORN, False)} - IF("
    f"{_part('MONTH', _EXTRACTED, True)} * 100 + {_part('DAY', _EXTRACTED, True)} < "
    f"{_part('MONTH', _BORN, False)} * 100 + {_part('DAY', _BORN, False)}, 1, 0)"
)
SEX_LEVELS = ("female", "male")  # FHIR administrative gender; other codes are left out

PATIENT_RISK_FACTORS = View(
    name="patient_risk_factors",
    description=(
        "One row per patient with both a VCF-derived genotype and a FHIR record: the allele "
        "counts derived from the VCF pipeline (variant_features) joined, inside the node, "
        "with the clinical covariates of the FHIR records (age from Patient.birthDate, sex, "
        "latest BMI Observation and the cancer diagnosis, via clinical_features). The "
        "analysis-ready table of the cancer-risk model."
    ),
    sql=(
        "SELECT f.patient_id, c.diagnosis_cancer, "
        f"CAST({_AGE_SQL} AS INT64) AS age, "
        "c.bmi, p.gender AS sex, f.variant_brca1, f.variant_tp53, f.variant_apoe4 "
        "FROM {dataset}.variant_features AS f "
        "JOIN {dataset:clinical}.patients AS p ON p.patient_id = f.patient_id "
        "JOIN {dataset:clinical}.clinical_features AS c ON c.patient_id = f.patient_id"
    ),
    columns=(
        Column("patient_id", "STRING", "REQUIRED", "Patient id (never leaves the node)",
               role="identifier"),
        CLINICAL_FEATURES.column("diagnosis_cancer"),
        Column("age", "INTEGER", "NULLABLE",
               "Age in whole years when the FHIR record was extracted (from birthDate; NULL "
               "for a partial birthDate)",
               role="covariate", unit="a", bounds=(18, 90), releasable=True),
        CLINICAL_FEATURES.column("bmi"),
        Column("sex", "STRING", "NULLABLE", "FHIR Patient.gender", role="category",
               levels=SEX_LEVELS, releasable=True),
        *(replace(PATIENT_GENOMIC_DATA.column(name), mode="NULLABLE",
                  description=f"{PATIENT_GENOMIC_DATA.column(name).description}, derived from "
                  "the node's VCF (variant_features)")
          for name in ("variant_brca1", "variant_tp53", "variant_apoe4")),
    ),
)

GENOMICS = Domain(
    name="genomics",
    dataset="hospital_data",  # the seed's dataset name, kept for its readers
    description="Patients' genomic features and the VCF pipeline's variants.",
    # In creation order: a table comes after any table its foreign keys reference.
    tables=(PATIENT_GENOMIC_DATA, PROCESSED_VARIANTS, SAMPLE_APOE, VCF_LOADS, VARIANT_FEATURES),
    # Joins the clinical domain's tables: the stack creates views after every domain's tables.
    views=(PATIENT_RISK_FACTORS,),
)
