"""Synthea-shaped FHIR R4 bundles for a node's own patients (Synthea itself is Java).

For every row of patient_genomic_data: a transaction Bundle, written as Synthea writes it
(`<Given>_<Family>_<id>.json`, entries with `urn:uuid:` fullUrls and POST requests, in-bundle
references by `urn:uuid`, practitioners, organizations and locations by conditional
reference), plus one hospitalInformation and one practitionerInformation bundle. The
records reproduce the patient's features exactly:

- Patient.id is the patient_id (genomic and clinical data join inside the node);
- birthDate makes the patient `age` years old on the generation date;
- a SNOMED CT malignant-neoplasm Condition exists exactly when diagnosis_cancer = 1;
- the latest BMI Observation (LOINC 39156-5) has value `bmi`; earlier visits differ.

Everything is a function of (patient row, seed): the same seed writes the same bytes.
"""

from __future__ import annotations

import json
import random
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from workloads.contracts.errors import UserError
from workloads.contracts.tables.clinical import BMI_LOINC, CANCER_SNOMED_CODES, LOINC, SNOMED
from workloads.objectstore.base import ObjectStore

GENERATED_AT = datetime(2026, 1, 1, tzinfo=UTC)  # default generation time (deterministic)
SYNTHEA = "https://github.com/synthetichealth/synthea"
NPI = "http://hl7.org/fhir/sid/us-npi"
_NS = uuid.UUID("6f1c3c1e-7f43-4a55-9a1b-0c6c1b0e7a11")
_GIVEN = {"male": ("James", "Robert", "John", "Michael", "David", "William", "Levi", "Bob"),
          "female": ("Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Cecelia", "Ana")}
_FAMILY = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
           "Keeling", "Gusikowski", "Romaguera", "Dach", "Schmidt", "Rossi", "Novak")
_CITIES = ("Boston", "Worcester", "Springfield", "Cambridge", "Lowell", "Lexington", "Woburn")
_CANCERS = {
    "363346000": "Malignant neoplastic disease (disorder)",
    "254837009": "Malignant neoplasm of breast (disorder)",
    "254637007": "Non-small cell lung cancer (disorder)",
    "363406005": "Malignant tumor of colon (disorder)",
}
_OTHER_CONDITIONS = {  # background conditions, none of them a cancer
    "44054006": "Diabetes mellitus type 2 (disorder)",
    "59621000": "Essential hypertension (disorder)",
    "195662009": "Acute viral pharyngitis (disorder)",
    "10509002": "Acute bronchitis (disorder)",
}
_MEDICATIONS = {  # RxNorm
    "314076": "lisinopril 10 MG Oral Tablet",
    "860975": "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet",
    "1736854": "cisplatin 50 MG Injection",
}
assert not set(_OTHER_CONDITIONS) & set(CANCER_SNOMED_CODES)
assert set(_CANCERS) <= set(CANCER_SNOMED_CODES)


@dataclass(frozen=True)
class Provider:
    organization_id: str
    location_id: str
    practitioner_id: str
    npi: str
    name: str


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(_NS, "/".join(map(str, parts))))


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def providers(count: int, seed: int) -> list[Provider]:
    rng = random.Random(f"providers-{seed}")
    return [Provider(_uuid(seed, "org", i), _uuid(seed, "loc", i), _uuid(seed, "pract", i),
                     f"99999{rng.randrange(10**5):05d}{i:04d}"[-10:],
                     f"{rng.choice(_FAMILY).upper()} MEDICAL CENTER {i + 1}")
            for i in range(count)]


def _bundle(resources: list[dict[str, Any]], conditional: bool = False,
            full_urls: dict[str, str] | None = None) -> dict[str, Any]:
    entries = []
    for r in resources:
        request: dict[str, Any] = {"method": "POST", "url": r["resourceType"]}
        if conditional:  # Synthea's provider bundles: create unless the identifier exists
            ident = r["identifier"][0]
            request["ifNoneExist"] = f"identifier={ident['system']}|{ident['value']}"
        full_url = (full_urls or {}).get(r["id"], f"urn:uuid:{r['id']}")
        entries.append({"fullUrl": full_url, "resource": r, "request": request})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _meta(generated: datetime) -> dict[str, Any]:
    return {"lastUpdated": _instant(generated)}


def provider_bundles(provs: Sequence[Provider], generated: datetime = GENERATED_AT
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Synthea's hospitalInformation (Organization, Location) and practitionerInformation."""
    hospital: list[dict[str, Any]] = []
    practitioners: list[dict[str, Any]] = []
    for p in provs:
        hospital.append({
            "resourceType": "Organization", "id": p.organization_id, "meta": _meta(generated),
            "identifier": [{"system": SYNTHEA, "value": p.organization_id}], "active": True,
            "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                  "organization-type", "code": "prov",
                                  "display": "Healthcare Provider"}]}],
            "name": p.name})
        hospital.append({
            "resourceType": "Location", "id": p.location_id, "meta": _meta(generated),
            "identifier": [{"system": SYNTHEA, "value": p.location_id}], "status": "active",
            "name": p.name, "managingOrganization": {
                "reference": f"Organization?identifier={SYNTHEA}|{p.organization_id}"}})
        practitioners.append({
            "resourceType": "Practitioner", "id": p.practitioner_id, "meta": _meta(generated),
            "identifier": [{"system": NPI, "value": p.npi}], "active": True,
            "name": [{"family": p.name.split()[0].title(), "given": ["Alex"],
                      "prefix": ["Dr."]}], "gender": "female"})
    return _bundle(hospital, conditional=True), _bundle(practitioners, conditional=True)


def patient_bundle(row: dict[str, Any], provs: Sequence[Provider], seed: int,
                   generated: datetime = GENERATED_AT) -> tuple[str, dict[str, Any]]:
    """(file name, bundle) for one patient_genomic_data row."""
    pid = str(row["patient_id"])
    rng = random.Random(f"{seed}/{pid}")
    gender = rng.choice(("male", "female"))
    given = f"{rng.choice(_GIVEN[gender])}{rng.randrange(100, 1000)}"
    family = f"{rng.choice(_FAMILY)}{rng.randrange(10, 1000)}"
    today = generated.date()
    # Born between `age` years + 1 day and `age + 1` years before the generation date.
    latest = _years_before(today, int(row["age"]))
    birth = latest - timedelta(days=rng.randrange(0, 365))
    if _age_on(birth, today) != int(row["age"]):
        birth = latest
    prov = provs[rng.randrange(len(provs))]
    patient_urn = f"urn:uuid:{_uuid(seed, pid, 'patient')}"  # Synthea's fullUrls are UUIDs
    resources: list[dict[str, Any]] = [{
        "resourceType": "Patient", "id": pid, "meta": _meta(generated),
        "identifier": [{"system": SYNTHEA, "value": pid}],
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": gender, "birthDate": birth.isoformat(),
        "address": [{"city": rng.choice(_CITIES), "state": "MA", "country": "US"}],
    }]
    visits = rng.randrange(2, 5)
    bmi = float(row["bmi"])
    start_day = max(birth + timedelta(days=365 * 18), today - timedelta(days=365 * 6))
    for v in range(visits):
        when = datetime.combine(start_day + timedelta(days=(v + 1) * 400), datetime.min.time(),
                                UTC) + timedelta(hours=9 + rng.randrange(8))
        if when >= generated:
            when = generated - timedelta(days=(visits - v) * 7)
        enc_id = _uuid(seed, pid, "encounter", v)
        resources.append({
            "resourceType": "Encounter", "id": enc_id, "meta": _meta(generated),
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                      "code": "AMB"},
            "type": [{"coding": [{"system": SNOMED, "code": "162673000",
                                  "display": "General examination of patient (procedure)"}]}],
            "subject": {"reference": patient_urn},
            "participant": [{"individual": {
                "reference": f"Practitioner?identifier={NPI}|{prov.npi}"}}],
            "period": {"start": _instant(when), "end": _instant(when + timedelta(minutes=15))},
            "location": [{"location": {
                "reference": f"Location?identifier={SYNTHEA}|{prov.location_id}"}}],
            "serviceProvider": {
                "reference": f"Organization?identifier={SYNTHEA}|{prov.organization_id}"},
        })
        last = v == visits - 1
        # Earlier visits drift around the patient's BMI; the latest one is the value itself.
        value = bmi if last else round(bmi + rng.uniform(-2.0, 2.0), 1)
        resources.append(_bmi(_uuid(seed, pid, "bmi", v), patient_urn, enc_id, when, value,
                              generated))
        if rng.random() < 0.3:
            code = rng.choice(sorted(_OTHER_CONDITIONS))
            resources.append(_condition(_uuid(seed, pid, "cond", v), patient_urn, enc_id, when,
                                        code, _OTHER_CONDITIONS[code], generated))
        if rng.random() < 0.3:
            med = rng.choice(("314076", "860975"))
            resources.append(_medication(_uuid(seed, pid, "med", v), patient_urn, enc_id, when,
                                         med, prov, generated))
        if last and int(row["diagnosis_cancer"]) == 1:
            code = rng.choice(sorted(_CANCERS))
            resources.append(_condition(_uuid(seed, pid, "cancer"), patient_urn, enc_id, when,
                                        code, _CANCERS[code], generated))
            resources.append(_medication(_uuid(seed, pid, "chemo"), patient_urn, enc_id, when,
                                         "1736854", prov, generated))
    return f"{given}_{family}_{pid}.json", _bundle(resources, full_urls={pid: patient_urn})


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _bmi(rid: str, patient: str, enc: str, when: datetime, value: float,
         generated: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": rid, "meta": _meta(generated), "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                  "observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": BMI_LOINC,
                             "display": "Body mass index (BMI) [Ratio]"}]},
        "subject": {"reference": patient}, "encounter": {"reference": f"urn:uuid:{enc}"},
        "effectiveDateTime": _instant(when), "issued": _instant(when),
        "valueQuantity": {"value": value, "unit": "kg/m2",
                          "system": "http://unitsofmeasure.org", "code": "kg/m2"},
    }


def _condition(rid: str, patient: str, enc: str, when: datetime, code: str, display: str,
               generated: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Condition", "id": rid, "meta": _meta(generated),
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                       "condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                           "condition-ver-status", "code": "confirmed"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                  "condition-category", "code": "encounter-diagnosis"}]}],
        "code": {"coding": [{"system": SNOMED, "code": code, "display": display}],
                 "text": display},
        "subject": {"reference": patient}, "encounter": {"reference": f"urn:uuid:{enc}"},
        "onsetDateTime": _instant(when), "recordedDate": _instant(when),
    }


def _medication(rid: str, patient: str, enc: str, when: datetime, code: str, prov: Provider,
                generated: datetime) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest", "id": rid, "meta": _meta(generated),
        "status": "active", "intent": "order",
        "medicationCodeableConcept": {"coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code,
            "display": _MEDICATIONS[code]}], "text": _MEDICATIONS[code]},
        "subject": {"reference": patient}, "encounter": {"reference": f"urn:uuid:{enc}"},
        "authoredOn": _instant(when),
        "requester": {"reference": f"Practitioner?identifier={NPI}|{prov.npi}"},
    }


def synth_bundles(patients: pa.Table, *, seed: int = 0, generated: datetime = GENERATED_AT
                  ) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file name, bundle) pairs: the provider bundles first, then one per patient."""
    needed = {"patient_id", "age", "bmi", "diagnosis_cancer"}
    if patients.num_rows == 0 or not needed <= set(patients.column_names):
        raise UserError("the node has no patients; fix: python -m workloads generate first")
    provs = providers(max(1, patients.num_rows // 200), seed)
    stamp = generated.strftime("%Y%m%d%H%M%S")
    hospital, practitioners = provider_bundles(provs, generated)
    yield f"hospitalInformation{stamp}.json", hospital
    yield f"practitionerInformation{stamp}.json", practitioners
    for row in patients.select(sorted(needed)).to_pylist():
        yield patient_bundle(row, provs, seed, generated)


def write_synthetic(patients: pa.Table, store: ObjectStore, prefix: str, *, seed: int = 0,
                    generated: datetime = GENERATED_AT, progress: bool = True) -> list[str]:
    """Write the bundles to the node's bucket under prefix; returns their keys."""
    keys = []
    for name, bundle in tqdm(synth_bundles(patients, seed=seed, generated=generated),
                             total=patients.num_rows + 2, desc="fhir synth", file=sys.stderr,
                             disable=not progress):
        key = f"{prefix}{name}"
        store.write_bytes(key, json.dumps(bundle, indent=1).encode())
        keys.append(key)
    return keys
