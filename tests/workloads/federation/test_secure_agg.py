"""Pairwise masking: masks cancel in the sum, and one upload alone looks uniform."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from scipy import stats

from workloads.contracts.errors import UserError
from workloads.federation import secure_agg


def keys(names: list[str]) -> dict[str, X25519PrivateKey]:
    # Fixed keys: the statistical tests below are deterministic.
    return {
        n: X25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32) for i, n in enumerate(names)
    }


def uploads(
    vectors: dict[str, np.ndarray], context: str, private: dict[str, X25519PrivateKey]
) -> dict[str, np.ndarray]:
    public = {n: secure_agg.public_hex(k) for n, k in private.items()}
    return {
        n: secure_agg.mask(secure_agg.encode(v), n, private[n], public, context)
        for n, v in vectors.items()
    }


def test_masks_cancel_and_the_sum_is_exact_to_fixed_point() -> None:
    rng = np.random.default_rng(0)
    names = ["eu", "sg", "us"]
    vectors = {n: rng.normal(0, 1e6, 28) for n in names}
    masked = uploads(vectors, "run|1|logreg", keys(names))
    total = secure_agg.decode(secure_agg.aggregate(list(masked.values())))
    assert np.allclose(
        total, sum(vectors.values()), rtol=0, atol=3 * 2.0**-secure_agg.FRACTION_BITS
    )
    # ... and no single upload decodes to anything near its input.
    for n in names:
        assert np.all(np.abs(secure_agg.decode(masked[n]) - vectors[n]) > 1e3)


def test_the_sum_is_unreadable_when_a_participant_is_missing() -> None:
    names = ["eu", "sg", "us"]
    vectors = {n: np.ones(6) for n in names}
    masked = uploads(vectors, "run|1|stats", keys(names))
    partial = secure_agg.decode(secure_agg.aggregate([masked["eu"], masked["us"]]))
    assert np.all(np.abs(partial - 2.0) > 1e3)


def test_wire_round_trip_is_lossless() -> None:
    values = np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64)
    assert np.array_equal(secure_agg.from_wire(secure_agg.to_wire(values)), values)


def test_values_outside_the_fixed_point_range_are_refused() -> None:
    with pytest.raises(UserError, match="fixed-point range"):
        secure_agg.encode(np.array([2.0**40]))


def test_a_single_upload_is_uniform_whatever_the_input() -> None:
    """8,000 slots of one node's masked upload (constant input) pass a chi-square test of
    uniformity on their top byte and a KS test on [0, 1); masked uploads of two very
    different inputs are indistinguishable (two-sample KS)."""
    names = ["eu", "us"]
    private = keys(names)
    zeros = {"us": np.zeros(4000), "eu": np.zeros(4000)}
    big = {"us": np.full(4000, 12345.678), "eu": np.zeros(4000)}
    seen_zero = np.concatenate([uploads(zeros, f"run|{r}|logreg", private)["us"] for r in range(2)])
    seen_big = np.concatenate([uploads(big, f"run|{r}|logreg", private)["us"] for r in range(2)])
    top_byte = (seen_zero >> np.uint64(56)).astype(np.int64)
    counts = np.bincount(top_byte, minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-3
    unit = seen_zero.astype(np.float64) / 2.0**64
    assert stats.kstest(unit, "uniform").pvalue > 1e-3
    other = seen_big.astype(np.float64) / 2.0**64
    assert stats.ks_2samp(unit, other, method="asymp").pvalue > 1e-3
    # Control: the same tests do see the unmasked encoding (they can fail).
    plain = secure_agg.encode(np.full(4000, 12345.678)).astype(np.float64) / 2.0**64
    assert stats.kstest(plain, "uniform").pvalue < 1e-6


def test_masks_differ_per_round() -> None:
    secret = b"s" * 32
    assert not np.array_equal(
        secure_agg.pair_mask(secret, "run|1|x", 8), secure_agg.pair_mask(secret, "run|2|x", 8)
    )
    assert len(secure_agg.pair_mask(secret, "run|1|x", 3000)) == 3000
