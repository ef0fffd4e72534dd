"""Federation messages: the Avro record of message_schema.avsc in its JSON encoding, signed.

Every message carries its sender's Ed25519 signature over the whole record (with the
`signature` field empty), a random nonce and an expiry. Receivers verify the signature
against the pinned roster (roster.py) and refuse replays (ReplayGuard): a message
whose nonce was seen before, that has expired, or that lives longer than MAX_TTL_S.

Pub/Sub validates the record against the schema on the hub topics; `decode` checks it
again on receipt with limits the schema cannot express: size, nesting depth, integer
digits, finite and bounded numbers, array lengths. A message that fails any check raises
MessageRejectedError with the reason; nothing a sender can put in a message makes a
reader crash.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any

from workloads.contracts.nodes import NODE_NAME
from workloads.federation import identity
from workloads.federation.roster import HUB, Roster

SCHEMA_VERSION = 2
MAX_VALUES = 4096  # per array: far above any model dimension, far below any row count
MAX_MAP_ENTRIES = 512
MAX_STRING = 4096  # one map value (a hex share ciphertext is ~1 KB)
MAX_MESSAGE_BYTES = 256 * 1024
MAX_DEPTH = 4  # the record nests 3 deep (record > payload > map); deeper is hostile
MAX_INT_DIGITS = 20  # int64 has 19 digits
MAX_ABS_VALUE = 1e15  # public doubles (coefficients, released statistics) beyond this are junk
MAX_TTL_S = 3600.0  # a message may not claim to live longer than this
CLOCK_SKEW_S = 120.0
HUB_KINDS = ("setup", "share", "round", "check", "unmask", "done", "abort")
NODE_KINDS = ("keys", "shares", "masked", "commit", "reveal", "release", "abort")
KINDS = tuple(dict.fromkeys(HUB_KINDS + NODE_KINDS))
_INT64 = (-(2**63), 2**63 - 1)
_SIGNING_CONTEXT = b"sovereign-federation-message|v2|"


class MessageRejectedError(Exception):
    """A message that must not be used: malformed, too large, unsigned, replayed..."""


@dataclass(frozen=True)
class Message:
    run_id: str
    round: int
    node: str  # the sender: a node name or "hub"
    algorithm: str
    kind: str
    to: tuple[str, ...] = ()
    values: tuple[float, ...] = ()
    masked: tuple[int, ...] = ()
    keys: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    nonce: str = ""
    sent_at: int = 0
    expires_at: int = 0
    signature: str = ""
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> tuple[str, int, str, str]:
        """Deduplication key: at-least-once delivery may repeat a message."""
        return (self.run_id, self.round, self.node, self.kind)

    def _record(self) -> dict[str, Any]:
        return {
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
                "keys": dict(sorted(self.keys.items())),
                "blobs": dict(sorted(self.blobs.items())),
                "params": dict(sorted(self.params.items())),
            },
            "nonce": self.nonce,
            "sent_at": self.sent_at,
            "expires_at": self.expires_at,
            "signature": self.signature,
        }

    def signed_payload(self) -> bytes:
        """The bytes the signature covers: the record with an empty signature."""
        record = self._record()
        record["signature"] = ""
        return _SIGNING_CONTEXT + _dump(record)

    def sign(self, signer: identity.Signer, ttl_s: float = 600.0) -> Message:
        now = int(time.time() * 1000)
        unsigned = replace(
            self,
            nonce=secrets.token_hex(16),
            sent_at=now,
            expires_at=now + int(min(ttl_s, MAX_TTL_S) * 1000),
            signature="",
        )
        return replace(unsigned, signature=signer.sign(unsigned.signed_payload()).hex())

    def encode(self) -> bytes:
        for name, values in (("values", self.values),):
            if not all(math.isfinite(v) and abs(v) <= MAX_ABS_VALUE for v in values):
                raise MessageRejectedError(f"{name} holds a non-finite or out-of-range number")
        data = _dump(self._record())
        if len(data) > MAX_MESSAGE_BYTES:
            raise MessageRejectedError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
        return data

    def verified_by(self, roster: Roster) -> bool:
        key = roster.key_of(self.node)
        if key is None or not self.signature:
            return False
        try:
            signature = bytes.fromhex(self.signature)
        except ValueError:
            return False
        return identity.verify(key, self.signed_payload(), signature)


def _dump(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode()


def _reject_constant(name: str) -> Any:
    raise MessageRejectedError(f"{name} is not a number JSON allows")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise MessageRejectedError(f"an integer of {len(text)} digits")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > 40:
        raise MessageRejectedError(f"a number of {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):
        raise MessageRejectedError(f"number {text[:20]} is not finite")
    return value


def _depth(data: bytes) -> int:
    """Deepest nesting of [ and { outside strings (checked before json parses it)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_DEPTH:
                return depth
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def decode(data: bytes) -> Message:
    """Parse and check one message; raises MessageRejectedError with the reason.

    Checks the shape only; the caller checks the signature (`verified_by`) and replays.
    """
    if not isinstance(data, bytes | bytearray):
        raise MessageRejectedError("not bytes")
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageRejectedError(f"{len(data)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    if _depth(bytes(data)) > MAX_DEPTH:
        raise MessageRejectedError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        record = json.loads(
            data,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MessageRejectedError(f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(record, dict):
        raise MessageRejectedError("not a JSON object")
    version = _typed(record, "schema_version", int)
    if version != SCHEMA_VERSION:
        raise MessageRejectedError(f"schema_version {version} is not {SCHEMA_VERSION}")
    node = _typed(record, "node", str)
    if node != HUB and not NODE_NAME.match(node):
        raise MessageRejectedError(f"sender {node[:40]!r} is not a node name or {HUB!r}")
    kind = _typed(record, "kind", str)
    if kind not in KINDS:
        raise MessageRejectedError(f"kind {kind[:40]!r} is not one of {', '.join(KINDS)}")
    payload = _typed(record, "payload", dict)
    to = _typed(record, "to", list)
    values = _typed(payload, "values", list)
    masked = _typed(payload, "masked", list)
    for name, array in (("to", to), ("values", values), ("masked", masked)):
        if len(array) > MAX_VALUES:
            raise MessageRejectedError(f"{name} has {len(array)} entries, more than {MAX_VALUES}")
    if not all(isinstance(v, str) and NODE_NAME.match(v) for v in to):
        raise MessageRejectedError("to must hold node names")
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and abs(v) <= MAX_ABS_VALUE
        for v in values
    ):
        raise MessageRejectedError(f"values must be numbers within +-{MAX_ABS_VALUE:g}")
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and _INT64[0] <= v <= _INT64[1]
        for v in masked
    ):
        raise MessageRejectedError("masked must be 64-bit integers")
    run_id = _typed(record, "run_id", str)
    if not 0 < len(run_id) <= 64:
        raise MessageRejectedError("run_id must be 1-64 characters")
    round_ = _typed(record, "round", int)
    if not 0 <= round_ < 2**31:
        raise MessageRejectedError(f"round {round_} is out of range")
    return Message(
        run_id=run_id,
        round=round_,
        node=node,
        algorithm=_short(_typed(record, "algorithm", str), "algorithm"),
        kind=kind,
        to=tuple(to),
        values=tuple(float(v) for v in values),
        masked=tuple(masked),
        keys=_string_map(payload, "keys"),
        blobs=_string_map(payload, "blobs"),
        params=_string_map(payload, "params"),
        nonce=_short(_typed(record, "nonce", str), "nonce"),
        sent_at=_typed(record, "sent_at", int),
        expires_at=_typed(record, "expires_at", int),
        signature=_short(_typed(record, "signature", str), "signature", 256),
        schema_version=version,
    )


def _short(value: str, name: str, limit: int = 64) -> str:
    if len(value) > limit:
        raise MessageRejectedError(f"{name} is longer than {limit} characters")
    return value


def _typed(record: dict[str, Any], name: str, kind: type) -> Any:
    if name not in record:
        raise MessageRejectedError(f"field {name!r} is missing")
    value = record[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MessageRejectedError(f"field {name!r} is not of type {kind.__name__}")
    return value


def _string_map(payload: dict[str, Any], name: str) -> dict[str, str]:
    mapping = _typed(payload, name, dict)
    if len(mapping) > MAX_MAP_ENTRIES or not all(
        isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= MAX_STRING
        for k, v in mapping.items()
    ):
        raise MessageRejectedError(f"{name} must map short names to strings")
    return dict(mapping)


@dataclass
class ReplayGuard:
    """Refuses a message seen before (by nonce), expired, or claiming too long a life."""

    seen: dict[str, int] = field(default_factory=dict)  # nonce -> expires_at (ms)

    def check(self, message: Message, now_ms: int | None = None) -> None:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if message.expires_at < now:
            raise MessageRejectedError(f"expired {(now - message.expires_at) / 1000:.0f} s ago")
        if message.expires_at - message.sent_at > MAX_TTL_S * 1000:
            raise MessageRejectedError("claims a lifetime longer than the protocol allows")
        if message.sent_at > now + CLOCK_SKEW_S * 1000:
            raise MessageRejectedError("sent in the future")
        if len(message.nonce) < 16:
            raise MessageRejectedError("nonce too short")
        if message.nonce in self.seen:
            raise MessageRejectedError(f"replay of nonce {message.nonce}")
        self.seen[message.nonce] = message.expires_at
        if len(self.seen) > 100_000:  # forget expired nonces (they are refused by expiry)
            self.seen = {n: e for n, e in self.seen.items() if e >= now}


def accept(data: bytes, roster: Roster, guard: ReplayGuard) -> Message:
    """decode + signature against the roster + replay check: the one way to read a message."""
    message = decode(data)
    if not message.verified_by(roster):
        raise MessageRejectedError(
            f"signature of {message.node!r} does not verify against the pinned roster"
        )
    guard.check(message)
    return message
