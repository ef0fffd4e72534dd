"""The hub's coordinator: runs rounds, checks and deduplicates uploads, aggregates.

A round: announce (to the participating nodes) -> collect one result per node until all
answered or the deadline passed -> aggregate. Uploads of another run or round, from a
node not taking part, malformed or over the size limit are rejected and logged, never
aggregated; a repeated upload (at-least-once delivery) is ignored.

Dropouts: masked sums are void without every participant (their pairwise masks do not
cancel). If the survivors still number at least `quorum` (and two), the round is re-run
with them under fresh keys; otherwise the run stops with FederationStoppedError naming who was
missing. quorum defaults to every node: any dropout stops the run.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from workloads.contracts.errors import UserError
from workloads.federation import disclosure, local_stats, privacy, secure_agg
from workloads.federation.protocol import HUB, Message, MessageRejectedError, decode
from workloads.federation.transport import HubEndpoint
from workloads.federation.worker import dp_params

log = logging.getLogger(__name__)
P = len(local_stats.COEFFICIENT_NAMES)
NEWTON_DIM = P + P * (P + 1) // 2 + 1
STATS_DIM = len(local_stats.stats_cells()) * len(local_stats.STATS_FIELDS)


class FederationStoppedError(UserError):
    """The run cannot go on (dropouts below quorum, budget, divergence): says why."""


@dataclass
class RunConfig:
    nodes: tuple[str, ...]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    round_timeout: float = 30.0
    quorum: int | None = None  # None: every node must answer every round
    k: int = disclosure.DEFAULT_K
    max_rounds: int = 10
    tolerance: float = 1e-8  # largest |Newton step| at convergence (scaled coefficients)
    dp: privacy.DPConfig | None = None

    def __post_init__(self) -> None:
        if len(set(self.nodes)) < 2:
            raise UserError(
                f"a federated run needs at least two nodes, got {list(self.nodes)}; "
                f"fix: name two or more nodes (secure aggregation of one node hides nothing)"
            )
        if len(set(self.nodes)) > secure_agg.MAX_NODES:
            raise UserError(
                f"{len(self.nodes)} nodes: the fixed-point sums are sized for at most "
                f"{secure_agg.MAX_NODES}; fix: raise secure_agg.MAX_NODES (and lower "
                f"FRACTION_BITS to keep the range)"
            )


@dataclass
class StatsRow:
    label: str
    values: dict[str, tuple[float, ...] | None]  # node or "combined" -> (n, cases, rate, age, bmi)


@dataclass
class FitResult:
    coefficients: np.ndarray  # original scale, COEFFICIENT_NAMES order
    standard_errors: np.ndarray
    rounds: int
    converged: bool
    loglik: float | None
    auc: dict[str, float]
    epsilon: float | None
    participants: tuple[str, ...]


@dataclass
class Coordinator:
    endpoint: HubEndpoint
    config: RunConfig
    rejected: list[str] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0
    round: int = 0
    participants: tuple[str, ...] = ()
    public_keys: dict[str, str] = field(default_factory=dict)
    key_round: int = -1
    bytes_per_round: list[int] = field(default_factory=list)
    dp_releases: int = 0  # differentially private rounds announced in this run

    def __post_init__(self) -> None:
        self.participants = tuple(sorted(self.config.nodes))

    # --- rounds ---------------------------------------------------------------------------

    def _announce(
        self, algorithm: str, values: tuple[float, ...] = (), params: dict[str, str] | None = None
    ) -> int:
        self.round += 1
        message = Message(
            run_id=self.config.run_id,
            round=self.round,
            node=HUB,
            algorithm=algorithm,
            kind="announce",
            to=self.participants,
            values=values,
            public_keys=dict(self.public_keys) if algorithm != "keys" else {},
            params={**(params or {}), "key_round": str(self.key_round)},
        )
        self.endpoint.broadcast(message.encode())
        return self.round

    def _collect(
        self, round_: int, algorithm: str, kind: str, dim: int | None
    ) -> dict[str, Message]:
        answers: dict[str, Message] = {}
        received = 0
        deadline = time.monotonic() + self.config.round_timeout
        while len(answers) < len(self.participants):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for data in self.endpoint.receive(timeout=min(remaining, 1.0)):
                received += len(data)
                message = self._check(data, round_, algorithm, kind, dim)
                if message is None:
                    continue
                if message.node in answers:
                    self.duplicates += 1
                    continue
                answers[message.node] = message
        self.bytes_per_round.append(received)
        log.debug(
            "hub: round %d (%s): %d answers, %d bytes", round_, algorithm, len(answers), received
        )
        return answers

    def _check(
        self, data: bytes, round_: int, algorithm: str, kind: str, dim: int | None
    ) -> Message | None:
        try:
            message = decode(data)
        except MessageRejectedError as exc:
            return self._reject(f"malformed upload: {exc}")
        where = f"upload from {message.node!r} (run {message.run_id}, round {message.round})"
        if message.run_id != self.config.run_id:
            return self._reject(f"{where}: another run")
        if message.node not in self.participants:
            return self._reject(f"{where}: not a participant of this run")
        if message.round < round_:
            # A redelivered or late answer to a finished round: expected under
            # at-least-once delivery; never aggregated into the current one.
            self.late += 1
            log.info("hub: ignored late %s", where)
            return None
        if message.round != round_:
            return self._reject(f"{where}: not the current round {round_}")
        if message.kind != kind or message.algorithm != algorithm:
            return self._reject(f"{where}: expected {kind}/{algorithm}")
        if dim is not None and len(message.masked) != dim:
            return self._reject(f"{where}: {len(message.masked)} masked values, expected {dim}")
        return message

    def _reject(self, reason: str) -> Message | None:
        """Log and keep the reason; returns None so callers can `return self._reject(...)`."""
        log.warning("hub: rejected %s", reason)
        self.rejected.append(reason)
        return None

    def _drop(self, missing: set[str], what: str) -> None:
        survivors = tuple(n for n in self.participants if n not in missing)
        quorum = len(self.config.nodes) if self.config.quorum is None else self.config.quorum
        if len(survivors) < max(quorum, 2):
            self.stop(
                f"{what}: no answer from {', '.join(sorted(missing))} within "
                f"{self.config.round_timeout:.0f} s; {len(survivors)} of "
                f"{len(self.config.nodes)} nodes left, quorum is {max(quorum, 2)}"
            )
        log.warning(
            "hub: %s: continuing without %s (quorum %d met)",
            what,
            ", ".join(sorted(missing)),
            quorum,
        )
        self.participants = survivors
        self.public_keys = {}

    def stop(self, reason: str) -> None:
        self._end("abort", reason)
        raise FederationStoppedError(f"run {self.config.run_id} stopped: {reason}")

    def finish(self) -> None:
        self._end("done", "")

    def _end(self, kind: str, reason: str) -> None:
        message = Message(
            run_id=self.config.run_id,
            round=self.round + 1,
            node=HUB,
            algorithm="end",
            kind=kind,
            to=tuple(sorted(self.config.nodes)),
            params={"reason": reason[:250]},
        )
        self.endpoint.broadcast(message.encode())

    def _exchange_keys(self) -> None:
        while True:
            round_ = self._announce("keys")
            answers = self._collect(round_, "keys", "public_key", None)
            missing = set(self.participants) - set(answers)
            if not missing:
                break
            self._drop(missing, "key exchange")
        keys = {}
        for node, message in answers.items():
            if set(message.public_keys) != {node}:
                self.stop(f"node {node} sent a key set for {sorted(message.public_keys)}")
            keys[node] = message.public_keys[node]
        self.public_keys, self.key_round = keys, round_

    def secure_round(
        self,
        algorithm: str,
        dim: int,
        values: tuple[float, ...] = (),
        params: dict[str, str] | None = None,
    ) -> tuple[np.ndarray, dict[str, Message]]:
        """One masked round; returns the decoded sum and each node's message."""
        while True:
            if not self.public_keys:
                self._exchange_keys()
            if self.config.dp and params and "noise_multiplier" in params:
                # Every announcement is a release (a re-run after a dropout too): refused
                # here, before announcing, if it would overspend the run's budget.
                privacy.check_budget(
                    float(params["noise_multiplier"]), self.dp_releases + 1, self.config.dp
                )
                self.dp_releases += 1
            round_ = self._announce(algorithm, values, params)
            answers = self._collect(round_, algorithm, "result", dim)
            missing = set(self.participants) - set(answers)
            if not missing:
                total = secure_agg.aggregate(
                    [secure_agg.from_wire(m.masked) for m in answers.values()]
                )
                return secure_agg.decode(total), answers
            self._drop(missing, f"{algorithm} round {round_}")

    def clear_round(
        self, algorithm: str, values: tuple[float, ...], params: dict[str, str]
    ) -> dict[str, Message]:
        """A round whose answers are per-node releases (no masking); missing nodes are absent."""
        round_ = self._announce(algorithm, values, params)
        return self._collect(round_, algorithm, "result", 0)

    # --- products -------------------------------------------------------------------------

    def statistics(self) -> list[StatsRow]:
        """Per node and combined cells; with DP, every number is noisy (suppression is
        decided on the noisy counts)."""
        dp = self.config.dp
        params = {"k": str(self.config.k)}
        if dp:
            params.update(dp_params(dp, privacy.calibrate(dp)))
        total, answers = self.secure_round("stats", STATS_DIM, params=params)
        width = len(local_stats.STATS_FIELDS)
        node_cells = {}
        for node, message in answers.items():
            if len(message.values) != STATS_DIM:
                self.stop(f"node {node} released {len(message.values)} statistics, not {STATS_DIM}")
            node_cells[node] = np.asarray(message.values)
        if not dp:
            total = np.rint(total)  # exact integer counts (fixed point leaves ~1e-9)
        combined, hidden = disclosure.combined_release(total, node_cells, self.config.k)
        bounded = dp is not None
        rows = []
        for i, (column, level) in enumerate(local_stats.stats_cells()):
            label = "all" if level is None else f"{column}={level}"
            cells: dict[str, tuple[float, ...] | None] = {}
            for node in sorted(node_cells):
                cell = node_cells[node].reshape(-1, width)[i]
                cells[node] = (
                    None
                    if cell[0] == disclosure.SUPPRESSED
                    else local_stats.cell_summary(cell, bounded=bounded)
                )
            cells["combined"] = (
                None if hidden[i] else local_stats.cell_summary(combined[i], bounded=bounded)
            )
            rows.append(StatsRow(label, cells))
        return rows

    def fit(self) -> FitResult:
        """Federated Newton-Raphson logistic regression (exact, or DP if configured)."""
        beta = np.zeros(P)
        dp = self.config.dp
        multiplier = privacy.calibrate(dp) if dp else 0.0
        # Under DP the run's planned releases (dp.rounds) that statistics left over.
        max_rounds = dp.rounds - self.dp_releases if dp else self.config.max_rounds
        if max_rounds < 1:
            raise privacy.BudgetExceededError(
                f"run {self.config.run_id} has no differentially private release left for the "
                f"model ({self.dp_releases} of {dp.rounds if dp else 0} spent); fix: plan more "
                f"rounds (--dp-rounds) in a new run"
            )
        converged, loglik, hessian = False, None, np.eye(P)
        rounds = 0
        epsilon = None
        for rounds in range(1, max_rounds + 1):
            params = {"phase": "newton"}
            if dp:
                params.update(dp_params(dp, multiplier))
            total, _ = self.secure_round("logreg", NEWTON_DIM, tuple(beta), params)
            gradient = total[:P]
            hessian = local_stats.from_upper(total[P:-1], P)
            loglik = None if dp else float(total[-1])
            if dp:
                hessian = _positive_definite(hessian)
            step = np.linalg.solve(hessian, gradient)
            beta = beta + step
            if not np.all(np.isfinite(beta)):
                self.stop(f"Newton step diverged in round {rounds}")
            if not dp and np.max(np.abs(step)) < self.config.tolerance:
                converged = True
                break
        converged = converged or bool(dp)
        if dp:
            epsilon = privacy.epsilon_spent(multiplier, self.dp_releases, dp.delta)
        aucs = self.clear_round("logreg", tuple(beta), {"phase": "auc"})
        transform = _to_original_scale()
        covariance = transform @ np.linalg.inv(hessian) @ transform.T
        return FitResult(
            coefficients=transform @ beta,
            standard_errors=np.sqrt(np.diag(covariance)),
            rounds=rounds,
            converged=converged,
            loglik=loglik,
            auc={n: m.values[0] for n, m in sorted(aucs.items()) if len(m.values) == 1},
            epsilon=epsilon,
            participants=self.participants,
        )


def _positive_definite(matrix: np.ndarray, floor: float = 1.0) -> np.ndarray:
    """Noise can make the aggregated Hessian indefinite: floor its eigenvalues."""
    symmetric = (matrix + matrix.T) / 2.0
    values, vectors = np.linalg.eigh(symmetric)
    result: np.ndarray = (vectors * np.maximum(values, floor)) @ vectors.T
    return result


def _to_original_scale() -> np.ndarray:
    """beta_original = A @ beta_scaled for x_scaled = (x - centre) / scale."""
    transform = np.zeros((P, P))
    transform[0, 0] = 1.0
    transform[0, 1:] = -local_stats.CENTRE / local_stats.SCALE
    transform[1:, 1:] = np.diag(1.0 / local_stats.SCALE)
    return transform
