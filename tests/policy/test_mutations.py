"""Every policy is proven by breaking exactly one thing in a real captured stack."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from infra.policy.sovereign_policies import POLICIES
from tests.policy.mutations import (
    MUTATIONS,
    NOT_APPLICABLE_PROPERTY,
    REFERENCE,
    ROW_PROPERTY,
    Row,
    matrix,
    stacks_under_test,
)

ROWS = matrix(stacks_under_test())


def _id(row: Row) -> str:
    return f"{row.stack}: {row.mutation.name}"


@pytest.mark.parametrize("row", [r for r in ROWS if r.applicable], ids=_id)
def test_mutation_trips_exactly_the_intended_policies(
    row: Row, record_property: Callable[[str, object], None]
) -> None:
    record_property(ROW_PROPERTY, json.dumps([row.stack, row.mutation.name, sorted(row.reported)]))
    assert row.reported == row.mutation.expected, "\n".join(v.message for v in row.violations)


@pytest.mark.parametrize("row", [r for r in ROWS if r.applicable], ids=_id)
def test_violation_messages_name_the_resource_and_the_fix(row: Row) -> None:
    for v in row.violations:
        assert "fix:" in v.message
        if v.resource_name is not None:
            assert f"'{v.resource_name}'" in v.message and v.resource_type in v.message
    if row.changed is not None:  # the broken resource itself is named, unless a stack-level
        stack_level = {p.name for p in POLICIES if p.kind == "stack"}  # policy reports on it
        assert any(v.urn == row.changed.urn for v in row.violations) or row.reported <= stack_level


def test_every_policy_is_broken_by_a_mutation_of_a_real_stack() -> None:
    real = [r for r in ROWS if r.applicable and r.stack != REFERENCE]
    proven = {name for r in real for name in r.mutation.expected & r.reported}
    assert proven == {p.name for p in POLICIES}


def test_every_mutation_applies_somewhere(record_property: Callable[[str, object], None]) -> None:
    not_applicable = [[r.stack, r.mutation.name] for r in ROWS if not r.applicable]
    record_property(NOT_APPLICABLE_PROPERTY, json.dumps(not_applicable))
    applied = {r.mutation.name for r in ROWS if r.applicable}
    assert applied == {m.name for m in MUTATIONS}
