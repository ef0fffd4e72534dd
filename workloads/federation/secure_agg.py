"""Pairwise-masked secure aggregation: the hub can read only the sum over nodes.

Each node encodes its vector in fixed point as integers mod 2^64. For every other
participant it derives a shared secret by X25519 (public keys travel through the hub)
and expands it with HKDF-SHA256 into a mask per (run, round, vector slot): the node
with the smaller name adds the mask, the other subtracts it, so all masks cancel in the
sum and each single upload is uniformly distributed mod 2^64.

Dropout: a missing node's masks do not cancel, so the round is void. The coordinator
re-runs it with the survivors under fresh keys (a new key exchange), if they still meet
the quorum; there is no mask recovery (no secret sharing of keys).
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from workloads.contracts.errors import UserError

MAX_NODES = 16  # the sum of this many nodes' values must stay inside int64
FRACTION_BITS = 28  # fixed-point resolution 2^-28 ~ 4e-9
# Per node |value| < 2^63 / MAX_NODES / 2^FRACTION_BITS = 2^31 ~ 2.1e9 (a Hessian entry
# of a node with ~10^8 patients), so no sum over MAX_NODES nodes can wrap around.
_LIMIT = 2.0**63 / MAX_NODES
_HKDF_BLOCK = 1020  # HKDF-SHA256 yields at most 255 * 32 bytes = 1020 uint64 per call


def new_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_hex(key: X25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def shared_secret(own: X25519PrivateKey, peer_public_hex: str) -> bytes:
    try:
        peer = X25519PublicKey.from_public_bytes(bytes.fromhex(peer_public_hex))
    except ValueError as exc:
        raise ValueError(f"invalid X25519 public key: {exc}") from None
    return own.exchange(peer)


def encode(values: np.ndarray, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
    """Fixed point: round(x * 2^bits) as uint64 (two's complement for negatives)."""
    scaled = np.rint(np.asarray(values, dtype=np.float64) * 2.0**fraction_bits)
    if not np.all(np.isfinite(scaled)) or np.any(np.abs(scaled) >= _LIMIT):
        raise UserError(
            f"a statistic exceeds the fixed-point range +-{_LIMIT / 2.0**fraction_bits:.3g}; "
            f"fix: lower the fraction bits or scale the features"
        )
    return scaled.astype(np.int64).view(np.uint64)


def decode(total: np.ndarray, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
    return np.asarray(total, dtype=np.uint64).view(np.int64).astype(np.float64) / (
        2.0**fraction_bits
    )


def pair_mask(secret: bytes, context: str, length: int) -> np.ndarray:
    """The mask a pair shares for one (run, round) context: `length` uniform uint64 slots."""
    blocks = []
    for start in range(0, length, _HKDF_BLOCK):
        count = min(_HKDF_BLOCK, length - start)
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=8 * count,
            salt=None,
            info=f"sovereign-federation-mask|{context}|slot{start}".encode(),
        )
        blocks.append(np.frombuffer(hkdf.derive(secret), dtype="<u8"))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.uint64)


def mask(
    encoded: np.ndarray,
    own_node: str,
    own_key: X25519PrivateKey,
    peer_public_keys: dict[str, str],
    context: str,
) -> np.ndarray:
    """Add (+/-) every pairwise mask to an encoded vector; the masks cancel in the sum."""
    out = np.array(encoded, dtype=np.uint64, copy=True)
    for peer, public in sorted(peer_public_keys.items()):
        if peer == own_node:
            continue
        m = pair_mask(shared_secret(own_key, public), context, len(out))
        # uint64 arithmetic wraps mod 2^64, which is exactly the group we need.
        with np.errstate(over="ignore"):
            out = out + m if own_node < peer else out - m
    return out


def to_wire(masked: np.ndarray) -> list[int]:
    """uint64 -> signed longs (Avro has no unsigned type)."""
    return [int(v) for v in np.asarray(masked, dtype=np.uint64).view(np.int64)]


def from_wire(values: tuple[int, ...] | list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).view(np.uint64)


def aggregate(uploads: list[np.ndarray]) -> np.ndarray:
    """Sum of masked uploads mod 2^64 (the masks cancel when every participant is in)."""
    total = np.zeros_like(uploads[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for upload in uploads:
            total = total + upload
    return total
