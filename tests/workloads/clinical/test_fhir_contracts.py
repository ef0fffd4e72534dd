"""The clinical domain's contracts: one definition per fact, tables matching their views."""

from __future__ import annotations

from workloads.clinical.viewdef import ViewDefinition
from workloads.contracts.catalogue import DOMAINS, table_named
from workloads.contracts.tables.clinical import (
    CLINICAL,
    CLINICAL_FEATURES,
    FLATTENED,
    PATIENTS,
    ROW_INDEX,
    VIEW_DEFINITIONS,
)
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA


def test_domain_is_in_the_catalogue() -> None:
    assert CLINICAL in DOMAINS and CLINICAL.dataset == "clinical"
    assert table_named("fhir_resources").primary_key == ("resource_type", "id")
    assert table_named("fhir_staging").column("resource").type == "JSON"


def test_flattened_tables_are_their_view_definitions() -> None:
    for name, spec in VIEW_DEFINITIONS.items():
        view = ViewDefinition(spec)
        table = FLATTENED[name]
        assert table.column_names == [*view.columns, ROW_INDEX, "digest", "generated_ts",
                                      "ingestion_ts"]
        assert table.primary_key == (view.columns[0], ROW_INDEX)


def test_patients_has_the_seed_columns() -> None:
    assert {"patient_id", "name", "gender", "birth_date", "city", "generated_ts",
            "ingestion_ts"} <= set(PATIENTS.column_names)


def test_features_mean_what_patient_genomic_data_means() -> None:
    for name in ("diagnosis_cancer", "bmi"):
        ours, theirs = CLINICAL_FEATURES.column(name), PATIENT_GENOMIC_DATA.column(name)
        assert (ours.role, ours.unit, ours.bounds, ours.releasable) == (
            theirs.role, theirs.unit, theirs.bounds, theirs.releasable)
