"""Every policy of the pack, in review order, and running them all over a stack."""

from __future__ import annotations

from collections.abc import Iterable

from . import (
    attested,
    confidential,
    encryption,
    governance,
    hub,
    identity,
    network,
    principals,
    sovereignty,
    storage,
)
from .model import CapturedLike, Policy, PolicyConfig, Resource, Violation, resource_from

POLICIES: tuple[Policy, ...] = (
    *encryption.POLICIES,
    *sovereignty.POLICIES,
    *confidential.POLICIES,
    *network.POLICIES,
    *identity.POLICIES,
    *storage.POLICIES,
    *principals.POLICIES,
    *governance.POLICIES,
    *hub.POLICIES,
    *attested.POLICIES,
)

_BY_NAME = {p.name: p for p in POLICIES}
if len(_BY_NAME) != len(POLICIES):
    raise RuntimeError("two policies share a name")


def policy_named(name: str) -> Policy:
    return _BY_NAME[name]


def evaluate(resources: Iterable[CapturedLike | Resource], config: PolicyConfig) -> list[Violation]:
    """Every violation of every policy, in policy order then resource order."""
    stack = [resource_from(r) for r in resources]
    return [v for policy in POLICIES for v in policy.violations(stack, config)]
