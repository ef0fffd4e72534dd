"""Secret sharing and double masking: properties (hypothesis) and uniformity."""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from workloads.federation import secure_agg, shamir

secrets_ = st.integers(min_value=0, max_value=shamir.PRIME - 1)


@settings(max_examples=40, deadline=None)
@given(secret=secrets_, n=st.integers(3, 9), data=st.data())
def test_any_threshold_shares_reconstruct_the_secret(secret: int, n: int, data: st.DataObject
                                                     ) -> None:
    t = secure_agg.threshold(n)
    shares = shamir.split(secret, n, t)
    chosen = data.draw(st.lists(st.sampled_from(sorted(shares)), min_size=t, max_size=n,
                                unique=True))
    assert shamir.combine({x: shares[x] for x in chosen}) == secret


@settings(max_examples=40, deadline=None)
@given(a=secrets_, b=secrets_, n=st.integers(3, 9), data=st.data())
def test_fewer_than_threshold_shares_fit_every_secret(a: int, b: int, n: int,
                                                      data: st.DataObject) -> None:
    """t-1 shares are consistent with any secret b: adding the degree t-1 polynomial g
    with g = 0 on the held points and g(0) = b - a turns the sharing of a into a sharing
    of b that agrees on every held share (so they reveal nothing about a)."""
    t = secure_agg.threshold(n)
    shares = shamir.split(a, n, t)
    seen = data.draw(st.lists(st.sampled_from(sorted(shares)), min_size=t - 1,
                              max_size=t - 1, unique=True))
    held = {x: shares[x] for x in seen}
    assert shamir.combine(held) != a  # interpolating too few shares misses the secret
    p = shamir.PRIME

    def g(x: int) -> int:
        value = (b - a) % p
        for xi in held:
            value = value * (x - xi) % p * pow(-xi % p, -1, p) % p
        return value

    of_b = {x: (y + g(x)) % p for x, y in shares.items()}
    assert all(of_b[x] == held[x] for x in held)
    assert shamir.combine(dict(list(of_b.items())[:t])) == b


def _keys(names: list[str]) -> tuple[dict[str, X25519PrivateKey], dict[str, str]]:
    keys = {n: X25519PrivateKey.generate() for n in names}
    return keys, {n: secure_agg.public_hex(k) for n, k in keys.items()}


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(3, 7),
    data=st.data(),
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=12),
)
def test_masks_cancel_over_survivors_with_any_dropouts(n: int, data: st.DataObject,
                                                       values: list[float]) -> None:
    names = [f"n{i}" for i in range(n)]
    keys, publics = _keys(names)
    b = {name: shamir.random_secret() for name in names}
    vectors = {name: np.asarray(values) * (i + 1) for i, name in enumerate(names)}
    t = secure_agg.threshold(n)
    survivors = data.draw(st.lists(st.sampled_from(names), min_size=t, max_size=n, unique=True))
    uploads = {
        name: secure_agg.mask(secure_agg.encode(vectors[name]), name, b[name], keys[name],
                              publics, "run|0")
        for name in survivors
    }
    dropped = {
        name: int.from_bytes(keys[name].private_bytes_raw(), "little") for name in names
        if name not in survivors
    }
    total = secure_agg.unmask(
        secure_agg.aggregate(list(uploads.values())),
        {name: b[name] for name in survivors},
        dropped,
        publics,
        "run|0",
    )
    expected = sum(vectors[name] for name in survivors)
    np.testing.assert_allclose(secure_agg.decode(total), expected, atol=1e-6)


def test_a_masked_upload_is_uniform_whatever_the_input() -> None:
    names = ["a", "b", "c"]
    keys, publics = _keys(names)
    uploads = {}
    for label, value in (("zeros", 0.0), ("large", 1e6)):
        vector = secure_agg.encode(np.full(4000, value))
        uploads[label] = secure_agg.mask(vector, "a", shamir.random_secret(), keys["a"],
                                         publics, f"run|{label}")
    for masked in uploads.values():
        top = (masked >> np.uint64(56)).astype(int)
        assert stats.chisquare(np.bincount(top, minlength=256)).pvalue > 1e-4
    assert stats.ks_2samp(uploads["zeros"].astype(float), uploads["large"].astype(float)
                          ).pvalue > 1e-4
    # Control: the same test sees an unmasked encoding at once.
    plain = secure_agg.encode(np.full(4000, 1e6)).astype(float)
    assert stats.ks_2samp(uploads["zeros"].astype(float), plain).pvalue < 1e-10


def test_without_the_self_mask_seed_a_recovered_node_stays_hidden() -> None:
    """Double masking: knowing a node's pairwise keys (as after it was declared dropped)
    leaves its upload uniform while its self-mask seed is unknown."""
    names = ["a", "b", "c"]
    keys, publics = _keys(names)
    vector = secure_agg.encode(np.full(2000, 5.0))
    upload = secure_agg.mask(vector, "a", shamir.random_secret(), keys["a"], publics, "r|0")
    pairwise_removed = upload
    for peer in ("b", "c"):
        m = secure_agg.pairwise("a", secure_agg.agree(keys["a"], publics[peer]), peer, "r|0",
                                len(upload))
        pairwise_removed = secure_agg.sub(pairwise_removed, m)
    top = (pairwise_removed >> np.uint64(56)).astype(int)
    assert stats.chisquare(np.bincount(top, minlength=256)).pvalue > 1e-4


def test_threshold_is_more_than_two_thirds_and_at_least_three() -> None:
    for n in range(3, 17):
        t = secure_agg.threshold(n)
        assert t >= 3 and 3 * t > 2 * n and t <= n
    assert [secure_agg.threshold(n) for n in (3, 4, 5)] == [3, 3, 4]
