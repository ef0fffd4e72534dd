"""Secure aggregation primitives (Bonawitz et al., CCS 2017; Flower's SecAgg+).

Each node u holds, per run, two X25519 key pairs: c (to encrypt secret shares to its
peers) and s (to agree pairwise mask seeds), advertised with its long-term signature.
For each aggregation slot r it uses a fresh self-mask seed b_u^r. Its upload is

    y_u = encode(x_u) + PRG(b_u^r) + sum_{v > u} PRG(s_uv, r) - sum_{v < u} PRG(s_uv, r)  (mod 2^64)

so the pairwise masks cancel in the sum over all participants and the self mask is
removed by reconstructing b_u^r from t Shamir shares held by the other nodes. If v drops
after the masks were fixed, its s private key is reconstructed from t shares instead, and
its pairwise masks with the survivors are removed. An honest node reveals, per node and
slot, either b (the node survived) or s (it dropped), never both; so a late upload of a
node declared dropped stays hidden behind its self mask.

The fixed-point encoding (2^-FRACTION_BITS resolution, |value| < 2^31 per node) keeps the
sum over MAX_NODES nodes inside int64.
"""

from __future__ import annotations

import json
import os

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from workloads.federation import shamir

MAX_NODES = 16  # the sum of this many nodes' values must stay inside int64
FRACTION_BITS = 28  # fixed-point resolution 2^-28 ~ 4e-9
VALUE_LIMIT = 2.0**63 / MAX_NODES / 2.0**FRACTION_BITS  # per-node |value| bound: 2^31
_HKDF_BLOCK = 1020  # HKDF-SHA256 yields at most 255 * 32 bytes = 1020 uint64 per call


class RangeError(ValueError):
    """A value that does not fit the fixed-point range (so it could wrap the sum)."""


def threshold(n: int) -> int:
    """Shares needed to reconstruct a seed: more than 2n/3, and at least 3 (all of them
    below three nodes: sums over one or two nodes are for DP releases only, which the node
    guard allows only under its policy's `min_dp_participants`; no dropout is recoverable).

    With the consistency check, a hub colluding with fewer than 2t - n + 1 nodes cannot
    get both the b and the s shares of an honest node for one slot.
    """
    return max(min(3, n), (2 * n) // 3 + 1)


def private_from_secret(secret: int) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(secret.to_bytes(32, "little"))


def public_hex(key: X25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def agree(own: X25519PrivateKey, peer_public_hex: str) -> bytes:
    peer = X25519PublicKey.from_public_bytes(bytes.fromhex(peer_public_hex))
    return own.exchange(peer)


def _kdf(secret: bytes, info: str, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info.encode()).derive(
        secret
    )


def prg(seed: bytes, context: str, length: int) -> np.ndarray:
    """`length` uniform uint64 values from a seed and a context (HKDF-SHA256 blocks)."""
    blocks = []
    for start in range(0, length, _HKDF_BLOCK):
        count = min(_HKDF_BLOCK, length - start)
        raw = _kdf(seed, f"sovereign-federation-mask|{context}|slot{start}", 8 * count)
        blocks.append(np.frombuffer(raw, dtype="<u8"))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.uint64)


def self_mask(b_seed: int, context: str, length: int) -> np.ndarray:
    return prg(b_seed.to_bytes(32, "big"), f"self|{context}", length)


def pair_mask(secret: bytes, context: str, length: int) -> np.ndarray:
    return prg(secret, f"pair|{context}", length)


def encode(values: np.ndarray, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
    """Fixed point: round(x * 2^bits) as uint64 (two's complement for negatives)."""
    scaled = np.rint(np.asarray(values, dtype=np.float64) * 2.0**fraction_bits)
    limit = VALUE_LIMIT * 2.0**fraction_bits
    if not np.all(np.isfinite(scaled)) or np.any(np.abs(scaled) >= limit):
        raise RangeError(
            f"a value is not finite or exceeds the fixed-point range +-{VALUE_LIMIT:.3g}"
        )
    return scaled.astype(np.int64).view(np.uint64)


def decode(total: np.ndarray, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
    return np.asarray(total, dtype=np.uint64).view(np.int64).astype(np.float64) / (
        2.0**fraction_bits
    )


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        result: np.ndarray = np.asarray(a, dtype=np.uint64) + np.asarray(b, dtype=np.uint64)
    return result


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        result: np.ndarray = np.asarray(a, dtype=np.uint64) - np.asarray(b, dtype=np.uint64)
    return result


def pairwise(own_node: str, secret: bytes, peer: str, context: str, length: int) -> np.ndarray:
    """The signed pairwise mask own_node applies for `peer` (+ if own < peer, else -)."""
    m = pair_mask(secret, context, length)
    return m if own_node < peer else sub(np.zeros(length, dtype=np.uint64), m)


def mask(
    encoded: np.ndarray,
    own_node: str,
    b_seed: int,
    s_key: X25519PrivateKey,
    peer_s_publics: dict[str, str],
    context: str,
) -> np.ndarray:
    """Double masking: self mask plus every pairwise mask (peers: the slot's participants)."""
    out = add(encoded, self_mask(b_seed, context, len(encoded)))
    for peer, public in sorted(peer_s_publics.items()):
        if peer != own_node:
            out = add(out, pairwise(own_node, agree(s_key, public), peer, context, len(out)))
    return out


def unmask(
    total: np.ndarray,
    survivors: dict[str, int],
    dropped: dict[str, int],
    s_publics: dict[str, str],
    context: str,
) -> np.ndarray:
    """Remove the survivors' self masks (b seeds) and the dropped nodes' pairwise masks
    with each survivor (from their reconstructed s private keys) from the masked sum."""
    out = np.asarray(total, dtype=np.uint64)
    for seed in survivors.values():
        out = sub(out, self_mask(seed, context, len(out)))
    for node, s_secret in dropped.items():
        key = private_from_secret(s_secret)
        for survivor in survivors:
            # The survivor applied pairwise(survivor, node); add its negation back.
            m = pairwise(survivor, agree(key, s_publics[survivor]), node, context, len(out))
            out = sub(out, m)
    return out


def to_wire(masked: np.ndarray) -> list[int]:
    """uint64 -> signed longs (Avro has no unsigned type)."""
    return [int(v) for v in np.asarray(masked, dtype=np.uint64).view(np.int64)]


def from_wire(values: tuple[int, ...] | list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).view(np.uint64)


def aggregate(uploads: list[np.ndarray]) -> np.ndarray:
    total = np.zeros_like(uploads[0], dtype=np.uint64)
    for upload in uploads:
        total = add(total, upload)
    return total


# --- node-to-node share encryption (through the hub, which cannot read them) ----------


def share_key(c_own: X25519PrivateKey, c_peer_public: str, run_id: str) -> bytes:
    return _kdf(agree(c_own, c_peer_public), f"sovereign-federation-shares|{run_id}", 32)


def seal(key: bytes, sender: str, recipient: str, run_id: str, content: dict[str, object]) -> str:
    nonce = os.urandom(12)
    aad = f"{run_id}|{sender}|{recipient}".encode()
    return (nonce + AESGCM(key).encrypt(nonce, json.dumps(content).encode(), aad)).hex()


def open_sealed(
    key: bytes, sender: str, recipient: str, run_id: str, blob: str
) -> dict[str, object]:
    """Decrypts and authenticates a peer's shares; raises ValueError if tampered with."""
    try:
        raw = bytes.fromhex(blob)
        aad = f"{run_id}|{sender}|{recipient}".encode()
        content = json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], aad))
    except Exception as exc:  # InvalidTag, ValueError, JSON errors: all mean "not genuine"
        raise ValueError(f"shares from {sender} do not decrypt: {type(exc).__name__}") from None
    if not isinstance(content, dict):
        raise ValueError(f"shares from {sender} are not a record")
    return content


def share_indices(participants: tuple[str, ...]) -> dict[str, int]:
    """Each participant's Shamir x-coordinate: its 1-based position in the sorted set."""
    return {node: i for i, node in enumerate(sorted(participants), start=1)}


def split(secret: int, participants: tuple[str, ...], t: int) -> dict[str, int]:
    indices = share_indices(participants)
    shares = shamir.split(secret, len(indices), t)
    return {node: shares[x] for node, x in indices.items()}
