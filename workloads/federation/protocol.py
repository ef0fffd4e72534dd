"""Federation messages: the Avro record of message_schema.avsc in its JSON encoding.

Pub/Sub validates messages against the schema on the hub topics; this module validates
them again on receipt (the in-process transport and the emulator-less paths have no
schema check, and Avro cannot bound array lengths), so every reader applies one rule set.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from workloads.contracts.nodes import NODE_NAME

SCHEMA_VERSION = 1
MAX_VALUES = 4096  # per array: far above any model dimension, far below any row count
MAX_MESSAGE_BYTES = 256 * 1024
HUB = "hub"
KINDS = ("announce", "public_key", "result", "abort", "done")
_INT64 = (-(2**63), 2**63 - 1)


class MessageRejectedError(Exception):
    """A message that must not be used: malformed, too large, or from the wrong party."""


@dataclass(frozen=True)
class Message:
    run_id: str
    round: int
    node: str
    algorithm: str
    kind: str
    to: tuple[str, ...] = ()
    values: tuple[float, ...] = ()
    masked: tuple[int, ...] = ()
    public_keys: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    sent_at: int = 0
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> tuple[str, int, str, str]:
        """Deduplication key: at-least-once delivery may repeat a message."""
        return (self.run_id, self.round, self.node, self.kind)

    def encode(self) -> bytes:
        record: dict[str, Any] = {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "round": self.round,
            "node": self.node,
            "to": list(self.to),
            "algorithm": self.algorithm,
            "kind": self.kind,
            "payload": {
                "values": [float(v) for v in self.values],
                "masked": [int(v) for v in self.masked],
                "public_keys": dict(self.public_keys),
                "params": dict(self.params),
            },
            "sent_at": self.sent_at or int(time.time() * 1000),
        }
        data = json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
        if len(data) > MAX_MESSAGE_BYTES:
            raise MessageRejectedError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
        return data


def decode(data: bytes) -> Message:
    """Parse and check one message; raises MessageRejectedError with the reason."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageRejectedError(f"{len(data)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageRejectedError(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise MessageRejectedError("not a JSON object")
    version = _typed(record, "schema_version", int)
    if version != SCHEMA_VERSION:
        raise MessageRejectedError(f"schema_version {version} is not {SCHEMA_VERSION}")
    node = _typed(record, "node", str)
    if node != HUB and not NODE_NAME.match(node):
        raise MessageRejectedError(f"sender {node!r} is not a node name or {HUB!r}")
    kind = _typed(record, "kind", str)
    if kind not in KINDS:
        raise MessageRejectedError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    payload = _typed(record, "payload", dict)
    to = _typed(record, "to", list)
    values = _typed(payload, "values", list)
    masked = _typed(payload, "masked", list)
    for name, array in (("to", to), ("values", values), ("masked", masked)):
        if len(array) > MAX_VALUES:
            raise MessageRejectedError(f"{name} has {len(array)} entries, more than {MAX_VALUES}")
    if not all(isinstance(v, str) for v in to):
        raise MessageRejectedError("to must hold node names")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise MessageRejectedError("values must be numbers")
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and _INT64[0] <= v <= _INT64[1]
        for v in masked
    ):
        raise MessageRejectedError("masked must be 64-bit integers")
    keys = _string_map(payload, "public_keys")
    params = _string_map(payload, "params")
    return Message(
        run_id=_typed(record, "run_id", str),
        round=_typed(record, "round", int),
        node=node,
        algorithm=_typed(record, "algorithm", str),
        kind=kind,
        to=tuple(to),
        values=tuple(float(v) for v in values),
        masked=tuple(masked),
        public_keys=keys,
        params=params,
        sent_at=_typed(record, "sent_at", int),
        schema_version=version,
    )


def _typed(record: dict[str, Any], name: str, kind: type) -> Any:
    if name not in record:
        raise MessageRejectedError(f"field {name!r} is missing")
    value = record[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MessageRejectedError(f"field {name!r} is not of type {kind.__name__}")
    return value


def _string_map(payload: dict[str, Any], name: str) -> dict[str, str]:
    mapping = _typed(payload, name, dict)
    if len(mapping) > MAX_VALUES or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= 256 for k, v in mapping.items()
    ):
        raise MessageRejectedError(f"{name} must map names to short strings")
    return dict(mapping)
