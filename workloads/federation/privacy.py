"""Differential privacy: the discrete Gaussian sampler and the accountant.

Neighbouring datasets: one node's table with one patient (row) added or removed. Every
algorithm bounds the L2 norm of what one row changes in its release from the columns'
public bounds (workloads/contracts), never from the data.

Noise: OpenDP's discrete Gaussian (`make_gaussian` over integer vectors), added to the
release in fixed point (units of 2^-FRACTION_BITS), so it is sampled exactly, with no
floating-point leakage (Mironov 2012). Accounting: each release is a Gaussian mechanism of
noise multiplier sigma / sensitivity; releases compose in dp-accounting's RDP
accountant. The discrete Gaussian satisfies the same zCDP bound as the continuous one up to
a term that vanishes at these scales (Canonne, Kamath, Steinke 2020, Thm 14; sigma is
>= 2^27 fixed-point units here), so the RDP Gaussian accountant applies to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import dp_accounting
import numpy as np
from dp_accounting import rdp

from workloads.contracts.errors import UserError
from workloads.federation import secure_agg


class BudgetExceededError(UserError):
    """A release would take the node past its lifetime privacy budget."""


def epsilon(multipliers: Iterable[float], delta: float) -> float:
    """Epsilon at `delta` of Gaussian releases with these noise multipliers, composed."""
    events = [m for m in multipliers]
    if not events:
        return 0.0
    accountant = rdp.RdpAccountant()
    for multiplier in events:
        accountant.compose(dp_accounting.GaussianDpEvent(multiplier))
    return float(accountant.get_epsilon(delta))


def calibrate(epsilon_budget: float, releases: int, delta: float) -> float:
    """The smallest noise multiplier whose `releases` releases stay within the budget."""
    if not (epsilon_budget > 0 and 0 < delta < 1 and releases > 0):
        raise UserError(
            f"DP budget epsilon {epsilon_budget}, delta {delta}, {releases} releases is not "
            f"valid; fix: epsilon > 0, 0 < delta < 1, releases > 0"
        )
    low, high = 0.05, 1000.0
    if epsilon([high] * releases, delta) > epsilon_budget:
        raise BudgetExceededError(
            f"epsilon {epsilon_budget} cannot cover {releases} releases at delta {delta}; "
            f"fix: raise epsilon or lower the rounds"
        )
    for _ in range(50):
        mid = math.sqrt(low * high)
        if epsilon([mid] * releases, delta) > epsilon_budget:
            low = mid
        else:
            high = mid
    return high


def warm_up() -> None:
    """Import OpenDP ahead of the first release (its import takes about a second)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")


def discrete_gaussian(encoded: np.ndarray, sigma: float) -> np.ndarray:
    """encoded (fixed-point uint64 view) + discrete Gaussian noise of std `sigma` (in value
    units, i.e. sigma * 2^FRACTION_BITS fixed-point units), sampled by OpenDP."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    scale = sigma * 2.0**secure_agg.FRACTION_BITS
    measurement = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"), scale=scale
    )
    signed = np.asarray(encoded, dtype=np.uint64).view(np.int64)
    noisy = np.asarray(measurement([int(v) for v in signed]), dtype=np.int64)
    limit = secure_agg.VALUE_LIMIT * 2.0**secure_agg.FRACTION_BITS
    if np.any(np.abs(noisy.astype(np.float64)) >= limit):
        raise secure_agg.RangeError("a noisy value exceeds the fixed-point range")
    return noisy.view(np.uint64)
