"""The clinical domain: FHIR R4 records (Synthea-style) staged, kept current and flattened.

- `fhir_staging`: every validated resource version that arrived with new content (inserted,
  updated or stale), with its provenance (source object and line, content digest,
  generated time, load id) beside the raw JSON. Keyed by (load_id, source, line); content
  the node already holds is not staged again, so re-running a load stages nothing.
- `fhir_resources`: the current version of each resource, keyed by (resource_type, id).
  A row changes only when the content digest changed and the incoming version was not
  generated earlier; only then does `ingestion_ts` move. Nothing is deleted by a load.
- Flattened tables (`patients`, `conditions`, ...): each is a SQL on FHIR v2
  ViewDefinition (VIEW_DEFINITIONS below) whose rows are refreshed, for the resources a
  load changed, in the same transaction as `fhir_resources`.
- `clinical_features`: per-patient covariates for federation, derived in SQL from the
  flattened tables (FEATURES_SQL, BigQuery dialect; DuckDB runs it transpiled).

The node stack declares the dataset, tables and their CMEK from these objects.
"""

from __future__ import annotations

from typing import Any

from workloads.contracts.schema import Column, Domain, Table

DATASET = "clinical"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
BMI_LOINC = "39156-5"  # Body mass index (BMI) [Ratio]
# SNOMED CT concepts that make `diagnosis_cancer` 1: the malignant neoplasms Synthea's
# modules record (and the generic parent concept the project's own generator writes).
CANCER_SNOMED_CODES: tuple[str, ...] = (
    "363346000",  # Malignant neoplastic disease (disorder)
    "254837009",  # Malignant neoplasm of breast (disorder)
    "254637007",  # Non-small cell lung cancer (disorder)
    "254632001",  # Small cell carcinoma of lung (disorder)
    "363406005",  # Malignant tumor of colon (disorder)
    "93761005",  # Primary malignant neoplasm of colon (disorder)
    "94260004",  # Secondary malignant neoplasm of colon (disorder)
    "109838007",  # Overlapping malignant neoplasm of colon (disorder)
    "126906006",  # Neoplasm of prostate (disorder)
)
MAX_RESOURCE_BYTES = 1 << 20  # one resource (one NDJSON line) larger than 1 MiB is refused

_PROVENANCE = (
    Column("digest", "STRING", "REQUIRED", "sha256 of the resource's canonical JSON"),
    Column("generated_ts", "TIMESTAMP", "NULLABLE",
           "When the record was generated (meta.lastUpdated, else the bundle's timestamp)"),
    Column("ingestion_ts", "TIMESTAMP", "REQUIRED",
           "When this content was merged; moves only when the content changed",
           role="timestamp"),
)

FHIR_STAGING = Table(
    name="fhir_staging",
    description=(
        "Every validated FHIR resource version that arrived with new content, with its "
        "provenance; unchanged content is not staged again, so a re-run adds no rows."
    ),
    columns=(
        Column("load_id", "STRING", "REQUIRED", "sha256 over the load's input files"),
        Column("source", "STRING", "REQUIRED", "Object key of the per-patient NDJSON file"),
        Column("line", "INTEGER", "REQUIRED", "1-based line in that object"),
        Column("resource_type", "STRING", "REQUIRED", "FHIR resourceType"),
        Column("id", "STRING", "REQUIRED", "FHIR logical id", role="identifier"),
        Column("resource", "JSON", "REQUIRED",
               "The resource, references resolved to Type/id", role="text"),
        Column("digest", "STRING", "REQUIRED", "sha256 of the resource's canonical JSON"),
        Column("generated_ts", "TIMESTAMP", "NULLABLE", "When the record was generated"),
        Column("staged_ts", "TIMESTAMP", "REQUIRED", "When the load staged it"),
    ),
    primary_key=("load_id", "source", "line"),
    clustering=("resource_type", "id"),
)

FHIR_RESOURCES = Table(
    name="fhir_resources",
    description=(
        "The current version of every FHIR resource, keyed by (resource_type, id): the "
        "latest generated version wins; unchanged content never rewrites a row."
    ),
    columns=(
        Column("resource_type", "STRING", "REQUIRED", "FHIR resourceType"),
        Column("id", "STRING", "REQUIRED", "FHIR logical id", role="identifier"),
        Column("resource", "JSON", "REQUIRED", "The resource (references as Type/id)",
               role="text"),
        *_PROVENANCE,
        Column("source", "STRING", "REQUIRED", "Object key the current version came from"),
        Column("line", "INTEGER", "REQUIRED", "1-based line in that object"),
        Column("load_id", "STRING", "REQUIRED", "The load that merged the current version"),
    ),
    primary_key=("resource_type", "id"),
    clustering=("resource_type", "id"),
)

FHIR_LOADS = Table(
    name="fhir_loads",
    description="One row per FHIR load: what it read and what it did (written with the merge).",
    columns=(
        Column("load_id", "STRING", "REQUIRED", "sha256 over the load's input files"),
        Column("inputs", "JSON", "REQUIRED", "The input files and their sha256"),
        Column("resources", "INTEGER", "REQUIRED", "Valid resources staged"),
        Column("inserted", "INTEGER", "REQUIRED", "New (type, id) rows"),
        Column("updated", "INTEGER", "REQUIRED", "Rows whose content changed"),
        Column("unchanged", "INTEGER", "REQUIRED", "Rows already current"),
        Column("stale", "INTEGER", "REQUIRED", "Incoming versions older than the current one"),
        Column("quarantined", "INTEGER", "REQUIRED", "Records set aside with a reason"),
        Column("loaded_at", "TIMESTAMP", "REQUIRED", "When the load committed"),
    ),
    primary_key=("load_id",),
)


# -- flattened tables: SQL on FHIR v2 ViewDefinitions ----------------------------------------
def _col(name: str, path: str, type_: str, description: str = "") -> dict[str, str]:
    col = {"name": name, "path": path, "type": type_}
    if description:
        col["description"] = description
    return col


_FIRST_CODING = "coding.first()"

VIEW_DEFINITIONS: dict[str, dict[str, Any]] = {
    "patients": {
        "resourceType": "ViewDefinition", "name": "patients", "status": "active",
        "resource": "Patient",
        "select": [{"column": [
            _col("patient_id", "getResourceKey()", "id", "Patient id (joins patient_genomic_data)"),
            _col("name", "(name.where(use = 'official') | name).first()"
                 ".select(given.join(' ') + ' ' + family)", "string", "Given names and family"),
            _col("given_name", "(name.where(use = 'official') | name).first().given.join(' ')",
                 "string"),
            _col("family_name", "(name.where(use = 'official') | name).first().family", "string"),
            _col("gender", "gender", "code"),
            _col("birth_date", "birthDate", "date"),
            _col("deceased", "deceased.ofType(dateTime)", "dateTime"),
            _col("city", "address.first().city", "string"),
            _col("state", "address.first().state", "string"),
            _col("country", "address.first().country", "string"),
        ]}],
    },
    "conditions": {
        "resourceType": "ViewDefinition", "name": "conditions", "status": "active",
        "resource": "Condition",
        "select": [{"column": [
            _col("condition_id", "getResourceKey()", "id"),
            _col("patient_id", "subject.getReferenceKey(Patient)", "id"),
            _col("encounter_id", "encounter.getReferenceKey(Encounter)", "id"),
            _col("code_system", f"code.{_FIRST_CODING}.system", "uri"),
            _col("code", f"code.{_FIRST_CODING}.code", "code"),
            _col("display", f"code.{_FIRST_CODING}.display", "string"),
            _col("clinical_status", f"clinicalStatus.{_FIRST_CODING}.code", "code"),
            _col("verification_status", f"verificationStatus.{_FIRST_CODING}.code", "code"),
            _col("onset", "onset.ofType(dateTime)", "dateTime"),
            _col("abatement", "abatement.ofType(dateTime)", "dateTime"),
            _col("recorded_date", "recordedDate", "dateTime"),
        ]}],
    },
    "observations": {
        "resourceType": "ViewDefinition", "name": "observations", "status": "active",
        "resource": "Observation",
        "select": [{"column": [
            _col("observation_id", "getResourceKey()", "id"),
            _col("patient_id", "subject.getReferenceKey(Patient)", "id"),
            _col("encounter_id", "encounter.getReferenceKey(Encounter)", "id"),
            _col("status", "status", "code"),
            _col("category", f"category.first().{_FIRST_CODING}.code", "code"),
            _col("code_system", f"code.{_FIRST_CODING}.system", "uri"),
            _col("code", f"code.{_FIRST_CODING}.code", "code"),
            _col("display", f"code.{_FIRST_CODING}.display", "string"),
            _col("effective", "effective.ofType(dateTime)", "dateTime"),
            _col("value_quantity", "value.ofType(Quantity).value", "decimal"),
            _col("value_unit", "value.ofType(Quantity).code", "code"),
            _col("value_code", f"value.ofType(CodeableConcept).{_FIRST_CODING}.code", "code"),
            _col("value_string", "value.ofType(string)", "string"),
        ]}],
    },
    "encounters": {
        "resourceType": "ViewDefinition", "name": "encounters", "status": "active",
        "resource": "Encounter",
        "select": [{"column": [
            _col("encounter_id", "getResourceKey()", "id"),
            _col("patient_id", "subject.getReferenceKey(Patient)", "id"),
            _col("status", "status", "code"),
            _col("class_code", "class.code", "code"),
            _col("type_code", f"type.first().{_FIRST_CODING}.code", "code"),
            _col("type_display", f"type.first().{_FIRST_CODING}.display", "string"),
            _col("start", "period.start", "dateTime"),
            _col("end", "period.end", "dateTime"),
            _col("practitioner_id",
                 "participant.individual.getReferenceKey(Practitioner).first()", "id"),
            _col("organization_id", "serviceProvider.getReferenceKey(Organization)", "id"),
        ]}],
    },
    "medication_requests": {
        "resourceType": "ViewDefinition", "name": "medication_requests", "status": "active",
        "resource": "MedicationRequest",
        "select": [{"column": [
            _col("medication_request_id", "getResourceKey()", "id"),
            _col("patient_id", "subject.getReferenceKey(Patient)", "id"),
            _col("encounter_id", "encounter.getReferenceKey(Encounter)", "id"),
            _col("status", "status", "code"),
            _col("intent", "intent", "code"),
            _col("medication_system",
                 f"medication.ofType(CodeableConcept).{_FIRST_CODING}.system", "uri"),
            _col("medication_code",
                 f"medication.ofType(CodeableConcept).{_FIRST_CODING}.code", "code"),
            _col("medication_display",
                 f"medication.ofType(CodeableConcept).{_FIRST_CODING}.display", "string"),
            _col("authored_on", "authoredOn", "dateTime"),
            _col("requester_id", "requester.getReferenceKey(Practitioner)", "id"),
        ]}],
    },
}

# FHIR types of ViewDefinition columns -> BigQuery types. Dates and dateTimes stay strings:
# FHIR allows partial precision ("1970", "1970-06") that a DATE/TIMESTAMP cannot hold.
_FHIR_TO_BIGQUERY = {"decimal": "FLOAT", "integer": "INTEGER", "positiveInt": "INTEGER",
                     "unsignedInt": "INTEGER", "integer64": "INTEGER", "boolean": "BOOLEAN"}
ROW_INDEX = "row_index"  # the row's position among the rows its resource gives


def _view_columns(view: dict[str, Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []

    def walk(node: dict[str, Any]) -> None:
        out.extend(node.get("column", []))
        for child in (*node.get("select", []), *node.get("unionAll", [])[:1]):
            walk(child)

    walk({"select": view.get("select", [])})
    return out


def _flattened_table(view: dict[str, Any]) -> Table:
    cols = _view_columns(view)
    key = cols[0]["name"]  # every built-in view starts with getResourceKey()
    columns = [
        Column(c["name"], _FHIR_TO_BIGQUERY.get(c["type"], "STRING"),  # type: ignore[arg-type]
               "REQUIRED" if c["name"] == key else "NULLABLE",
               c.get("description", f"{view['resource']}: {c['path']}"),
               role="identifier" if c["name"] in (key, "patient_id") else "other")
        for c in cols
    ]
    return Table(
        name=view["name"],
        description=(f"{view['resource']} resources flattened by the SQL on FHIR v2 "
                     f"ViewDefinition '{view['name']}' (workloads/contracts/tables/clinical.py)"),
        columns=(*columns, Column(ROW_INDEX, "INTEGER", "REQUIRED",
                                  "Position of the row among its resource's rows"),
                 *_PROVENANCE),
        primary_key=(key, ROW_INDEX),
        clustering=("patient_id",) if "patient_id" in {c["name"] for c in cols} else (),
    )


FLATTENED: dict[str, Table] = {name: _flattened_table(v) for name, v in VIEW_DEFINITIONS.items()}
PATIENTS = FLATTENED["patients"]

CLINICAL_FEATURES = Table(
    name="clinical_features",
    description=(
        "Per-patient clinical covariates derived from FHIR: cancer diagnosis from SNOMED "
        "Conditions, latest BMI from LOINC 39156-5 Observations. Same meaning as the "
        "columns of patient_genomic_data, so the two can be compared and joined."
    ),
    columns=(
        Column("patient_id", "STRING", "REQUIRED", "Patient id", role="identifier"),
        Column("diagnosis_cancer", "INTEGER", "REQUIRED",
               "1 if the patient has a Condition coded with a SNOMED CT malignant neoplasm "
               "(CANCER_SNOMED_CODES) not refuted or entered in error, else 0",
               role="outcome", bounds=(0, 1), levels=(0, 1), releasable=True),
        Column("bmi", "FLOAT", "NULLABLE",
               "Latest Observation LOINC 39156-5 (Body mass index) value, kg/m2; NULL if none",
               role="covariate", unit="kg/m2", bounds=(18.5, 40.0), releasable=True),
        Column("bmi_effective", "STRING", "NULLABLE", "effectiveDateTime of that Observation",
               role="timestamp"),
    ),
    primary_key=("patient_id",),
)

_CANCER_LIST = ", ".join(f"'{c}'" for c in CANCER_SNOMED_CODES)
# BigQuery standard SQL over the flattened tables; `{dataset}` is the clinical dataset.
FEATURES_SQL = f"""
WITH cancer AS (
  SELECT DISTINCT patient_id FROM `{{dataset}}.conditions`
  WHERE code_system = '{SNOMED}' AND code IN ({_CANCER_LIST})
    AND COALESCE(verification_status, '') NOT IN ('refuted', 'entered-in-error')
), bmi AS (
  SELECT patient_id, value_quantity AS bmi, effective AS bmi_effective
  FROM `{{dataset}}.observations`
  WHERE code_system = '{LOINC}' AND code = '{BMI_LOINC}' AND value_quantity IS NOT NULL
    AND status IN ('final', 'amended', 'corrected')
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY patient_id
    ORDER BY SAFE_CAST(effective AS TIMESTAMP) DESC, observation_id DESC) = 1
)
SELECT p.patient_id, IF(c.patient_id IS NULL, 0, 1) AS diagnosis_cancer, b.bmi, b.bmi_effective
FROM `{{dataset}}.patients` AS p
LEFT JOIN cancer AS c ON c.patient_id = p.patient_id
LEFT JOIN bmi AS b ON b.patient_id = p.patient_id
"""

CLINICAL = Domain(
    name="clinical",
    dataset=DATASET,
    description="FHIR R4 records: staging, current versions, flattened views and features.",
    tables=(FHIR_STAGING, FHIR_RESOURCES, FHIR_LOADS, *FLATTENED.values(), CLINICAL_FEATURES),
)
