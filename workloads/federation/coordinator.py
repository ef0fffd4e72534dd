"""The hub's coordinator: runs steps, keys, deadlines and dropouts; knows no statistics.

A run: `setup` (nodes advertise signed key-agreement keys) and `share` (nodes send each
other encrypted Shamir shares of their mask seeds, through the hub), then one `aggregate`
per question an algorithm (algorithms.py) asks: `round` (each participant uploads its
double-masked release), `check` (only if someone dropped: survivors sign the survivor
set), `unmask` (survivors reveal shares; the hub reconstructs the survivors' self masks
and the dropped nodes' pairwise masks, and reads the sum over the survivors). A node that
drops is recovered without re-running the round and leaves the run.

Every step is signed by the hub; every upload is checked against the pinned roster,
deduplicated (Pub/Sub delivers at least once) and refused if replayed; uploads of another
run, round or kind, from a node not taking part, malformed or of the wrong shape are
rejected and logged (`rejected`), never aggregated. A node's signed abort stops the run
with the node's own reason.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workloads.contracts.errors import UserError
from workloads.federation import algorithms, privacy, secure_agg, shamir
from workloads.federation.defaults import (
    DEFAULT_DP_DELTA,
    DEFAULT_K,
    DEFAULT_MAX_ROUNDS,
    DEFAULT_ROUND_TIMEOUT,
)
from workloads.federation.identity import Signer, verify
from workloads.federation.protocol import (
    Message,
    MessageRejectedError,
    ReplayGuard,
    accept,
    decode,
)
from workloads.federation.roster import HUB, Roster
from workloads.federation.transport import HubEndpoint
from workloads.federation.worker import SECAGG, advert_payload

log = logging.getLogger(__name__)
DP_MAX_STEP = 1.0  # largest Newton step (L2, scaled coefficients) of a DP fit


class FederationStoppedError(UserError):
    """The run cannot go on (dropouts, a node's refusal, non-convergence): says why."""


@dataclass(frozen=True)
class DPRequest:
    """What the hub asks for; each node applies at least its own policy's noise and
    charges its own lifetime odometer, whatever the hub asks."""

    epsilon: float  # the run's budget per node, spread over `releases`
    releases: int
    delta: float = DEFAULT_DP_DELTA

    @property
    def noise_multiplier(self) -> float:
        return privacy.calibrate(self.epsilon, self.releases, self.delta)


@dataclass
class RunConfig:
    nodes: tuple[str, ...]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    round_timeout: float = DEFAULT_ROUND_TIMEOUT
    k: int = DEFAULT_K
    max_rounds: int = DEFAULT_MAX_ROUNDS
    tolerance: float = 1e-8  # largest |Newton step| at convergence (scaled coefficients)
    dp: DPRequest | None = None
    # Exact sums need three nodes; runs whose every release is DP (synthesis) may ask for
    # fewer: each node's guard still decides (its policy's min_dp_participants).
    min_nodes: int = 3

    def __post_init__(self) -> None:
        nodes = set(self.nodes)
        if self.min_nodes < 3 and len(nodes) < max(self.min_nodes, 1):
            raise UserError(f"this DP run needs at least {self.min_nodes} nodes, got "
                            f"{sorted(nodes)}; fix: name more nodes")
        if self.min_nodes >= 3 and len(nodes) < self.min_nodes:
            raise UserError(
                f"a federated run needs at least three nodes, got {sorted(nodes)}; fix: name "
                f"three or more (a sum over two nodes is the other node's value to either)"
            )
        if len(nodes) > secure_agg.MAX_NODES:
            raise UserError(
                f"{len(nodes)} nodes: the fixed-point sums are sized for at most "
                f"{secure_agg.MAX_NODES}; fix: run with fewer nodes"
            )
        if self.k < 1:
            raise UserError(f"k {self.k}: the small-cell threshold must be at least 1")

    @property
    def slots(self) -> int:
        return self.max_rounds + 2  # statistics, Newton rounds, one spare


@dataclass
class StatsRow:
    label: str
    values: dict[str, tuple[float, ...] | None]  # "combined" -> (n, cases, rate, means...)


@dataclass
class FitResult:
    coefficients: np.ndarray  # original scale, coefficient_names order
    standard_errors: np.ndarray
    rounds: int
    converged: bool
    loglik: float | None
    auc: dict[str, float]
    epsilon: float | None
    participants: tuple[str, ...]
    names: tuple[str, ...] = ("intercept", *algorithms.FEATURES)
    auc_refused: dict[str, str] = field(default_factory=dict)  # node -> its reason


@dataclass
class Coordinator:
    endpoint: HubEndpoint
    config: RunConfig
    signer: Signer
    roster: Roster
    rejected: list[str] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0
    step: int = 0
    alive: tuple[str, ...] = ()
    adverts: dict[str, str] = field(default_factory=dict)
    undelivered: dict[str, str] = field(default_factory=dict)  # "from>to" -> ciphertext
    dropped: list[str] = field(default_factory=list)
    slot: int = 0
    bytes_per_round: list[int] = field(default_factory=list)
    dp_multipliers: list[float] = field(default_factory=list)
    # The signed node messages every published value was computed from (uploads, commits,
    # reveals, per-node releases): the run's audit record keeps them (results.py).
    released_from: list[Message] = field(default_factory=list)
    _replays: ReplayGuard = field(default_factory=ReplayGuard)

    def __post_init__(self) -> None:
        if self.roster.hub_key != self.signer.public_hex():
            raise UserError("the hub's signing key is not the one pinned in the roster")
        unknown = [n for n in self.config.nodes if self.roster.key_of(n) is None]
        if unknown:
            raise UserError(
                f"{', '.join(unknown)} not in the roster; fix: pin their signing keys first"
            )
        self.alive = tuple(sorted(set(self.config.nodes)))

    # --- steps -------------------------------------------------------------------------------

    def _send(
        self, kind: str, algorithm: str, to: tuple[str, ...], **payload: Any
    ) -> int:
        self.step += 1
        message = Message(
            run_id=self.config.run_id,
            round=self.step,
            node=HUB,
            algorithm=algorithm,
            kind=kind,
            to=to,
            **payload,
        )
        self.endpoint.broadcast(message.sign(self.signer).encode())
        return self.step

    def _collect(self, step: int, kind: str, expected: tuple[str, ...], dim: int | None = None,
                 *, refusals: dict[str, str] | None = None) -> dict[str, Message]:
        """One answer of `kind` per expected node, until all answered or the deadline.

        A node's signed abort stops the run with its reason, unless `refusals` collects it.
        """
        answers: dict[str, Message] = {}
        received = 0
        deadline = time.monotonic() + self.config.round_timeout
        while len(answers) < len(expected):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for data in self.endpoint.receive(timeout=min(remaining, 1.0)):
                received += len(data)
                message = self._check(data, step, kind, expected, dim)
                if message is None:
                    continue
                if message.kind == "abort":
                    reason = message.params.get("reason", "no reason given")
                    if refusals is None:
                        self.stop(f"node {message.node} refused: {reason}")
                        continue
                    refusals[message.node] = reason
                    expected = tuple(n for n in expected if n != message.node)
                    continue
                answers[message.node] = message
        self.bytes_per_round.append(received)
        return answers

    def _check(self, data: bytes, step: int, kind: str, expected: tuple[str, ...],
               dim: int | None) -> Message | None:
        try:
            message = decode(data)
        except MessageRejectedError as exc:
            return self._reject(f"malformed upload: {exc}")
        where = f"upload from {message.node!r} (run {message.run_id}, step {message.round})"
        if message.run_id != self.config.run_id:
            return self._reject(f"{where}: another run")
        if message.node not in expected:
            if message.round < step:
                self.late += 1  # e.g. the upload of a node declared dropped: never used
                return None
            return self._reject(f"{where}: not expected in this step")
        if message.round < step:
            self.late += 1
            return None
        if message.round != step:
            return self._reject(f"{where}: not the current step {step}")
        try:
            message = accept(data, self.roster, self._replays)
        except MessageRejectedError as exc:
            if "replay" in str(exc):
                self.duplicates += 1
                return None
            return self._reject(f"{where}: {exc}")
        if message.kind != "abort" and message.kind != kind:
            return self._reject(f"{where}: expected {kind}, got {message.kind}")
        if dim is not None and message.kind == kind and len(message.masked) != dim:
            return self._reject(f"{where}: {len(message.masked)} masked values, expected {dim}")
        return message

    def _reject(self, reason: str) -> Message | None:
        log.warning("hub: rejected %s", reason)
        self.rejected.append(reason)
        return None

    def stop(self, reason: str) -> None:
        self._end("abort", reason)
        raise FederationStoppedError(f"run {self.config.run_id} stopped: {reason}")

    def finish(self) -> None:
        self._end("done", "")

    def _end(self, kind: str, reason: str) -> None:
        self._send(kind, "end", tuple(sorted(set(self.config.nodes))),
                   params={"reason": reason[:1000]})

    def _need(self, have: int, what: str, silent: list[str] | None = None) -> None:
        t = secure_agg.threshold(len(self.config.nodes))
        if have < t:
            silent = sorted(silent or set(self.config.nodes) - set(self.alive))
            self.stop(
                f"{what}: {have} nodes answered within {self.config.round_timeout:.0f} s, "
                f"the threshold is {t} (no answer from {', '.join(silent) or 'none'})"
            )

    # --- secure aggregation ------------------------------------------------------------------

    def setup(self) -> None:
        step = self._send("setup", SECAGG, self.alive, params={"slots": str(self.config.slots)})
        keys = self._collect(step, "keys", self.alive)
        self._mark_alive(keys, "key set-up")
        adverts = {}
        for node, message in keys.items():
            c, s, sig = (message.keys.get(x, "") for x in ("c", "s", "sig"))
            key = self.roster.key_of(node)
            try:
                genuine = key is not None and verify(
                    key, advert_payload(self.config.run_id, node, c, s), bytes.fromhex(sig)
                )
            except ValueError:
                genuine = False
            if not genuine:
                self.stop(f"node {node} sent keys without a valid signature")
            adverts[node] = f"{c}:{s}:{sig}"
        self.adverts = adverts
        step = self._send("share", SECAGG, self.alive, keys=adverts)
        shares = self._collect(step, "shares", self.alive)
        self._mark_alive(shares, "share distribution")
        self.undelivered = {
            f"{sender}>{recipient}": blob
            for sender, message in shares.items()
            for recipient, blob in message.blobs.items()
            if recipient in self.alive
        }

    def _mark_alive(self, answers: dict[str, Message], what: str) -> None:
        missing = [n for n in self.alive if n not in answers]
        if missing:
            log.warning("hub: %s: no answer from %s", what, ", ".join(missing))
            self.dropped += missing
        self.alive = tuple(n for n in self.alive if n in answers)
        self._need(len(self.alive), what)

    def aggregate(
        self, algorithm: algorithms.Algorithm, params: Any, model: tuple[float, ...] = ()
    ) -> tuple[np.ndarray, tuple[str, ...]]:
        """The sum of the algorithm's release over the nodes that survive the round."""
        if not self.adverts:
            self.setup()
        if self.slot >= self.config.slots:
            self.stop(f"run used all {self.config.slots} aggregation slots")
        slot, self.slot = self.slot, self.slot + 1
        dim = algorithm.dimension(params)
        members = self.alive
        multiplier = algorithms.noise_of(params)
        if multiplier is not None:
            self.dp_multipliers.append(multiplier)
        step = self._send(
            "round",
            algorithm.name,
            members,
            values=model,
            params={**algorithms.to_wire(params), "slot": str(slot)},
            blobs={r: b for r, b in self.undelivered.items() if r.split(">")[1] in members},
        )
        self.undelivered = {}
        uploads = self._collect(step, "masked", members, dim)
        survivors = tuple(n for n in members if n in uploads)
        dropped = tuple(n for n in members if n not in uploads)
        self._need(len(survivors), f"{algorithm.name} round (step {step})", list(dropped))
        proofs = {n: uploads[n].keys.get("receipt", "") for n in survivors}
        if dropped:
            log.warning("hub: step %d: %s dropped; recovering their masks", step,
                        ", ".join(dropped))
            self.dropped += list(dropped)
            check = self._send("check", algorithm.name, survivors,
                               keys={"survivors": ",".join(survivors)}, params={"of": str(step)})
            commits = self._collect(check, "commit", survivors)
            proofs = {n: m.keys.get("commit", "") for n, m in commits.items()}
            self._need(len(proofs), "consistency check")
            self.released_from += commits.values()
        unmask = self._send(
            "unmask",
            algorithm.name,
            survivors,
            keys={"survivors": ",".join(survivors)},
            blobs=proofs,
            params={"of": str(step)},
        )
        reveals = self._collect(unmask, "reveal", survivors)
        self._need(len(reveals), "unmasking")
        total = secure_agg.aggregate([secure_agg.from_wire(uploads[n].masked) for n in survivors])
        b_seeds = {n: self._reconstruct(reveals, f"b:{n}") for n in survivors}
        s_secrets = {n: self._reconstruct(reveals, f"s:{n}") for n in dropped}
        s_publics = {n: self.adverts[n].split(":")[1] for n in members}
        total = secure_agg.unmask(total, b_seeds, s_secrets, s_publics,
                                  f"{self.config.run_id}|{slot}")
        self.alive = survivors
        self.released_from += [uploads[n] for n in survivors] + list(reveals.values())
        return secure_agg.decode(total), survivors

    def _reconstruct(self, reveals: dict[str, Message], name: str) -> int:
        indices = secure_agg.share_indices(tuple(sorted(self.adverts)))
        shares = {}
        for node, message in reveals.items():
            if name in message.keys:
                try:
                    shares[indices[node]] = shamir.from_hex(message.keys[name])
                except ValueError:
                    self._reject(f"node {node} revealed a malformed share of {name}")
        t = secure_agg.threshold(len(self.config.nodes))
        if len(shares) < t:
            self.stop(f"only {len(shares)} shares of {name} revealed; {t} needed")
        # Any t shares determine the secret; using exactly t keeps it deterministic.
        return shamir.combine(dict(sorted(shares.items())[:t]))

    def per_node(
        self, algorithm: algorithms.Algorithm, params: Any, model: tuple[float, ...]
    ) -> tuple[dict[str, Message], dict[str, str]]:
        """A per-node release (a metric): the releases, and each refusing node's reason."""
        step = self._send("round", algorithm.name, self.alive, values=model,
                          params=algorithms.to_wire(params))
        refusals: dict[str, str] = {}
        answers = self._collect(step, "release", self.alive, refusals=refusals)
        self.released_from += answers.values()
        for node, reason in refusals.items():
            log.warning("hub: node %s did not release %s: %s", node, algorithm.name, reason)
        return answers, refusals

    # --- products ----------------------------------------------------------------------------

    def statistics(self) -> list[StatsRow]:
        stats = algorithms.Stats()
        dp = self.config.dp
        params = algorithms.StatsParams(
            k=self.config.k, noise_multiplier=dp.noise_multiplier if dp else 0.0
        )
        total, survivors = self.aggregate(stats, params)
        rows = stats.combine(total, params, len(survivors), dp is not None)
        return [StatsRow(label, {"combined": value}) for label, value in rows]

    def fit(self) -> FitResult:
        """Federated Newton-Raphson logistic regression (exact, or DP if configured)."""
        glm = algorithms.GLM()
        dp = self.config.dp
        params = algorithms.GLMParams(noise_multiplier=dp.noise_multiplier if dp else 0.0)
        p = glm.size(params)
        beta = np.zeros(p)
        # Under DP: the releases the run planned that the statistics left over.
        max_rounds = dp.releases - len(self.dp_multipliers) if dp else self.config.max_rounds
        if max_rounds < 1:
            self.stop(f"the run's DP plan of {dp.releases if dp else 0} releases is spent; "
                      f"fix: plan more (--dp-rounds) in a new run")
        converged, loglik, hessian = False, None, np.eye(p)
        last_model: tuple[float, ...] = tuple(beta)
        rounds = 0
        steps: list[float] = []
        for rounds in range(1, max_rounds + 1):
            last_model = tuple(float(v) for v in beta)
            total, _ = self.aggregate(glm, params, last_model)
            gradient, hessian, loglik = glm.split(total, params)
            if dp:
                hessian, loglik = _positive_definite(hessian), None
            try:
                step = np.linalg.solve(hessian, gradient)
            except np.linalg.LinAlgError:
                self.stop(f"the summed Hessian is singular in round {rounds}: a covariate is "
                          f"constant or collinear over all nodes")
            if dp:
                # Noise can make one step huge; a trust region keeps the scores of the next
                # model inside the nodes' limits (post-processing: costs no privacy).
                step = step * min(1.0, DP_MAX_STEP / max(float(np.linalg.norm(step)), 1e-12))
            beta = beta + step
            steps.append(float(np.max(np.abs(step))))
            if not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > 1e3:
                self.stop(f"Newton diverged in round {rounds}: coefficients {beta.round(2)} - "
                          f"(quasi-)separation: some covariate pattern predicts the outcome "
                          f"perfectly")
            if not dp and steps[-1] < self.config.tolerance:
                converged = True
                break
        if not dp and not converged:
            growing = len(steps) > 2 and steps[-1] > steps[-2] * 0.5
            self.stop(
                f"the fit did not converge in {rounds} Newton rounds (last step "
                f"{steps[-1]:.2g}); "
                + ("the steps are not shrinking: (quasi-)separation is likely; fix: drop or "
                   "merge the covariate that separates the outcome" if growing
                   else "fix: allow more rounds")
            )
        epsilon = (
            privacy.epsilon(self.dp_multipliers, dp.delta) if dp and self.dp_multipliers else None
        )
        metric = algorithms.AUC()
        auc_params = algorithms.AUCParams(
            params.table, params.outcome, params.covariates, params.family,
            noise_multiplier=0.0,
        )
        releases, refusals = self.per_node(metric, auc_params, last_model)
        transform = glm.to_original_scale(params)
        covariance = transform @ np.linalg.inv(hessian) @ transform.T
        return FitResult(
            coefficients=transform @ beta,
            standard_errors=np.sqrt(np.diag(covariance)),
            rounds=rounds,
            converged=converged or bool(dp),
            loglik=loglik,
            auc={n: m.values[0] for n, m in sorted(releases.items()) if len(m.values) == 1},
            epsilon=epsilon,
            participants=self.alive,
            auc_refused=refusals,
            names=("intercept", *params.covariates),
        )


def _positive_definite(matrix: np.ndarray, floor: float = 1.0) -> np.ndarray:
    """Noise can make the aggregated Hessian indefinite: floor its eigenvalues."""
    symmetric = (matrix + matrix.T) / 2.0
    values, vectors = np.linalg.eigh(symmetric)
    result: np.ndarray = (vectors * np.maximum(values, floor)) @ vectors.T
    return result
