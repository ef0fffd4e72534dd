"""The SQL on FHIR v2 conformance suite: every `shareable` case must pass."""

from __future__ import annotations

import json
from typing import Any

import pytest
from clinical_helpers import CONFORMANCE

from workloads.clinical.viewdef import ViewDefinition, ViewError


def _cases(shareable: bool) -> list[Any]:
    out = []
    for path in sorted(CONFORMANCE.glob("*.json")):
        suite = json.loads(path.read_text())
        for case in suite["tests"]:
            if ("shareable" in case.get("tags", [])) == shareable:
                out.append(pytest.param(suite["resources"], case,
                                        id=f"{path.stem}: {case['title']}"))
    return out


def _key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True)


def _check(resources: list[dict[str, Any]], case: dict[str, Any]) -> None:
    if "expectError" in case:
        with pytest.raises(ViewError):
            list(ViewDefinition(case["view"]).run(resources))
        return
    view = ViewDefinition(case["view"])
    rows = list(view.run(resources))
    # A view's rows are a set (SQL gives no order): compare as multisets.
    assert sorted(map(_key, rows)) == sorted(map(_key, case["expect"]))
    if "expectColumns" in case:
        assert view.columns == case["expectColumns"]


def test_suite_size() -> None:
    assert len(_cases(True)) == 123
    assert len(_cases(True)) + len(_cases(False)) == 134


@pytest.mark.parametrize(("resources", "case"), _cases(shareable=True))
def test_shareable(resources: list[dict[str, Any]], case: dict[str, Any]) -> None:
    _check(resources, case)


@pytest.mark.parametrize(("resources", "case"), _cases(shareable=False))
def test_optional(resources: list[dict[str, Any]], case: dict[str, Any]) -> None:
    if "Boundary()" in json.dumps(case["view"]):
        pytest.xfail("lowBoundary()/highBoundary() are not implemented by fhirpathpy 2.x")
    _check(resources, case)


def test_column_with_many_values_is_an_error() -> None:
    view = ViewDefinition({"resource": "Patient", "select": [
        {"column": [{"name": "given", "path": "name.given"}]}]})
    with pytest.raises(ViewError, match="collection"):
        list(view.run([{"resourceType": "Patient", "id": "p", "name": [{"given": ["a", "b"]}]}]))
