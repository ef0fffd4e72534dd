"""A test-only table with a count outcome (visits) and a continuous one (systolic blood
pressure), declared with the contracts' Table/Column like any shipped table, and the
pooled reference fits (statsmodels on every row, read back in the test only)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import statsmodels.api as sm

from workloads.contracts.catalogue import ALL_TABLES
from workloads.contracts.schema import Column, Table
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

VISITS = Table(
    name="test_clinic_visits",
    description="Test only: clinic visits in a year and blood pressure per patient.",
    columns=(
        Column("patient_id", "STRING", "REQUIRED", role="identifier"),
        Column("age", "INTEGER", role="covariate", bounds=(18, 90), releasable=True),
        Column("sex", "STRING", role="category", levels=("F", "M"), releasable=True),
        Column("smoker", "INTEGER", role="category", levels=(0, 1), releasable=True),
        Column("region", "STRING", role="category", levels=("north", "south", "east"),
               releasable=True),
        Column("visits", "INTEGER", role="outcome", bounds=(0, 60), releasable=True),
        Column("sbp", "FLOAT", role="outcome", bounds=(80.0, 220.0), releasable=True),
        Column("postcode", "STRING", role="other"),  # not releasable
    ),
    primary_key=("patient_id",),
)
TABLES: tuple[Table, ...] = (*ALL_TABLES, VISITS)
_NODE_SHIFT = {"us": 0.0, "eu": 0.2, "sg": -0.3}


def visits_rows(node: str, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed + 100)
    age = rng.integers(18, 91, n)
    sex = rng.choice(["F", "M"], n)
    smoker = rng.binomial(1, 0.25, n)
    region = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2])
    shift = _NODE_SHIFT[node]
    log_rate = -1.0 + shift + 0.02 * age + 0.3 * (sex == "F") + 0.4 * smoker + 0.1 * (
        region == "east")
    visits = np.minimum(rng.poisson(np.exp(log_rate)), 60)
    sbp = np.clip(100 + 0.6 * age + 5 * smoker - 3 * (sex == "F") + rng.normal(0, 12, n),
                  80, 220)
    age_values: list[int | None] = [int(a) for a in age]
    for i in range(0, n, 97):  # some missing ages: counted as excluded, never used
        age_values[i] = None
    return pa.table(
        {
            "patient_id": [f"{node.upper()}-{i:06d}" for i in range(n)],
            "age": pa.array(age_values, pa.int64()),
            "sex": sex, "smoker": smoker.astype(np.int64), "region": region,
            "visits": visits.astype(np.int64), "sbp": np.round(sbp, 1),
            "postcode": [f"P{i % 50}" for i in range(n)],
        },
        schema=VISITS.arrow_schema(),
    )


def pooled_frame(warehouses: Mapping[str, DuckDBWarehouse], table: Table) -> pd.DataFrame:
    frames = []
    for name, warehouse in warehouses.items():
        frame = warehouse.query(f"SELECT * FROM {warehouse.table_ref(table)}").to_pandas()
        frame["node"] = name
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def pooled_glm(
    frame: pd.DataFrame,
    cohort: Callable[[pd.DataFrame], pd.Series],
    outcome: str,
    numeric: Sequence[str],
    categorical: Mapping[str, Sequence[object]],  # column -> levels, reference first
    family: sm.families.Family,
) -> tuple[sm.GLM, pd.DataFrame]:
    """statsmodels' GLM on the pooled rows, filtered and coded in pandas (independently of
    the SQL the nodes run)."""
    rows = frame[cohort(frame)]
    rows = rows.dropna(subset=[outcome, *numeric, *categorical])
    for column, levels in categorical.items():
        rows = rows[rows[column].isin(levels)]
    x = pd.DataFrame({"intercept": 1.0}, index=rows.index)
    for column in numeric:
        x[column] = rows[column].astype(float)
    for column, levels in categorical.items():
        for level in levels[1:]:
            x[f"{column}[{level}]"] = (rows[column] == level).astype(float)
    model = sm.GLM(rows[outcome].astype(float), x, family=family)
    return model.fit(tol=1e-13, maxiter=100), rows
