"""Every warehouse table of a node, defined once (see workloads/schema.py).

The node stack declares exactly these tables in BigQuery; the local DuckDB warehouse
creates them from the same objects.
"""

from __future__ import annotations

from workloads.schema import Column, Table

PATIENT_GENOMIC_DATA = Table(
    name="patient_genomic_data",
    description=(
        "One row per patient: age, BMI, allele counts of the genes of interest and the "
        "cancer diagnosis. Written by the synthetic generator or derived from variants."
    ),
    columns=(
        Column("patient_id", "STRING", "REQUIRED", "Node-prefixed id, e.g. US-0001"),
        Column("age", "INTEGER", "REQUIRED", "Age in years, 25-80"),
        Column("variant_brca1", "INTEGER", "REQUIRED", "BRCA1 variant allele count, 0-2"),
        Column("variant_tp53", "INTEGER", "REQUIRED", "TP53 variant allele count, 0-2"),
        Column("variant_apoe4", "INTEGER", "REQUIRED", "APOE e4 allele count, 0-2"),
        Column("bmi", "FLOAT", "REQUIRED", "Body-mass index, kg/m2"),
        Column("diagnosis_cancer", "INTEGER", "REQUIRED", "1 if diagnosed with cancer, else 0"),
    ),
    primary_key=("patient_id",),
    clustering=("patient_id",),
)

# Every table a node holds, in creation order. Add new tables here.
ALL_TABLES: tuple[Table, ...] = (PATIENT_GENOMIC_DATA,)


def table_named(name: str) -> Table:
    for table in ALL_TABLES:
        if table.name == name:
            return table
    raise KeyError(f"no table {name!r}; known: {', '.join(t.name for t in ALL_TABLES)}")
