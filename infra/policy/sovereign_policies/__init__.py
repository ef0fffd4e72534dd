"""Policies for sovereign nodes, as pure functions over resources (no pulumi_gcp, no infra).

The same functions run inside the CrossGuard pack (see pack.py) and in pytest over the
resources captured from the mocked stacks. Imports here are relative only, so the package
works both as `sovereign_policies` (the pack's directory on sys.path) and as
`infra.policy.sovereign_policies` (the repository on sys.path).
"""

from .catalog import POLICIES, evaluate, policy_named
from .model import PolicyConfig, Resource, Severity, Violation, resource_from

__all__ = [
    "POLICIES",
    "PolicyConfig",
    "Resource",
    "Severity",
    "Violation",
    "evaluate",
    "policy_named",
    "resource_from",
]
