"""Differential privacy for federated statistics and the model: clipping, Gaussian noise,
accounting.

Statistics: age and BMI are clamped to public ranges and summed as fractions of the
range, so a patient adds at most 1 to each of the 4 fields of the 4 cells it is in (L2
sensitivity 4); the node adds Gaussian noise to the whole vector before suppression,
release and masking.

The model: each round a node releases its Newton terms computed on rows whose design
vector is clipped to L2 norm `clip`. One patient then moves the gradient by at most clip
(|y - p| <= 1) and the Hessian by at most clip^2 / 4 (Frobenius; p(1-p) <= 1/4); the
log-likelihood is not released under DP. So the released vector's L2 sensitivity is
sqrt(clip^2 + clip^4 / 16).

Each node adds Gaussian noise of standard deviation noise_multiplier * sensitivity to its
own release: every node's guarantee holds on its own, without trusting the masking (the
sum carries m times that noise variance). Each release is one GaussianDpEvent; releases
compose in Google's dp-accounting RDP accountant, which reports (epsilon, delta). Both
the hub and every node compute the run's epsilon BEFORE a release and refuse one that
would exceed the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dp_accounting
import numpy as np
from dp_accounting import rdp

from workloads.contracts.errors import UserError


class BudgetExceededError(UserError):
    """A release would spend more privacy budget than the run allows."""


@dataclass(frozen=True)
class DPConfig:
    epsilon: float  # the run's total budget
    delta: float = 1e-6
    clip: float = 3.0  # L2 bound of each patient's (scaled) design vector
    # Releases the budget is spread over: 1 for statistics, each Newton round 1 (a fixed
    # number: no data-dependent stopping).
    rounds: int = 6

    def __post_init__(self) -> None:
        if not (self.epsilon > 0 and 0 < self.delta < 1 and self.clip > 0 and self.rounds > 0):
            raise UserError(
                f"differential privacy settings {self} are invalid; fix: epsilon > 0, "
                f"0 < delta < 1, clip > 0, rounds > 0"
            )


def epsilon_spent(noise_multiplier: float, rounds: int, delta: float) -> float:
    if rounds == 0:
        return 0.0
    accountant = rdp.RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier), rounds)
    return float(accountant.get_epsilon(delta))


def calibrate(config: DPConfig) -> float:
    """The smallest noise multiplier whose `rounds` releases stay within the budget."""
    low, high = 0.05, 1000.0
    if epsilon_spent(high, config.rounds, config.delta) > config.epsilon:
        raise BudgetExceededError(
            f"epsilon {config.epsilon} cannot cover {config.rounds} rounds at delta "
            f"{config.delta}; fix: raise epsilon or lower the rounds"
        )
    for _ in range(60):
        mid = math.sqrt(low * high)
        if epsilon_spent(mid, config.rounds, config.delta) > config.epsilon:
            low = mid
        else:
            high = mid
    return high


def check_budget(noise_multiplier: float, rounds_after: int, config: DPConfig) -> float:
    """Epsilon after `rounds_after` releases; raises BudgetExceededError before overspending."""
    spent = epsilon_spent(noise_multiplier, rounds_after, config.delta)
    if rounds_after > config.rounds or spent > config.epsilon * (1 + 1e-9):
        raise BudgetExceededError(
            f"round {rounds_after} would bring epsilon to {spent:.3f} (budget "
            f"{config.epsilon}, {config.rounds} rounds); refused before any release; "
            f"fix: start a new run with a larger budget"
        )
    return spent


def sensitivity(clip: float) -> float:
    """L2 sensitivity of (gradient, upper Hessian) to one patient."""
    return math.sqrt(clip**2 + (clip**2 / 4.0) ** 2)


def stats_sensitivity(cells_per_patient: int, fields: int) -> float:
    """L2 sensitivity of the bounded statistics vector: a patient adds at most 1 to each
    field (count, case, scaled age, scaled BMI) of each cell it belongs to."""
    return math.sqrt(cells_per_patient * fields)


def noisy(vector: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return vector + rng.normal(0.0, sigma, size=vector.shape)
