"""Checkov findings the stacks accept, each declared next to its resources with a reason.

Checkov honours no inline skip in plan JSON (its plan runner passes no skip comments), so
the skips are declared in the component modules, written into each plan under
`checkov_skips` for the reader, and enforced by tests/infra/test_infra_checkov.py: Checkov's
failed checks must be exactly these, and each must still be needed.
"""

from __future__ import annotations

from infra import buckets, warehouse

# (terraform type, or one resource's address, Checkov id) -> reason
SKIPS: dict[tuple[str, str], str] = {
    **{("google_storage_bucket", check): reason
       for check, reason in buckets.CHECKOV_SKIPS.items()},
    # Per table, never per type: a stored table without its key must still fail.
    **{(f"google_bigquery_table.{resource}", check): reason
       for resource in warehouse.keyless_table_resources()
       for check, reason in warehouse.KEYLESS_CHECKOV_SKIPS.items()},
}


def covers(key: tuple[str, str], address: str, check: str) -> bool:
    """Does the skip `key` accept Checkov's `check` failing on the resource at `address`?"""
    target, skipped = key
    return skipped == check and target in (address, address.split(".")[0])


def skip_reason(address: str, check: str) -> str | None:
    return next((r for key, r in SKIPS.items() if covers(key, address, check)), None)
