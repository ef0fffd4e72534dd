"""Shamir secret sharing over the prime field GF(2^255 - 19).

A secret s in [0, p) is the constant term of a random polynomial of degree t-1; share i
is (i, f(i)) for i = 1..n. Any t shares give s by Lagrange interpolation at 0; fewer
than t are independent of s (each value of s is equally likely). Used for the seeds of
secure aggregation (secure_agg.py): 32-byte X25519 private keys and self-mask seeds are
field elements below p.
"""

from __future__ import annotations

import secrets

PRIME = 2**255 - 19


def random_secret() -> int:
    return secrets.randbelow(PRIME)


def split(secret: int, n: int, threshold: int) -> dict[int, int]:
    """n shares {x: y} of `secret`, any `threshold` of which reconstruct it."""
    if not 0 <= secret < PRIME:
        raise ValueError("secret must be a field element")
    if not 1 <= threshold <= n:
        raise ValueError(f"threshold {threshold} must be between 1 and n = {n}")
    coefficients = [secret] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    shares = {}
    for x in range(1, n + 1):
        y = 0
        for coefficient in reversed(coefficients):  # Horner
            y = (y * x + coefficient) % PRIME
        shares[x] = y
    return shares


def combine(shares: dict[int, int]) -> int:
    """The secret from shares {x: y} (exactly `threshold` or more consistent ones)."""
    if not shares:
        raise ValueError("no shares")
    if any(not 0 < x < PRIME for x in shares):
        raise ValueError("share indices must be non-zero field elements")
    secret = 0
    for xi, yi in shares.items():
        numerator, denominator = 1, 1
        for xj in shares:
            if xj != xi:
                numerator = numerator * (-xj) % PRIME
                denominator = denominator * (xi - xj) % PRIME
        secret = (secret + yi * numerator * pow(denominator, -1, PRIME)) % PRIME
    return secret


def to_hex(value: int) -> str:
    return value.to_bytes(32, "big").hex()


def from_hex(text: str) -> int:
    raw = bytes.fromhex(text)
    if len(raw) != 32:
        raise ValueError("a share is 32 bytes")
    value = int.from_bytes(raw, "big")
    if value >= PRIME:
        raise ValueError("a share is a field element")
    return value
