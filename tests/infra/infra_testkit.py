"""Helpers for reading captured resources in the infra tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from infra.capture import REPO_ROOT, CapturedResource


def of_type(resources: list[CapturedResource], suffix: str) -> list[CapturedResource]:
    """Resources whose type token ends with `suffix` (e.g. ":Bucket")."""
    return [r for r in resources if r.type.endswith(suffix)]


def one(resources: list[CapturedResource], suffix: str) -> CapturedResource:
    found = of_type(resources, suffix)
    assert len(found) == 1, f"expected one {suffix}, found {[r.name for r in found]}"
    return found[0]


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, leaf value) in nested inputs."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")
    else:
        yield path, value


def stack_file(stack: str) -> dict[str, Any]:
    """The committed stack file's config, keys without the namespace."""
    data = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())
    return {k.split(":", 1)[1]: v for k, v in data["config"].items()}


# The federation worker deployed on a node (a digest and Confidential Space's image project),
# and the hub output its StackReference reads (a pinned roster).
DIGEST = "sha256:" + "ab" * 32
WORKER_ON = {"workerImageDigest": DIGEST, "confidentialSpaceImageProjectNumber": "100000000088"}
HUB_ROSTER = {"organization/sovereign-genomics/hub": {"roster": '{"roster": "pinned"}'}}
# The hub with every key pinned (a complete roster) and the coordinator's digest.
PINNED_KEYS = {"hub": "11" * 32, "us": "22" * 32, "eu": "33" * 32, "sg": "44" * 32}
HUB_ON = {
    "coordinatorImageDigest": DIGEST,
    "hubSigningKey": PINNED_KEYS["hub"],
    "nodes": [
        {"name": n, "project": f"fed-node-{n}", "signingKey": PINNED_KEYS[n]}
        for n in ("us", "eu", "sg")
    ],
}
