"""The hub's side of a synthesis run over nodes: plan, charge, two secure sums, the model.

A round has two phases. (1) Every node releases its DP histograms, masked; the hub reads
only their sum and turns it into the global DP marginals, which it broadcasts. (2) Every
node computes normal scores of its rows under those public marginals and releases the DP
sums of their products, masked; the hub reads only the sum and repairs it into a
correlation matrix. Each node charges its odometer for the round's events before its
first release of the round; a node that refuses (its cap) does not take part.

Dropouts (failures, stragglers past the round's deadline): a node that does not answer
before a round starts is not invited; a node whose masked upload does not arrive voids
the sum (its masks do not cancel), so the phase is re-run with the nodes that answered,
under fresh keys. A node re-sends the very same noisy vector it already released (no new
noise, so no new privacy cost: its guarantee never relied on the masking).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from workloads.contracts.errors import UserError
from workloads.federation import secure_agg
from workloads.synthetic.columns import SynthColumn
from workloads.synthetic.copula import (
    CopulaModel,
    correlation_from_products,
    latent_correlation,
    nearest_correlation,
    probabilities,
)
from workloads.synthetic.dp import (
    DEFAULT_CLIP,
    DEFAULT_DELTA,
    DEFAULT_MARGINAL_SHARE,
    BudgetExceededError,
    NoisePlan,
    epsilon_of,
    plan,
    rho_for,
)
from workloads.synthetic.node import SynthesisNode, split_histograms

log = logging.getLogger(__name__)

# (round, phase, attempt, invited names) -> names whose upload arrives before the deadline
Participation = Callable[[int, str, int, list[str]], set[str]]


def everyone(_round: int, _phase: str, _attempt: int, names: list[str]) -> set[str]:
    return set(names)


@dataclass(frozen=True)
class Settings:
    epsilon: float = 1.0
    delta: float = DEFAULT_DELTA
    marginal_share: float = DEFAULT_MARGINAL_SHARE
    clip: float = DEFAULT_CLIP
    noise_scale: float | None = None
    min_sites: int = 2
    rounds: int = 1

    def __post_init__(self) -> None:
        if self.min_sites < 1 or self.rounds < 1:
            raise UserError(
                f"min_sites {self.min_sites} / rounds {self.rounds} are invalid; fix: >= 1"
            )


@dataclass
class PhaseLog:
    round: int
    phase: str
    attempt: int
    invited: list[str]
    answered: list[str]


@dataclass
class Training:
    """What the hub holds after training: totals only, never a node's own vector."""

    run_id: str
    columns: tuple[SynthColumn, ...]
    settings: Settings
    plan: NoisePlan
    histogram_total: list[np.ndarray] = field(default_factory=list)
    product_total: np.ndarray | None = None
    log: list[PhaseLog] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # node -> why (budget, size)
    round_rows: list[float] = field(default_factory=list)  # DP row count in each round's sum
    void_rounds: dict[int, str] = field(default_factory=dict)  # round -> why it was void
    model: CopulaModel | None = None

    def summed(self, round_: int) -> list[str]:
        """The nodes whose dependence release is in the round's sum (its last attempt)."""
        entries = [e for e in self.log if e.round == round_ and e.phase == "products"]
        return entries[-1].answered if entries and entries[-1].answered == sorted(
            entries[-1].invited) else []

    def participants(self) -> list[str]:
        names = {n for entry in self.log for n in entry.answered}
        return sorted(names)


def round_plan(settings: Settings, columns: int) -> NoisePlan:
    """The budget split evenly over the rounds (zCDP composes additively)."""
    if settings.rounds == 1 or math.isinf(settings.epsilon):
        return plan(settings.epsilon, settings.delta, columns,
                    marginal_share=settings.marginal_share, clip=settings.clip,
                    noise_scale=settings.noise_scale)
    per_round_rho = rho_for(settings.epsilon, settings.delta) / settings.rounds
    per_round_epsilon = epsilon_of([per_round_rho], settings.delta)
    return plan(per_round_epsilon, settings.delta, columns,
                marginal_share=settings.marginal_share, clip=settings.clip,
                noise_scale=settings.noise_scale)


def secure_sum(
    nodes: Sequence[SynthesisNode],
    vectors: dict[str, np.ndarray],
    context: str,
    *,
    min_sites: int,
    arrives: Callable[[int, list[str]], set[str]],
    log_entry: Callable[[int, list[str], list[str]], None],
) -> tuple[np.ndarray, list[str]]:
    """Pairwise-masked sum of the nodes' vectors; re-run with the survivors on a dropout."""
    invited = [n.name for n in nodes]
    by_name = {n.name: n for n in nodes}
    attempt = 0
    while True:
        if len(invited) < min_sites:
            raise UserError(
                f"only {len(invited)} node(s) ({', '.join(invited) or 'none'}) answered "
                f"{context}; at least {min_sites} must take part; fix: retry when nodes are up"
            )
        keys = {name: by_name[name].public_key() for name in invited}  # relayed by the hub
        attempt_context = f"{context}|attempt{attempt}"
        uploads = {
            name: by_name[name].masked(vectors[name], keys, attempt_context) for name in invited
        }
        arrived = sorted(arrives(attempt, invited) & set(invited))
        log_entry(attempt, invited, arrived)
        if arrived == sorted(invited):
            total = secure_agg.decode(secure_agg.aggregate([uploads[n] for n in invited]))
            return total, invited
        log.info("%s: %s did not answer in time; re-running with %s", context,
                 sorted(set(invited) - set(arrived)), arrived)
        invited = arrived  # the void sum is discarded; survivors re-send the same vectors
        attempt += 1


def train(
    nodes: Sequence[SynthesisNode],
    columns: tuple[SynthColumn, ...],
    settings: Settings,
    *,
    participation: Participation = everyone,
    available: Callable[[int], set[str]] | None = None,
    run_id: str | None = None,
) -> Training:
    """Run `settings.rounds` rounds of both phases and build the released copula."""
    run_id = run_id or uuid.uuid4().hex
    per_round = round_plan(settings, len(columns))
    training = Training(run_id, columns, settings, per_round)
    training.histogram_total = [np.zeros(c.bins) for c in columns]
    names = [c.name for c in columns]
    for r in range(settings.rounds):
        up = available(r) if available is not None else {n.name for n in nodes}
        candidates = [n for n in nodes if n.name in up and n.name not in training.refused]
        if len(candidates) < settings.min_sites:
            if settings.rounds == 1:
                raise UserError(
                    f"only {len(candidates)} node(s) ({', '.join(n.name for n in candidates)}) "
                    f"can take part; at least {settings.min_sites} must; nothing was charged; "
                    f"fix: name more nodes"
                )
            training.void_rounds[r] = f"only {len(candidates)} node(s) up; nothing charged"
            training.round_rows.append(0.0)
            continue
        invited: list[SynthesisNode] = []
        events = {n.name: per_round.events(n.name, f"{run_id}/round{r}", names)
                  for n in candidates}
        if settings.rounds == 1:  # ask every node first: one refusal charges nobody
            for node in candidates:
                node.odometer.check(events[node.name])
        for node in candidates:
            try:
                node.check_size()
                node.charge(events[node.name])
            except BudgetExceededError as exc:
                if settings.rounds == 1:
                    raise  # a one-shot run stops before anything is released
                training.refused[node.name] = str(exc)
                continue
            except UserError as exc:
                training.refused[node.name] = str(exc)
                continue
            invited.append(node)
        try:
            _round(training, invited, r, participation)
        except UserError as exc:
            if settings.rounds == 1:
                raise
            training.void_rounds[r] = str(exc)
            if len(training.round_rows) == r:
                training.round_rows.append(0.0)
    if training.product_total is None:
        why = "; ".join(f"round {r}: {reason}" for r, reason in training.void_rounds.items())
        raise UserError(f"no round completed ({why}); fix: retry when enough nodes are up")
    training.model = build_model(columns, training.histogram_total, training.product_total,
                                 settings.clip)
    return training


def _round(training: Training, invited: list[SynthesisNode], r: int,
           participation: Participation) -> None:
    columns, settings, per_round, run_id = (training.columns, training.settings, training.plan,
                                            training.run_id)

    def record(phase: str) -> Callable[[int, list[str], list[str]], None]:
        def entry(attempt: int, who: list[str], answered: list[str]) -> None:
            training.log.append(PhaseLog(r, phase, attempt, list(who), list(answered)))
        return entry

    # phase 1: marginals
    histograms = {n.name: n.noisy_histograms(per_round) for n in invited}
    total, took_part = secure_sum(
        invited, histograms, f"synth|{run_id}|round{r}|marginals",
        min_sites=settings.min_sites,
        arrives=lambda attempt, who: participation(r, "marginals", attempt, who),
        log_entry=record("marginals"),
    )
    round_histograms = split_histograms(total, columns)
    training.round_rows.append(float(np.median([max(float(h.sum()), 0.0)
                                                for h in round_histograms])))
    for j, h in enumerate(round_histograms):
        training.histogram_total[j] = training.histogram_total[j] + h
    marginals = [probabilities(h, c.name)
                 for h, c in zip(training.histogram_total, columns, strict=True)]
    # phase 2: dependence, only from nodes whose marginals are in the sum
    second = [n for n in invited if n.name in took_part]
    products = {n.name: n.noisy_products(per_round, marginals, n.rng) for n in second}
    total, _ = secure_sum(
        second, products, f"synth|{run_id}|round{r}|products",
        min_sites=settings.min_sites,
        arrives=lambda attempt, who: participation(r, "products", attempt, who),
        log_entry=record("products"),
    )
    training.product_total = (
        total if training.product_total is None else training.product_total + total
    )


def build_model(columns: tuple[SynthColumn, ...], histograms: Sequence[np.ndarray],
                products: np.ndarray | None, clip: float) -> CopulaModel:
    if products is None:
        raise UserError("no dependence statistics were released; fix: train first")
    marginals = tuple(probabilities(h, c.name) for h, c in zip(histograms, columns, strict=True))
    # the DP row count: the median of the columns' noisy totals (each is n + noise); a
    # mixture's normalised histograms and products give 1 here and per row means there
    rows = float(np.median([float(np.sum(h)) for h in histograms]))
    raw = correlation_from_products(products, len(columns), rows, clip)
    latent = latent_correlation(raw, columns, marginals)
    return CopulaModel(columns, marginals, nearest_correlation(latent), raw, rows)


def mixture(
    nodes: Sequence[SynthesisNode],
    columns: tuple[SynthColumn, ...],
    weights: dict[str, float],
    *,
    min_sites: int,
    context: str,
    clip: float,
) -> CopulaModel:
    """The copula of a weighted mixture of the nodes' populations: each node sends
    weight * (its noisy histograms and product sums) / its noisy row count, masked; the
    hub reads only the weighted sum. Post-processing: no new privacy cost."""
    taking_part = [n for n in nodes if n.release.rounds > 0 and weights.get(n.name, 0) > 0]
    total_weight = sum(weights[n.name] for n in taking_part)
    if not taking_part or not total_weight > 0:
        raise UserError("no trained node has a positive weight; fix: give weights > 0")
    vectors = {n.name: n.mixture_terms(weights[n.name] / total_weight) for n in taking_part}
    total, _ = secure_sum(taking_part, vectors, context, min_sites=min_sites,
                          arrives=lambda _a, who: set(who), log_entry=lambda *_: None)
    cut = sum(c.bins for c in columns)
    return build_model(columns, split_histograms(total[:cut], columns), total[cut:], clip)
