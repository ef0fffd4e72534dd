"""The pinned roster: who may take part in the federation, with their public signing keys.

Every party verifies every message against this file and nothing else: there is no trust
on first use and no key learnt from the wire. Format (JSON, one file, sorted):

    {"format": "sovereign-federation-roster/1",
     "hub": {"name": "hub", "signing_key": "<64 hex: raw Ed25519 public key>"},
     "nodes": [{"name": "eu", "signing_key": "<64 hex>"}, ...]}

In the cloud, the hub's node list (Pulumi.hub.yaml `nodes`) names the nodes and each node
stack's KMS signing key gives the public key (`gcloud kms keys versions get-public-key`);
the operators of every party review and pin the same file. Locally, `write_local` creates
each party's key file and writes the roster beside the nodes (`<root>/roster.json`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from workloads.contracts.errors import UserError
from workloads.contracts.nodes import NODE_NAME, NODE_NAME_RULE
from workloads.federation import identity

FORMAT = "sovereign-federation-roster/1"
HUB = "hub"
FILE_NAME = "roster.json"


@dataclass(frozen=True)
class Roster:
    hub_key: str
    node_keys: dict[str, str]

    def key_of(self, party: str) -> str | None:
        if party == HUB:
            return self.hub_key
        return self.node_keys.get(party)

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(sorted(self.node_keys))

    def to_json(self) -> str:
        record = {
            "format": FORMAT,
            "hub": {"name": HUB, "signing_key": self.hub_key},
            "nodes": [{"name": n, "signing_key": k} for n, k in sorted(self.node_keys.items())],
        }
        return json.dumps(record, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Roster:
        try:
            record = json.loads(text)
            if record.get("format") != FORMAT:
                raise ValueError(f"format is not {FORMAT}")
            hub_key = _key(record["hub"]["signing_key"])
            nodes: dict[str, str] = {}
            for entry in record["nodes"]:
                name = entry["name"]
                if not isinstance(name, str) or not NODE_NAME.match(name) or name in nodes:
                    raise ValueError(f"node {name!r} is invalid or repeated ({NODE_NAME_RULE})")
                nodes[name] = _key(entry["signing_key"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"roster {where} is not valid: {exc}; fix: rewrite it") from None
        if len(set(nodes.values()) | {hub_key}) != len(nodes) + 1:
            raise UserError(f"roster {where}: two parties share a signing key; fix: rewrite it")
        return cls(hub_key, nodes)


def _key(value: object) -> str:
    if not isinstance(value, str) or len(value) != 64:
        raise ValueError("a signing key is 64 hex characters (raw Ed25519 public key)")
    bytes.fromhex(value)
    return value.lower()


def path(root: Path) -> Path:
    return root / FILE_NAME


def load(root: Path) -> Roster:
    where = path(root)
    if not where.exists():
        raise UserError(
            f"no federation roster at {where}; fix: create the local federation "
            f"(python -m workloads federate roster --root {root} --nodes us,eu,sg)"
        )
    return Roster.from_json(where.read_text(), str(where))


def write_local(root: Path, nodes: list[str]) -> Roster:
    """Create (or reuse) every local party's signing key and pin them in `<root>/roster.json`.

    Re-running with the same nodes changes nothing; a node added later is appended. Keys
    already pinned are never replaced (a party whose key file no longer matches its roster
    entry is an error, not a silent re-pin).
    """
    existing = load(root) if path(root).exists() else None
    keys = {n: identity.local_signer(root, n).public_hex() for n in nodes}
    hub = identity.local_signer(root, HUB).public_hex()
    if existing is not None:
        for party, key in {HUB: hub, **keys}.items():
            pinned = existing.key_of(party)
            if pinned is not None and pinned != key:
                raise UserError(
                    f"{party}'s signing key no longer matches the roster {path(root)}; fix: "
                    f"restore the key file, or remove {party} from the roster deliberately"
                )
        keys = {**existing.node_keys, **keys}
    roster = Roster(hub, keys)
    if existing != roster:
        temporary = path(root).with_suffix(".tmp")
        root.mkdir(parents=True, exist_ok=True)
        temporary.write_text(roster.to_json())
        os.replace(temporary, path(root))
    return roster
