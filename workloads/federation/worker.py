"""A node's federation worker: answers the hub's rounds from its own warehouse only.

It reads nothing but its node's encrypted warehouse, releases only aggregates (masked,
suppressed or noised as the round asks), ignores messages addressed to other nodes,
answers a repeated announcement with the very same bytes (so a redelivery never
releases a second noisy sample), ignores announcements older than `max_age_s`, and
refuses a differentially private round that would take its run past its budget or the
node's own epsilon ceiling. Differentially private releases are counted in a ledger in
the node's folder (written before the release), so a restarted worker cannot be asked
to spend a run's budget twice.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from workloads.federation import disclosure, local_stats, privacy, secure_agg
from workloads.federation.protocol import HUB, Message, MessageRejectedError, decode
from workloads.federation.transport import NodeEndpoint
from workloads.local_node import LocalNode

log = logging.getLogger(__name__)
DEFAULT_MAX_EPSILON = 10.0
DEFAULT_MAX_AGE_S = 3600.0
LEDGER_NAME = "dp_ledger.json"


@dataclass
class NodeWorker:
    node: LocalNode
    endpoint: NodeEndpoint
    max_epsilon: float = DEFAULT_MAX_EPSILON
    max_age_s: float = DEFAULT_MAX_AGE_S
    min_k: int = disclosure.DEFAULT_K  # the node's own floor: the hub may ask for more only
    rejected: list[str] = field(default_factory=list)
    _data: local_stats.NodeData | None = None
    _keys: dict[tuple[str, int], X25519PrivateKey] = field(default_factory=dict)
    _answers: dict[tuple[str, int], bytes] = field(default_factory=dict)
    _rng: np.random.Generator = field(default_factory=np.random.default_rng)

    @property
    def name(self) -> str:
        return self.node.name

    def data(self) -> local_stats.NodeData:
        if self._data is None:
            self._data = local_stats.load(self.node)
        return self._data

    def serve(
        self,
        stop: threading.Event | None = None,
        *,
        exit_after_run: bool = False,
        idle_timeout: float | None = None,
    ) -> None:
        """Answer rounds until `stop` is set, a run ends (if exit_after_run) or idle."""
        last = time.monotonic()
        while stop is None or not stop.is_set():
            batch = self.endpoint.receive(timeout=0.2)
            if batch:
                last = time.monotonic()
            for data in batch:
                ended = self.handle(data)
                if ended and exit_after_run:
                    return
            if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                log.info("node %s: idle for %.0f s, stopping", self.name, idle_timeout)
                return

    def handle(self, data: bytes) -> bool:
        """Process one broadcast message; True when it ends a run addressed to this node."""
        try:
            message = decode(data)
        except MessageRejectedError as exc:
            self._reject(f"malformed broadcast: {exc}")
            return False
        if message.node != HUB:
            self._reject(f"broadcast from {message.node!r}, not the hub")
            return False
        if self.name not in message.to:
            return False  # addressed to other nodes: not ours to answer
        if message.kind in ("done", "abort"):
            log.info("node %s: run %s %s", self.name, message.run_id, message.kind)
            self._forget(message.run_id)
            return True
        if message.kind != "announce":
            self._reject(f"unexpected {message.kind} on the broadcast topic")
            return False
        age = time.time() - message.sent_at / 1000.0
        if age > self.max_age_s:
            self._reject(f"run {message.run_id} round {message.round}: announced {age:.0f} s ago")
            return False
        answer_key = (message.run_id, message.round)
        if answer_key not in self._answers:
            try:
                reply = self._answer(message)
            except (ValueError, KeyError, privacy.BudgetExceededError) as exc:
                self._reject(f"run {message.run_id} round {message.round} refused: {exc}")
                return False
            if reply is None:
                return False
            self._answers[answer_key] = reply.encode()
        self.endpoint.upload(self._answers[answer_key])
        return False

    def _reject(self, reason: str) -> None:
        log.warning("node %s: %s", self.name, reason)
        self.rejected.append(reason)

    def _forget(self, run_id: str) -> None:
        for store in (self._keys, self._answers):
            for key in [k for k in store if k[0] == run_id]:
                del store[key]

    def _reply(
        self,
        announce: Message,
        *,
        kind: str = "result",
        values: tuple[float, ...] = (),
        masked: tuple[int, ...] = (),
        public_keys: dict[str, str] | None = None,
    ) -> Message:
        return Message(
            run_id=announce.run_id,
            round=announce.round,
            node=self.name,
            algorithm=announce.algorithm,
            kind=kind,
            values=values,
            masked=masked,
            public_keys=public_keys or {},
        )

    def _answer(self, announce: Message) -> Message | None:
        if announce.algorithm == "keys":
            key = secure_agg.new_private_key()
            self._keys[(announce.run_id, announce.round)] = key
            return self._reply(
                announce,
                kind="public_key",
                public_keys={self.name: secure_agg.public_hex(key)},
            )
        if announce.algorithm == "stats":
            dp = dp_config(announce.params)
            vector = local_stats.stats_vector(self.data(), bounded=dp is not None)
            if dp is not None:
                sigma = self._spend(announce, dp) * privacy.stats_sensitivity(
                    local_stats.CELLS_PER_PATIENT, len(local_stats.STATS_FIELDS)
                )
                vector = privacy.noisy(vector, sigma, self._rng)
            k = max(int(announce.params.get("k", self.min_k)), self.min_k)
            released = disclosure.node_release(vector, k)
            return self._reply(
                announce,
                values=tuple(released),
                masked=self._masked(announce, vector),
            )
        if announce.algorithm == "logreg":
            beta = np.asarray(announce.values, dtype=np.float64)
            if beta.shape != (len(local_stats.COEFFICIENT_NAMES),):
                raise ValueError(f"expected {len(local_stats.COEFFICIENT_NAMES)} coefficients")
            if announce.params.get("phase") == "auc":
                return self._reply(announce, values=(local_stats.auc(self.data(), beta),))
            return self._reply(announce, masked=self._masked(announce, self._newton(announce)))
        raise ValueError(f"unknown algorithm {announce.algorithm!r}")

    def _newton(self, announce: Message) -> np.ndarray:
        beta = np.asarray(announce.values, dtype=np.float64)
        dp = dp_config(announce.params)
        if dp is None:
            return local_stats.newton_vector(self.data(), beta)
        sigma = self._spend(announce, dp) * privacy.sensitivity(dp.clip)
        vector = local_stats.newton_vector(self.data(), beta, clip=dp.clip)
        vector[-1] = 0.0  # the log-likelihood is not released under DP
        return privacy.noisy(vector, sigma, self._rng)

    def _spend(self, announce: Message, dp: privacy.DPConfig) -> float:
        """Count one DP release of this run in the ledger, or refuse; the noise multiplier."""
        if dp.epsilon > self.max_epsilon:
            raise privacy.BudgetExceededError(
                f"run budget epsilon {dp.epsilon} exceeds this node's ceiling {self.max_epsilon}"
            )
        multiplier = float(announce.params["noise_multiplier"])
        ledger = self._ledger()
        releases = ledger.get(announce.run_id, 0) + 1
        # Checked before computing anything: refusal happens before any release.
        privacy.check_budget(multiplier, releases, dp)
        self._write_ledger({**ledger, announce.run_id: releases})
        return multiplier

    @property
    def ledger_path(self) -> Path:
        return self.node.folder / LEDGER_NAME

    def _ledger(self) -> dict[str, int]:
        """run id -> differentially private releases this node made for it."""
        if not self.ledger_path.exists():
            return {}
        ledger: dict[str, int] = json.loads(self.ledger_path.read_text())
        return ledger

    def _write_ledger(self, ledger: dict[str, int]) -> None:
        temporary = self.ledger_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(ledger, sort_keys=True))
        os.replace(temporary, self.ledger_path)  # atomic: never a half-written ledger

    def _masked(self, announce: Message, vector: np.ndarray) -> tuple[int, ...]:
        key_round = int(announce.params["key_round"])
        own = self._keys.get((announce.run_id, key_round))
        if own is None:
            raise KeyError(f"no key of ours for key round {key_round}")
        peers = dict(announce.public_keys)
        if peers.get(self.name) != secure_agg.public_hex(own):
            raise ValueError("the announced key set does not hold our public key")
        if len(peers) < 2:
            raise ValueError("masking needs at least two participants (else the sum is ours)")
        encoded = secure_agg.encode(vector)
        context = f"{announce.run_id}|{announce.round}|{announce.algorithm}"
        masked = secure_agg.mask(encoded, self.name, own, peers, context)
        return tuple(secure_agg.to_wire(masked))


def dp_config(params: dict[str, str]) -> privacy.DPConfig | None:
    if "dp_epsilon" not in params:
        return None
    return privacy.DPConfig(
        epsilon=float(params["dp_epsilon"]),
        delta=float(params["dp_delta"]),
        clip=float(params["dp_clip"]),
        rounds=int(params["dp_rounds"]),
    )


def dp_params(config: privacy.DPConfig, noise_multiplier: float) -> dict[str, str]:
    return {
        "dp_epsilon": repr(config.epsilon),
        "dp_delta": repr(config.delta),
        "dp_clip": repr(config.clip),
        "dp_rounds": str(config.rounds),
        "noise_multiplier": repr(noise_multiplier),
    }
