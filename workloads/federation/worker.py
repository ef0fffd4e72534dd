"""A node's federation worker: answers the hub's steps from its own warehouse only.

It reads a message only after checking its signature against the pinned roster (the hub
signs every step) and refusing replays; answers only steps addressed to it; signs every
answer; hands every value it releases to the node guard (guard.py) first; and never dies
on a message: whatever goes wrong becomes a signed `abort` carrying the reason, which the
hub prints. A repeated step (at-least-once delivery) gets the very same bytes again.

Secure aggregation, per run (secure_agg.py has the algebra):
  setup  -> keys:   fresh X25519 keys c (share encryption) and s (pairwise masks), signed
                    with the node's long-term key
  share  -> shares: verify every peer's signed keys against the roster; Shamir-share the
                    s key and one self-mask seed per slot (threshold t) to every peer,
                    encrypted to the peer's c key
  round  -> masked: the algorithm's release through the guard, double masked for the
                    round's participants, and a signed receipt of that participant set
  check  -> commit: sign the set of survivors (once per round: never two sets)
  unmask -> reveal: given receipts from everyone (no dropout) or t commits to one survivor
                    set, reveal b shares of survivors and s shares of the dropped, never
                    both for one node, and never again for a node whose s was revealed
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from workloads.contracts.catalogue import ANALYSABLE
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.federation import algorithms, privacy, secure_agg, shamir
from workloads.federation import data as node_data
from workloads.federation.analysis_glm import PushDown
from workloads.federation.guard import (
    Guard,
    NodePolicy,
    RefusedError,
    Release,
    load_policy,
    opened_ledger,
)
from workloads.federation.identity import Signer, local_signer, verify
from workloads.federation.node_handle import NodeHandle
from workloads.federation.protocol import (
    Message,
    MessageRejectedError,
    ReplayGuard,
    accept,
)
from workloads.federation.roster import HUB, Roster
from workloads.federation.roster import load as load_roster
from workloads.federation.table_counts import TableCounts
from workloads.federation.transport import NodeEndpoint
from workloads.local_node import LocalNode
from workloads.warehouse.base import Warehouse

log = logging.getLogger(__name__)
MAX_SLOTS = 64
SECAGG = "secagg"  # the algorithm name of the key set-up steps


def advert_payload(run_id: str, node: str, c_public: str, s_public: str) -> bytes:
    return f"sovereign-federation-advert|{run_id}|{node}|{c_public}|{s_public}".encode()


def receipt_payload(run_id: str, round_: int, members: tuple[str, ...]) -> bytes:
    return f"sovereign-federation-receipt|{run_id}|{round_}|{','.join(sorted(members))}".encode()


def commit_payload(run_id: str, round_: int, members: tuple[str, ...]) -> bytes:
    return f"sovereign-federation-commit|{run_id}|{round_}|{','.join(sorted(members))}".encode()


def members_of(text: str) -> tuple[str, ...]:
    return tuple(sorted(n for n in text.split(",") if n)) if text else ()


@dataclass
class Pending:
    """A masked release waiting for its unmask step."""

    release: Release
    members: tuple[str, ...]  # the round's participants (the masks cover them)
    slot: int
    exact: bool


@dataclass
class RunState:
    members: tuple[str, ...]  # who was asked to set up (U0)
    slots: int
    threshold: int
    c_key: X25519PrivateKey
    s_secret: int
    b_seeds: list[int]
    adverts: dict[str, tuple[str, str]] = field(default_factory=dict)  # node -> (c, s)
    shares: dict[str, dict[str, Any]] = field(default_factory=dict)  # from node -> shares
    used_slots: set[int] = field(default_factory=set)
    pending: dict[int, Pending] = field(default_factory=dict)  # round -> release
    views: dict[int, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    revealed_s: set[str] = field(default_factory=set)
    last_glm: tuple[str, tuple[float, ...]] | None = None
    metric_done: bool = False

    @property
    def s_key(self) -> X25519PrivateKey:
        return secure_agg.private_from_secret(self.s_secret)


@dataclass
class NodeWorker:
    node: NodeHandle  # a local folder or a cloud node (node_handle.py)
    endpoint: NodeEndpoint
    signer: Signer
    roster: Roster
    policy: NodePolicy = field(default_factory=NodePolicy)
    rejected: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    _runs: dict[str, RunState] = field(default_factory=dict)
    _answers: dict[tuple[str, int, str], bytes] = field(default_factory=dict)
    _data: dict[tuple[str, tuple[str, ...]], node_data.NodeData] = field(default_factory=dict)
    _replays: ReplayGuard = field(default_factory=ReplayGuard)
    _warehouse: Warehouse | None = None  # the node's tables, open while serving
    _ledger: Warehouse | None = None  # the guard's (locally the same connection)
    _guard: Guard | None = None
    # The node's own catalogue: push-down analyses are re-validated against it.
    tables: Sequence[Table] = ANALYSABLE

    @classmethod
    def local(cls, node: LocalNode, endpoint: NodeEndpoint) -> NodeWorker:
        """A worker of a local node: its key file, the roster and policy beside it."""
        return cls(
            node,
            endpoint,
            local_signer(node.root, node.name, create=False),
            load_roster(node.root),
            load_policy(node),
        )

    def __post_init__(self) -> None:
        if self.roster.key_of(self.name) != self.signer.public_hex():
            raise UserError(
                f"node {self.name!r}: its signing key is not the one pinned in the roster; "
                f"fix: pin this node's public key {self.signer.public_hex()} in the roster"
            )

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def guard(self) -> Guard:
        if self._guard is None or self._guard.warehouse is not self._ledger:
            self._guard = Guard(self.node, self.policy, self._ledger)
        return self._guard

    def data(self, table: str, columns: tuple[str, ...]) -> node_data.NodeData:
        key = (table, columns)
        if key not in self._data:
            self._data[key] = node_data.load(self.node, table, columns, self._warehouse)
        return self._data[key]

    def close(self) -> None:
        if self._ledger is not None and self._ledger is not self._warehouse:
            self._ledger.close()
        self._ledger = None
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None

    def preload(self) -> None:
        """Read the rows of the default model and load the noise sampler before any step."""
        glm = algorithms.GLMParams()
        self.data(glm.table, algorithms.GLM().columns(glm))
        privacy.warm_up()

    def serve(
        self,
        stop: threading.Event | None = None,
        *,
        exit_after_run: bool = False,
        idle_timeout: float | None = None,
    ) -> None:
        """Answer steps until `stop` is set, a run ends (if exit_after_run) or idle.

        The node's warehouse stays open while serving (one connection for reads, the
        odometer and the release log) and is closed when serving ends.
        """
        if self._warehouse is None:
            self._warehouse = self.node.open_warehouse(create=False)
            self._ledger = self.node.open_ledger(self._warehouse)
            if self._warehouse.dialect == "duckdb":
                # The guard's small writes need no thread pool; DuckDB's would compete with
                # the node's own numpy work (and other nodes' workers, in-process).
                self._warehouse.query("SET threads = 1")
        try:
            self._serve(stop, exit_after_run=exit_after_run, idle_timeout=idle_timeout)
        finally:
            self.close()

    def _serve(
        self,
        stop: threading.Event | None,
        *,
        exit_after_run: bool,
        idle_timeout: float | None,
    ) -> None:
        last = time.monotonic()
        while stop is None or not stop.is_set():
            batch = self.endpoint.receive(timeout=0.2)
            if batch:
                last = time.monotonic()
            for data in batch:
                if self.handle(data) and exit_after_run:
                    return
            if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                log.info("node %s: idle for %.0f s, stopping", self.name, idle_timeout)
                return

    def handle(self, data: bytes) -> bool:
        """Process one broadcast message; True when it ends a run addressed to this node.

        Never raises: anything wrong with the message is a logged rejection, anything this
        node will not or cannot answer is a signed abort with the reason.
        """
        try:
            return self._handle(data)
        except Exception as exc:  # the last line of defence: a worker never dies on input
            log.exception("node %s: unexpected error", self.name)
            self._reject(f"internal error on a message: {type(exc).__name__}: {exc}")
            return False

    def _handle(self, data: bytes) -> bool:
        try:
            message = accept(data, self.roster, self._replays)
        except MessageRejectedError as exc:
            self._reject(f"broadcast rejected: {exc}")
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
        key = (message.run_id, message.round, message.kind)
        if key not in self._answers:
            try:
                reply = self._answer(message)
            except (RefusedError, UserError, ValueError, KeyError) as exc:
                reason = str(exc) or type(exc).__name__
                self.refused.append(reason)
                log.warning("node %s: refused %s step %d: %s", self.name, message.kind,
                            message.round, reason)
                reply = self._reply(message, "abort", params={"reason": reason[:1000]})
            except Exception as exc:  # the node cannot answer: say so now, not by silence
                # Only the error's type leaves: an engine's message can quote stored values.
                log.exception("node %s: cannot answer %s step %d", self.name, message.kind,
                              message.round)
                reason = (f"internal error ({type(exc).__name__}); the node's log has the "
                          "details")
                self.refused.append(reason)
                reply = self._reply(message, "abort", params={"reason": reason[:1000]})
            self._answers[key] = reply.sign(self.signer).encode()
        self.endpoint.upload(self._answers[key])
        return False

    def _reject(self, reason: str) -> None:
        log.warning("node %s: %s", self.name, reason)
        self.rejected.append(reason)

    def _forget(self, run_id: str) -> None:
        self._runs.pop(run_id, None)
        for key in [k for k in self._answers if k[0] == run_id]:
            del self._answers[key]

    def _reply(self, announce: Message, kind: str, **payload: Any) -> Message:
        return Message(
            run_id=announce.run_id,
            round=announce.round,
            node=self.name,
            algorithm=announce.algorithm,
            kind=kind,
            **payload,
        )

    def _answer(self, m: Message) -> Message:
        handlers = {
            "setup": self._setup,
            "share": self._share,
            "round": self._round,
            "check": self._check,
            "unmask": self._unmask,
        }
        if m.kind not in handlers:
            raise RefusedError(f"{m.kind!r} is not a step the hub sends")
        return handlers[m.kind](m)

    def _run(self, m: Message) -> RunState:
        state = self._runs.get(m.run_id)
        if state is None:
            raise RefusedError(f"run {m.run_id} was not set up with this node")
        return state

    # --- set-up ------------------------------------------------------------------------------

    def _setup(self, m: Message) -> Message:
        if m.run_id in self._runs:
            raise RefusedError(f"run {m.run_id} is already set up (a run id is used once)")
        members = tuple(sorted(set(m.to)))
        unknown = [n for n in members if self.roster.key_of(n) is None]
        if unknown:
            raise RefusedError(f"{', '.join(unknown)} not in this node's pinned roster")
        slots = int(m.params.get("slots", "0"))
        if not 1 <= slots <= MAX_SLOTS:
            raise RefusedError(f"{slots} slots; 1-{MAX_SLOTS} allowed")
        t = secure_agg.threshold(len(members))
        if len(members) > secure_agg.MAX_NODES:
            raise RefusedError(f"{len(members)} nodes; at most {secure_agg.MAX_NODES}")
        c_key = X25519PrivateKey.generate()
        state = RunState(
            members=members,
            slots=slots,
            threshold=t,
            c_key=c_key,
            s_secret=shamir.random_secret(),
            b_seeds=[shamir.random_secret() for _ in range(slots)],
        )
        self._runs[m.run_id] = state
        c_public = secure_agg.public_hex(c_key)
        s_public = secure_agg.public_hex(state.s_key)
        signature = self.signer.sign(advert_payload(m.run_id, self.name, c_public, s_public))
        return self._reply(m, "keys", keys={"c": c_public, "s": s_public, "sig": signature.hex()})

    def _share(self, m: Message) -> Message:
        state = self._run(m)
        if state.adverts:
            raise RefusedError("keys were already distributed for this run")
        adverts: dict[str, tuple[str, str]] = {}
        for node, text in m.keys.items():
            parts = text.split(":")
            key = self.roster.key_of(node)
            if len(parts) != 3 or key is None or node not in state.members:
                raise RefusedError(f"key advertisement of {node!r} is not from a set-up member")
            c_public, s_public, signature = parts
            if not verify(key, advert_payload(m.run_id, node, c_public, s_public),
                          bytes.fromhex(signature)):
                raise RefusedError(f"the keys said to be {node}'s are not signed by {node}")
            adverts[node] = (c_public, s_public)
        mine = (secure_agg.public_hex(state.c_key), secure_agg.public_hex(state.s_key))
        if adverts.get(self.name) != mine:
            raise RefusedError("the distributed key set does not hold this node's keys")
        if len({s for _, s in adverts.values()}) != len(adverts):
            raise RefusedError("two nodes advertise the same key")
        members = tuple(sorted(adverts))
        if len(members) < state.threshold:
            raise RefusedError(
                f"{len(members)} nodes sent keys; the threshold is {state.threshold}"
            )
        state.adverts = adverts
        s_shares = secure_agg.split(state.s_secret, members, state.threshold)
        b_shares = [secure_agg.split(b, members, state.threshold) for b in state.b_seeds]
        blobs = {}
        for peer in members:
            content: dict[str, object] = {
                "s": shamir.to_hex(s_shares[peer]),
                "b": [shamir.to_hex(shares[peer]) for shares in b_shares],
            }
            if peer == self.name:
                state.shares[peer] = content
                continue
            sealing = secure_agg.share_key(state.c_key, adverts[peer][0], m.run_id)
            blobs[peer] = secure_agg.seal(sealing, self.name, peer, m.run_id, content)
        return self._reply(m, "shares", blobs=blobs)

    def _receive_shares(self, m: Message, state: RunState) -> None:
        """Open the shares peers sent this node (delivered with the first round)."""
        for route, blob in m.blobs.items():
            sender, _, recipient = route.partition(">")
            if recipient != self.name or sender in state.shares or sender not in state.adverts:
                continue
            key = secure_agg.share_key(state.c_key, state.adverts[sender][0], m.run_id)
            content = secure_agg.open_sealed(key, sender, self.name, m.run_id, blob)
            b = content.get("b")
            if not isinstance(b, list) or len(b) != state.slots or not isinstance(
                content.get("s"), str
            ):
                raise RefusedError(f"shares from {sender} have the wrong shape")
            state.shares[sender] = content

    # --- a round -----------------------------------------------------------------------------

    def _round(self, m: Message) -> Message:
        state = self._run(m)
        algorithm = algorithms.lookup(m.algorithm)
        if isinstance(algorithm, PushDown):
            algorithm = algorithm.for_catalogue(self.tables)  # this node's own declarations
        try:
            params = algorithms.from_wire(
                algorithm.params_type, {k: v for k, v in m.params.items() if k != "slot"}
            )
        except ValueError as exc:
            raise RefusedError(f"{algorithm.name} parameters: {exc}") from None
        model = np.asarray(m.values, dtype=np.float64)
        if model.shape != (algorithm.model_size(params),):
            raise RefusedError(f"expected a model of {algorithm.model_size(params)} values")
        if isinstance(algorithm, TableCounts):  # `federate nodes`: a DP count per table
            if self._warehouse is None:
                raise RefusedError("table counts are answered only while serving")
            values, status = algorithm.answer(self._warehouse, self.guard, self.name, params,
                                              m.run_id, m.round)
            return self._reply(m, "release", values=values, params=status)
        if algorithm.release_class == "metrics":
            data = self.data(params.table, algorithm.columns(params))
            return self._metric(m, state, algorithm, params, data, model)
        if not state.adverts:
            raise RefusedError("no keys were distributed for this run")
        self._receive_shares(m, state)
        members = tuple(sorted(set(m.to)))
        if not set(members) <= set(state.shares):
            raise RefusedError("the round names nodes whose shares this node does not hold")
        if gone := set(members) & state.revealed_s:
            raise RefusedError(f"{', '.join(sorted(gone))} dropped earlier in this run")
        if len(members) < state.threshold:
            raise RefusedError(f"{len(members)} participants; the threshold is {state.threshold}")
        slot = int(m.params.get("slot", "-1"))
        if not 0 <= slot < state.slots or slot in state.used_slots:
            raise RefusedError(f"slot {slot} is used or out of range")
        vector = self._compute(algorithm, params, model)
        release = Release(
            dataset=params.table,
            algorithm=algorithm.name,
            query=algorithms.query(algorithm, params, m.values),
            release_class=algorithm.release_class,
            participants=members,
            run_id=m.run_id,
            step=m.round,
            sensitivity=algorithm.sensitivity(params),
            noise_multiplier=algorithms.noise_of(params),
        )
        encoded = self.guard.release(release, vector, record=False)
        keep = getattr(algorithm, "keep", None)  # its own DP release, for post-processing
        if keep is not None and release.noise_multiplier is not None:
            # Kept with the guard's state (the ledger: the one place a cloud worker writes).
            with self._ledger_for_call() as ledger:
                keep(ledger, params, m.run_id, self.name, secure_agg.decode(encoded))
        state.used_slots.add(slot)
        state.pending[m.round] = Pending(release, members, slot, release.noise_multiplier is None)
        if algorithm.name == algorithms.GLM.name:
            state.last_glm = (algorithms.query(algorithm, params, ()), tuple(m.values))
        s_publics = {n: state.adverts[n][1] for n in members}
        masked = secure_agg.mask(
            encoded, self.name, state.b_seeds[slot], state.s_key, s_publics, f"{m.run_id}|{slot}"
        )
        receipt = self.signer.sign(receipt_payload(m.run_id, m.round, members))
        return self._reply(
            m, "masked", masked=tuple(secure_agg.to_wire(masked)), keys={"receipt": receipt.hex()},
            params=self._charge(release),
        )

    def _ledger_for_call(self) -> AbstractContextManager[Warehouse]:
        """The ledger kept open while serving, else one opened (and closed) for this call."""
        return nullcontext(self._ledger) if self._ledger is not None else opened_ledger(self.node)

    def _charge(self, release: Release) -> dict[str, str]:
        """What this run's DP releases of the dataset cost so far, from the node's own
        odometer (the hub keeps it in the run's audit record); nothing for exact releases."""
        if release.noise_multiplier is None:
            return {}
        return {"dp_dataset": release.dataset,
                "dp_epsilon": repr(self.guard.run_epsilon(release.dataset, release.run_id)),
                "dp_delta": repr(self.policy.lifetime_delta)}

    def _compute(self, algorithm: algorithms.Algorithm, params: Any, model: np.ndarray
                 ) -> np.ndarray:
        """Push-down algorithms query the warehouse; the others get the rows in numpy."""
        if getattr(algorithm, "reads_ledger", False):  # post-processing of kept DP releases
            with self._ledger_for_call() as ledger:
                return algorithm.compute_in(ledger, params, model, self.policy)  # type: ignore[attr-defined, no-any-return]
        if isinstance(algorithm, PushDown):
            if self._warehouse is not None:
                return algorithm.compute_in(self._warehouse, params, model, self.policy)
            warehouse = self.node.open_warehouse(create=False)
            try:
                return algorithm.compute_in(warehouse, params, model, self.policy)
            finally:
                warehouse.close()
        data = self.data(params.table, algorithm.columns(params))
        return algorithm.compute(data, params, model, self.policy)

    def _metric(
        self,
        m: Message,
        state: RunState,
        algorithm: algorithms.Algorithm,
        params: Any,
        data: node_data.NodeData,
        model: np.ndarray,
    ) -> Message:
        glm = algorithms.GLM()
        glm_params = algorithms.GLMParams(params.table, params.outcome, params.covariates,
                                          params.family)
        if state.last_glm is None or state.last_glm != (
            algorithms.query(glm, glm_params, ()), tuple(m.values)
        ):
            raise RefusedError(
                "a metric is computed only for the final model of a run this node fitted "
                "(the last model it answered in this run), never for other coefficients"
            )
        if state.metric_done:
            raise RefusedError("this run's metric was already released")
        vector = algorithm.compute(data, params, model, self.policy)
        requested = algorithms.noise_of(params)
        exact_ok = "metrics" in self.policy.exact_releases
        multiplier = requested if (requested or not exact_ok) else None
        if multiplier is None and not exact_ok:
            multiplier = self.policy.metric_noise_multiplier
        if multiplier is not None:
            multiplier = max(multiplier, self.policy.metric_noise_multiplier)
        release = Release(
            dataset=params.table,
            algorithm=algorithm.name,
            query=algorithms.query(algorithm, params, m.values),
            release_class="metrics",
            participants=(self.name,),
            run_id=m.run_id,
            step=m.round,
            sensitivity=1.0 / self.policy.metric_min_class,
            noise_multiplier=multiplier,
        )
        encoded = self.guard.release(release, vector)
        state.metric_done = True
        value = float(np.clip(secure_agg.decode(encoded), 0.0, 1.0)[0])
        return self._reply(
            m, "release", values=(value,),
            params={"dp": "true" if multiplier else "false",
                    **self._charge(release)},
        )

    # --- consistency and unmasking -----------------------------------------------------------

    def _survivors(self, m: Message, state: RunState) -> tuple[Pending, tuple[str, ...]]:
        pending = state.pending.get(int(m.params.get("of", "-1")))
        if pending is None:
            raise RefusedError("no masked release of this node waits for that round")
        survivors = members_of(m.keys.get("survivors", ""))
        if not set(survivors) <= set(pending.members) or self.name not in survivors:
            raise RefusedError("the survivor set is not inside the round's participants")
        if len(survivors) < state.threshold:
            raise RefusedError(
                f"{len(survivors)} survivors; unmasking needs at least {state.threshold}"
            )
        return pending, survivors

    def _check(self, m: Message) -> Message:
        state = self._run(m)
        pending, survivors = self._survivors(m, state)
        view = state.views.get(pending.slot)
        if view is not None and view[1] != survivors:
            raise RefusedError("this node already answered that round for another survivor set")
        state.views[pending.slot] = ("commit", survivors)
        signature = self.signer.sign(commit_payload(m.run_id, int(m.params["of"]), survivors))
        return self._reply(m, "commit", keys={"commit": signature.hex()})

    def _unmask(self, m: Message) -> Message:
        state = self._run(m)
        of = int(m.params.get("of", "-1"))
        pending, survivors = self._survivors(m, state)
        dropped = tuple(n for n in pending.members if n not in survivors)
        view = state.views.get(pending.slot)
        if view is not None and view[1] != survivors:
            raise RefusedError("this node already answered that round for another survivor set")
        if dropped:
            proof = commit_payload(m.run_id, of, survivors)
            signers = [
                n for n in survivors
                if (key := self.roster.key_of(n)) and n in m.blobs
                and _verifies(verify, key, proof, m.blobs[n])
            ]
            if len(signers) < state.threshold or (view is None or view[0] != "commit"):
                raise RefusedError(
                    f"unmasking with dropouts needs commits of {state.threshold} survivors to "
                    f"one set (got {len(signers)})"
                )
        else:
            proof = receipt_payload(m.run_id, of, pending.members)
            missing = [
                n for n in pending.members
                if not ((key := self.roster.key_of(n)) and n in m.blobs
                        and _verifies(verify, key, proof, m.blobs[n]))
            ]
            if missing:
                raise RefusedError(f"no signed receipt of the round from {', '.join(missing)}")
        # The sum becomes readable over `survivors`: the guard judges that set (and logs an
        # exact release) before any share leaves.
        if pending.exact:
            self.guard.admit(replace(pending.release, participants=survivors), record=True)
        elif len(survivors) < self.policy.min_dp_participants:
            raise RefusedError(
                f"{len(survivors)} survivors: this node's policy needs "
                f"{self.policy.min_dp_participants} for a DP masked release"
            )
        state.views[pending.slot] = ("reveal", survivors)
        keys: dict[str, str] = {}
        for node in survivors:
            keys[f"b:{node}"] = str(state.shares[node]["b"][pending.slot])
        for node in dropped:
            keys[f"s:{node}"] = str(state.shares[node]["s"])
            state.revealed_s.add(node)
        return self._reply(m, "reveal", keys=keys, params={"of": str(of)})



def _verifies(verify: Any, key: str, payload: bytes, signature_hex: str) -> bool:
    try:
        return bool(verify(key, payload, bytes.fromhex(signature_hex)))
    except ValueError:
        return False

