"""Checkov findings the stacks accept, each declared next to its resources with a reason.

Checkov honours no inline skip in plan JSON (its plan runner passes no skip comments), so
the skips are declared in the component modules, written into each plan under
`checkov_skips` for the reader, and enforced by tests/infra/test_infra_checkov.py: Checkov's
failed checks must be exactly these, and each must still be needed.
"""

from __future__ import annotations

from infra import buckets

# (terraform type, Checkov id) -> reason
SKIPS: dict[tuple[str, str], str] = {
    ("google_storage_bucket", check): reason for check, reason in buckets.CHECKOV_SKIPS.items()
}
