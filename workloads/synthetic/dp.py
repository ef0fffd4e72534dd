"""Differential privacy of one node's synthesis release: events, noise, accountant, budget.

Neighbour relation: two versions of a node's table that differ by adding or removing one
patient row (unbounded DP, per node). Every guarantee below is each node's own: it holds
whatever the hub or the other nodes do, without trusting the masking.

A synthesis run releases, per node, two things (DPCopula, Li, Xiong and Jiang, EDBT 2014:
marginals first, then the dependence, with the budget split between them):

1. marginals: one histogram per column over its public bins. One row changes one bin of
   each histogram by 1: L2 sensitivity 1 per histogram. Each histogram gets OpenDP's
   discrete Gaussian (integer counts, exact sampler) with scale sigma_m: rho = 1 /
   (2 sigma_m^2) per column in zero-concentrated DP (Canonne, Kamath, Steinke 2020).
2. dependence: the sums over rows of products of clipped normal scores, z_i * z_j for
   every pair i < j (the diagonal is known: rows * E[clip(Z)^2]). |z| <= c (the clip), so
   one row changes each of the d(d-1)/2 sums by at most c^2: L2 sensitivity
   c^2 sqrt(d(d-1)/2).
   OpenDP's Gaussian on float vectors (sampled exactly) with scale sigma_c:
   rho = sensitivity^2 / (2 sigma_c^2).

Why normal scores and not Kendall's tau: most declared columns are categorical with few
levels (allele counts 0/1/2, a 0/1 diagnosis), where ties dominate, tau is attenuated and
sin(pi tau / 2) is no longer the copula correlation; tau's sensitivity (~4/n) needs n,
which is private, and per-node taus cannot be summed into the pooled tau (cross-node pairs
are missing). Normal-score products are plain sums: the secure sum over nodes is exactly
the pooled statistic, and they are the copula's own correlation (the same estimator the
centralised Gaussian copula uses).

Budget: the run's (epsilon, delta) is turned into a total rho (the largest rho whose
Gaussian RDP curve, converted by Google's dp-accounting RDP accountant, stays within
epsilon at delta); `marginal_share` of it goes to the marginals (split evenly over the
columns) and the rest to the dependence. Events compose additively in zCDP; `epsilon_of`
composes them with the RDP accountant (a Gaussian with noise multiplier m has RDP
alpha / (2 m^2) = alpha * rho, which bounds the discrete Gaussian as well).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Protocol

import dp_accounting
import numpy as np
import opendp.prelude as dp
from dp_accounting import rdp

from workloads.contracts.errors import UserError
from workloads.federation.defaults import SYNTH_CLIP, SYNTH_DELTA, SYNTH_MARGINAL_SHARE

dp.enable_features("contrib")

NEIGHBOURS = "add or remove one row of the node's table"
DEFAULT_DELTA = SYNTH_DELTA
DEFAULT_MARGINAL_SHARE = SYNTH_MARGINAL_SHARE
DEFAULT_CLIP = SYNTH_CLIP


class BudgetExceededError(UserError):
    """A release would take a node past its privacy budget; nothing was released."""


@dataclass(frozen=True)
class DPEvent:
    """One noisy release by one node, described completely."""

    node: str
    run_id: str
    query: str  # what was released, e.g. "histogram(age)" or "normal_score_products"
    mechanism: str  # "discrete_gaussian" | "gaussian"
    sensitivity: float  # L2, under NEIGHBOURS
    scale: float  # the noise's standard-deviation parameter
    rho: float  # zCDP cost: sensitivity^2 / (2 scale^2)
    neighbours: str = NEIGHBOURS

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class Odometer(Protocol):
    """A node's privacy odometer: charges events atomically, refusing past the node's cap.

    The federation engine's node-lifetime odometer can implement this; `WarehouseLedger`
    is the local implementation. `charge` must either record every event or none, and raise
    BudgetExceededError (recording none) when the cap would be exceeded."""

    def charge(self, events: Sequence[DPEvent]) -> Spent: ...

    def check(self, events: Sequence[DPEvent]) -> None:
        """Raise BudgetExceededError if charging the events now would pass the cap (no side
        effect): lets a run stop before ANY node is charged when one node would refuse."""
        ...

    def spent(self) -> Spent: ...


@dataclass(frozen=True)
class Spent:
    rho: float
    epsilon: float
    delta: float
    events: int


# --- accountant --------------------------------------------------------------------------


def epsilon_of(rhos: Sequence[float], delta: float) -> float:
    """(epsilon at delta) of composed Gaussian-type events given their zCDP rho each."""
    total = sum(rhos)
    if total <= 0:
        return 0.0
    if not math.isfinite(total):
        return math.inf
    accountant = rdp.RdpAccountant()
    for rho in rhos:
        if rho > 0:
            accountant.compose(dp_accounting.GaussianDpEvent(math.sqrt(1.0 / (2.0 * rho))))
    return float(accountant.get_epsilon(delta))


@lru_cache(maxsize=256)
def rho_for(epsilon: float, delta: float) -> float:
    """The largest total rho whose (epsilon, delta) stays within the given budget."""
    if not (epsilon > 0 and 0 < delta < 1):
        raise UserError(
            f"privacy budget epsilon={epsilon}, delta={delta} is invalid; "
            f"fix: epsilon > 0 and 0 < delta < 1"
        )
    if math.isinf(epsilon):
        return math.inf
    low, high = 0.0, 1.0
    while epsilon_of([high], delta) <= epsilon:
        low, high = high, high * 2
    for _ in range(60):
        mid = (low + high) / 2
        if epsilon_of([mid], delta) <= epsilon:
            low = mid
        else:
            high = mid
    return low


@dataclass(frozen=True)
class NoisePlan:
    """The scales of one run's releases, from its budget and split."""

    epsilon: float
    delta: float
    marginal_share: float
    clip: float
    columns: int
    marginal_scale: float  # sigma of each histogram's discrete Gaussian (0: no noise)
    product_sensitivity: float
    product_scale: float

    @property
    def pairs(self) -> int:
        return self.columns * (self.columns - 1) // 2

    def events(self, node: str, run_id: str, column_names: Sequence[str]) -> list[DPEvent]:
        events = [
            DPEvent(node, run_id, f"histogram({name})", "discrete_gaussian", 1.0,
                    self.marginal_scale, _rho(1.0, self.marginal_scale))
            for name in column_names
        ]
        events.append(
            DPEvent(node, run_id, "normal_score_products", "gaussian", self.product_sensitivity,
                    self.product_scale, _rho(self.product_sensitivity, self.product_scale))
        )
        return events


def _rho(sensitivity: float, scale: float) -> float:
    return math.inf if scale == 0 else sensitivity**2 / (2.0 * scale**2)


def plan(
    epsilon: float,
    delta: float,
    columns: int,
    *,
    marginal_share: float = DEFAULT_MARGINAL_SHARE,
    clip: float = DEFAULT_CLIP,
    noise_scale: float | None = None,
) -> NoisePlan:
    """Noise scales for one release of `columns` histograms and the product sums.

    epsilon = inf means no noise (scale 0, rho inf): for benchmarks and exactness tests
    only; a node's ledger refuses it unless its own cap is infinite. `noise_scale`,
    when given, fixes the noise multipliers (scale / sensitivity) of both releases
    instead of calibrating them; the plan is refused if that spends more than epsilon."""
    if not 0 < marginal_share < 1:
        raise UserError(f"marginal_share {marginal_share} is invalid; fix: 0 < share < 1")
    if not clip > 0:
        raise UserError(f"clip {clip} is invalid; fix: a positive normal-score bound, e.g. 3")
    sensitivity = clip**2 * math.sqrt(columns * (columns - 1) / 2)
    if noise_scale is not None:
        if not noise_scale > 0:
            raise UserError(f"noise_scale {noise_scale} is invalid; fix: a positive multiplier")
        result = NoisePlan(epsilon, delta, marginal_share, clip, columns, noise_scale,
                           sensitivity, noise_scale * sensitivity)
        spent = epsilon_of([_rho(1.0, noise_scale)] * columns + [_rho(1.0, noise_scale)], delta)
        if spent > epsilon * (1 + 1e-9):
            raise BudgetExceededError(
                f"noise_scale {noise_scale} spends epsilon {spent:.3f} > budget {epsilon}; "
                f"fix: raise noise_scale or epsilon"
            )
        return result
    total = rho_for(epsilon, delta)
    if math.isinf(total):
        return NoisePlan(epsilon, delta, marginal_share, clip, columns, 0.0, sensitivity, 0.0)
    rho_marginal = marginal_share * total / columns
    rho_products = (1 - marginal_share) * total
    return NoisePlan(
        epsilon, delta, marginal_share, clip, columns,
        marginal_scale=math.sqrt(1.0 / (2.0 * rho_marginal)),
        product_sensitivity=sensitivity,
        product_scale=sensitivity / math.sqrt(2.0 * rho_products),
    )


# --- noise: OpenDP's samplers ----------------------------------------------------------------


def noisy_counts(counts: np.ndarray, scale: float) -> np.ndarray:
    """A histogram (integers, L2 sensitivity 1) plus OpenDP's discrete Gaussian noise."""
    values = [int(v) for v in np.asarray(counts, dtype=np.int64)]
    if scale == 0:  # epsilon = inf: no noise, and the ledger charged rho = inf for it
        return np.asarray(values, dtype=np.int64)
    measurement = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int), scale=scale
    )
    return np.asarray(measurement(values), dtype=np.int64)


def noisy_vector(values: np.ndarray, scale: float) -> np.ndarray:
    """A float vector plus OpenDP's (exactly sampled) Gaussian noise."""
    vector = [float(v) for v in np.asarray(values, dtype=np.float64)]
    if scale == 0:
        return np.asarray(vector)
    measurement = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float),
        scale=scale,
    )
    return np.asarray(measurement(vector), dtype=np.float64)


def opendp_rho(sensitivity: float, scale: float, *, integer: bool) -> float:
    """The zCDP cost OpenDP itself computes for one such measurement (a cross-check)."""
    if integer:
        m = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int),
                               scale=scale)
        return float(m.map(int(sensitivity)))  # type: ignore[no-untyped-call]
    m = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T=float, nan=False)),
                           dp.l2_distance(T=float), scale=scale)
    return float(m.map(float(sensitivity)))  # type: ignore[no-untyped-call]
