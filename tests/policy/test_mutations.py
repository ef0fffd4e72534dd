"""Every policy is proven by breaking exactly one thing in a real captured stack."""

from __future__ import annotations

import pytest

from infra.policy.sovereign_policies import POLICIES
from tests.policy.mutations import MUTATIONS, REFERENCE, Row, matrix, stacks_under_test

ROWS = matrix(stacks_under_test())


def _id(row: Row) -> str:
    return f"{row.stack}: {row.mutation.name}"


@pytest.mark.parametrize("row", [r for r in ROWS if r.applicable], ids=_id)
def test_mutation_trips_exactly_the_intended_policies(row: Row) -> None:
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


def test_every_mutation_applies_somewhere() -> None:
    applied = {r.mutation.name for r in ROWS if r.applicable}
    assert applied == {m.name for m in MUTATIONS}
