"""Specs and cohorts: every mistake is a UserError naming the column and the fix, and no
hostile text can become SQL (injection, subqueries, functions, comments are refused)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from tests.workloads.analysis.analysis_data import TABLES, VISITS
from workloads.analysis import cohort
from workloads.analysis.spec import from_dict, load_spec, validate
from workloads.contracts.errors import UserError
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA

BASE = {"table": "patient_genomic_data", "outcome": "diagnosis_cancer", "covariates": ["age"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"table": "no_such_table"}, r"table 'no_such_table' is not declared; fix: use one of"),
        ({"outcome": "cancer"}, r"outcome 'cancer' is not a column .*fix: use one of"),
        ({"covariates": ["age", "height"]}, r"covariate 'height' is not a column"),
        ({"covariates": ["patient_id"]}, r"patient_id .* not releasable; fix"),
        ({"covariates": ["age", "age"]}, r"age is used twice"),
        ({"covariates": ["diagnosis_cancer"]}, r"diagnosis_cancer is used twice"),
        ({"family": "probit"}, r"family 'probit' is unknown; fix: use one of logistic"),
        ({"family": "poisson", "outcome": "bmi"}, r"outcome bmi .* not a count.*fix"),
        ({"outcome": "bmi"}, r"outcome bmi .* not a 0/1 column.*fix: use family linear"),
        ({"categorical": {"variant_brca1": "3"}}, r"reference level '3' of variant_brca1"),
        ({"categorical": ["bmi"]}, r"categorical bmi has no declared levels"),
        ({"colour": "red"}, r"unknown key\(s\) colour"),
        ({"max_iter": 0}, r"max_iter must be"),
    ],
)
def test_bad_spec_names_the_problem(change: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        validate(from_dict({**BASE, **change}))


def test_non_releasable_column_is_refused_everywhere() -> None:
    base = {"table": VISITS.name, "outcome": "visits", "family": "poisson"}
    for change in ({"covariates": ["postcode"]}, {"categorical": ["postcode"]},
                   {"cohort": "postcode = 'P1'"}):
        with pytest.raises(UserError, match="postcode of test_clinic_visits is not releasable"):
            validate(from_dict({**base, **change}), TABLES)


def test_spec_files_json_and_yaml_give_the_same_spec(tmp_path: Path) -> None:
    data = {**BASE, "categorical": {"variant_brca1": None}, "cohort": "age > 40"}
    (tmp_path / "a.json").write_text(json.dumps(data))
    (tmp_path / "a.yaml").write_text(
        "table: patient_genomic_data\noutcome: diagnosis_cancer\ncovariates: [age]\n"
        "categorical: {variant_brca1: null}\ncohort: age > 40\n")
    assert load_spec(tmp_path / "a.json") == load_spec(tmp_path / "a.yaml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match=r"bad.json: not valid JSON at line 1"):
        load_spec(tmp_path / "bad.json")
    with pytest.raises(UserError, match="cannot read spec"):
        load_spec(tmp_path / "missing.json")


@pytest.mark.parametrize(
    "text",
    [
        "1=1; DROP TABLE patient_genomic_data",
        "age > 30; DROP TABLE patient_genomic_data",
        "age > 30 -- comment",
        "age > 30 /* comment */",
        "age IN (SELECT age FROM patient_genomic_data)",
        "age > (SELECT 1)",
        "EXISTS (SELECT 1)",
        "exp(age) > 1",
        "age > abs(-1)",
        "ABS(age) > 1",
        "age = age",
        "age > 30 OR 1 = 1",
        "age > 30 OR TRUE",
        "'a' = 'a'",
        "age + 1 > 30",
        "age > 0x10",
        "age > 1e400",
        "bmi > 20 UNION SELECT * FROM x",
        "patient_id = 'US-0001'",
        "variant_brca1 = 'x'",
        "age = '30'",
        "age > 30 AND",
        "(age > 30",
        "age BETWEEN 30",
        "age NOT = 3",
        "main.patient_genomic_data.age > 3",
        "age > @p",
        "age > ?",
        "age > $1",
        "age > 30\x00",
        "age > 30 \\",
        "age ＞ 30",  # a full-width sign, not '>'
        "(" * 40 + "age > 1" + ")" * 40,
        "NOT " * 40 + "age > 1",
        "x" * 3000,
    ],
)
def test_hostile_cohorts_are_refused(text: str) -> None:
    with pytest.raises(UserError, match="cohort"):
        cohort.parse(text, PATIENT_GENOMIC_DATA)


def test_string_literal_cannot_escape() -> None:
    with pytest.raises(UserError):
        cohort.parse("sex = 'F'' OR 1=1 --'", VISITS)
    with pytest.raises(UserError):
        cohort.parse("sex = 'F\\' OR 1=1 --'", VISITS)


def test_good_cohort_renders_only_allowed_nodes() -> None:
    tree = cohort.parse(
        "(age BETWEEN 30 AND 60 OR NOT smoker IN (1)) AND sex != 'M' AND age >= -1.5e1", VISITS)
    assert tree is not None
    assert {type(n) for n in tree.walk()} <= set(cohort.ALLOWED_NODES)
    for dialect in ("duckdb", "bigquery"):
        rendered = tree.sql(dialect=dialect)
        again = sqlglot.parse_one(rendered, read=dialect)
        assert again.sql(dialect=dialect) == rendered
    assert cohort.parse("   ", VISITS) is None


@pytest.mark.parametrize(
    "sql",
    ["age > (SELECT 1)", "EXP(age) > 1", "age IN (SELECT 1)", "t.age > 1", "age > 1 + 1",
     "age > CAST('1' AS INT)"],
)
def test_allow_list_refuses_foreign_trees(sql: str) -> None:
    """Defence in depth: a tree built by anything but our parser is still checked."""
    with pytest.raises(UserError, match="cohort"):
        cohort.check_tree(sqlglot.parse_one(sql), PATIENT_GENOMIC_DATA)


def test_allow_list_has_no_statement_or_function_types() -> None:
    for node_type in cohort.ALLOWED_NODES:
        assert not issubclass(node_type, (exp.Query, exp.Command, exp.DDL, exp.Anonymous))
        # sqlglot models AND/OR as functions; no other function type is allowed.
        assert not issubclass(node_type, exp.Func) or node_type in (exp.And, exp.Or)


def test_shipped_examples_are_valid() -> None:
    from workloads.analysis import statistics
    from workloads.analysis.spec import read_mapping

    examples = Path(__file__).resolve().parents[3] / "workloads" / "analysis" / "examples"
    validate(load_spec(examples / "cancer_risk.json"))
    statistics.plan(statistics.from_dict(read_mapping(examples / "patients_stats.json")))
