"""The declared view patient_risk_factors (VCF-derived allele counts joined, inside each
node, with FHIR age, sex, BMI and diagnosis) through the federation: equal to statsmodels'
GLM on the same join computed independently here in pandas from each node's base tables.

Three nodes of very different sizes, written straight into the base tables the view reads
(variant_features, the flattened patients, clinical_features), with the awkward rows a real
node has: partial birth dates, other genders, missing BMI or APOE call, genotyped patients
without a FHIR record and records whose generated time is unknown.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlglot
import statsmodels.api as sm

from workloads.analysis.spec import load_spec
from workloads.contracts.schema import Table
from workloads.contracts.tables.clinical import CLINICAL_FEATURES, PATIENTS
from workloads.contracts.tables.genomics import PATIENT_RISK_FACTORS, VARIANT_FEATURES
from workloads.demo import DEMO_SPEC
from workloads.federation import roster
from workloads.federation.analysis_hub import fit_spec
from workloads.federation.coordinator import RunConfig
from workloads.federation.local import local_federation
from workloads.local_node import LocalNode

SIZES = {"us": 3000, "eu": 900, "sg": 250}
EXTRACTED = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)  # just after midnight UTC: a zone trap


def _table(table: Table, columns: dict[str, list[object]], n: int) -> pa.Table:
    full = {c.name: columns.get(c.name, [None] * n) for c in table.columns}
    return pa.Table.from_pydict(full, schema=table.arrow_schema())


def write_node(root: Path, name: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = [f"{name.upper()}-{i:05d}" for i in range(n)]
    age = rng.integers(25, 81, n)
    bmi = np.round(np.clip(rng.normal(27, 4, n), 18.5, 40), 1)
    brca1, tp53, apoe4 = (rng.choice(3, n, p=p) for p in
                          ([0.8, 0.15, 0.05], [0.85, 0.12, 0.03], [0.8, 0.15, 0.05]))
    male = rng.random(n) < 0.5
    eta = -4 + 0.03 * age + 0.02 * (bmi - 25) + 0.8 * brca1 + 0.5 * tp53 + 0.25 * male
    cancer = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    birth = [EXTRACTED.date().replace(year=EXTRACTED.year - int(a)) - timedelta(
        days=int(rng.integers(0, 365))) for a in age]
    gender = np.where(male, "male", "female").astype(object)
    gender[rng.random(n) < 0.02] = "other"  # outside the declared levels: left out
    birth_text = [b.isoformat() for b in birth]
    for i in rng.choice(n, max(1, n // 100), replace=False):
        birth_text[i] = str(birth[i].year)  # a partial FHIR date: age unknown
    bmi_values: list[object] = list(bmi)
    for i in rng.choice(n, max(1, n // 50), replace=False):
        bmi_values[i] = None
    apoe: list[object] = [int(v) for v in apoe4]
    for i in rng.choice(n, max(1, n // 100), replace=False):
        apoe[i] = None
    generated: list[object] = [EXTRACTED] * n
    for i in rng.choice(n, max(1, n // 20), replace=False):
        generated[i] = None  # unknown: the record's merge time stands in
    with_record = rng.random(n) > 0.03  # some genotyped patients have no FHIR record
    kept = [i for i in range(n) if with_record[i]]
    node = LocalNode(name, root)
    with node.open_warehouse() as warehouse:
        warehouse.ensure_tables([VARIANT_FEATURES, PATIENTS, CLINICAL_FEATURES])
        warehouse.merge(VARIANT_FEATURES, _table(VARIANT_FEATURES, {
            "patient_id": ids, "variant_brca1": [int(v) for v in brca1],
            "variant_tp53": [int(v) for v in tp53], "variant_apoe4": apoe}, n))
        warehouse.merge(PATIENTS, _table(PATIENTS, {
            "patient_id": [ids[i] for i in kept], "gender": [gender[i] for i in kept],
            "birth_date": [birth_text[i] for i in kept], "row_index": [0] * len(kept),
            "digest": ["d"] * len(kept), "generated_ts": [generated[i] for i in kept],
            "ingestion_ts": [EXTRACTED + timedelta(days=3)] * len(kept)}, len(kept)))
        warehouse.merge(CLINICAL_FEATURES, _table(CLINICAL_FEATURES, {
            "patient_id": [ids[i] for i in kept],
            "diagnosis_cancer": [int(cancer[i]) for i in kept],
            "bmi": [bmi_values[i] for i in kept]}, len(kept)))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("joined")
    for seed, (name, n) in enumerate(SIZES.items(), start=3):
        write_node(root, name, n, seed)
    roster.write_local(root, list(SIZES))
    return root


def pooled_rows(root: Path) -> pd.DataFrame:
    """The join, independently: pandas over each node's base tables."""
    frames = []
    for name in SIZES:
        with LocalNode(name, root).open_warehouse(create=False) as warehouse:
            genotype = warehouse.query(
                f"SELECT * FROM {warehouse.table_ref(VARIANT_FEATURES)}").to_pandas()
            patients = warehouse.query(
                f"SELECT patient_id, gender, birth_date, generated_ts, ingestion_ts "
                f"FROM {warehouse.table_ref(PATIENTS)}").to_pandas()
            clinical = warehouse.query(
                f"SELECT patient_id, diagnosis_cancer, bmi "
                f"FROM {warehouse.table_ref(CLINICAL_FEATURES)}").to_pandas()
        frames.append(genotype.merge(patients, on="patient_id").merge(clinical, on="patient_id"))
    rows = pd.concat(frames, ignore_index=True)

    def age(row: pd.Series) -> float:
        try:
            born = date.fromisoformat(row["birth_date"])
        except ValueError:
            return float("nan")
        at = row["generated_ts"] if not pd.isna(row["generated_ts"]) else row["ingestion_ts"]
        day = at.tz_convert("UTC").date()
        return float(day.year - born.year - ((day.month, day.day) < (born.month, born.day)))

    rows["age"] = rows.apply(age, axis=1)
    return rows


def test_the_federated_fit_over_the_joined_view_equals_pooled_statsmodels(root: Path) -> None:
    spec = load_spec(DEMO_SPEC)  # the demo's own analysis spec
    assert spec.table == PATIENT_RISK_FACTORS.name
    with local_federation(root, list(SIZES)) as hub:
        coordinator = hub.coordinator(RunConfig(tuple(SIZES), max_rounds=spec.max_iter))
        fit = fit_spec(coordinator, spec)
        coordinator.finish()
        assert not coordinator.rejected
    rows = pooled_rows(root)
    joined = len(rows)
    rows = rows.dropna(subset=["age", "bmi", "variant_apoe4"])
    rows = rows[rows["gender"].isin(["female", "male"])]
    x = pd.DataFrame({"intercept": 1.0, **{c: rows[c].astype(float) for c in spec.covariates},
                      "sex[male]": (rows["gender"] == "male").astype(float)})
    pooled = sm.GLM(rows["diagnosis_cancer"].astype(float), x,
                    family=sm.families.Binomial()).fit(tol=1e-12)
    assert [t.name for t in fit.terms] == list(x.columns)
    assert fit.n == len(rows) and sum(fit.excluded_per_node.values()) == joined - len(rows)
    assert joined - len(rows) > 0  # the awkward rows were there, and left out
    np.testing.assert_allclose(fit.coefficients, pooled.params.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(fit.std_errors, pooled.bse.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose([(t.ci_low, t.ci_high) for t in fit.terms],
                               pooled.conf_int().to_numpy(), atol=1e-6)


def test_the_view_is_bigquery_sql_over_two_datasets() -> None:
    sql = PATIENT_RISK_FACTORS.bigquery_sql("proj", "hospital_data", {"clinical": "clinical"})
    parsed = sqlglot.parse_one(sql, read="bigquery")
    tables = {f"{t.catalog}.{t.db}.{t.name}" for t in parsed.find_all(sqlglot.exp.Table)}
    assert tables == {"proj.hospital_data.variant_features", "proj.clinical.patients",
                      "proj.clinical.clinical_features"}
    with pytest.raises(ValueError, match="no dataset for domain 'clinical'"):
        PATIENT_RISK_FACTORS.bigquery_sql("proj", "hospital_data")
