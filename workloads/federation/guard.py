"""The node guard: every value a node releases passes here, inside the node.

The node's own policy (its configuration file, never the hub's request) decides what may
leave; a node-lifetime privacy odometer per dataset and a release log, both tables in the
node's encrypted warehouse, remember what has left. A release is written to them (one
transaction) before the guard hands it back for upload, so a crash can lose an upload
but never an entry; a restarted worker cannot be made to spend budget twice.

For each release the guard:
- refuses it if fewer than the policy's minimum participants share it (a masked sum over
  two nodes is the other node's value to either of them), or, with two, unless it is DP
  and the policy allows two-party DP releases;
- if it is exact (no noise): refuses it unless the policy lists its class under
  `exact_releases`, and refuses the same query (same algorithm, parameters and model)
  over a different participant set than any earlier release (differencing two sums over
  sets that differ by one node gives that node's value);
- if it is DP: takes the noise multiplier max(requested, the policy's minimum), composes
  it with every earlier DP release of this dataset (dp-accounting, RDP) and refuses if the
  lifetime epsilon at the policy's delta would pass the cap; then adds discrete Gaussian
  noise (privacy.py).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

import numpy as np

from workloads.contracts.errors import UserError
from workloads.contracts.federation_service import ODOMETER as ODOMETER  # re-exported
from workloads.contracts.federation_service import RELEASE_LOG as RELEASE_LOG
from workloads.federation import privacy, secure_agg
from workloads.federation.node_handle import NodeHandle
from workloads.local_node import LocalNode
from workloads.warehouse.base import Warehouse

POLICY_FILE = "federation_policy.toml"
ReleaseClass = Literal["masked_sums", "clear_cells", "metrics", "post_processing"]
RELEASE_CLASSES: tuple[ReleaseClass, ...] = ("masked_sums", "clear_cells", "metrics")
# post_processing: a masked sum computed only from this node's own earlier DP releases
# (kept in its warehouse); it costs no privacy, so it is neither charged nor logged.


class RefusedError(Exception):
    """The node will not release this; the reason goes back to the hub in a signed abort."""


@dataclass(frozen=True)
class NodePolicy:
    """A node's own rules for what leaves it (`<node folder>/federation_policy.toml`)."""

    lifetime_epsilon: float = 10.0  # per dataset, over the node's whole life
    lifetime_delta: float = 1e-6
    min_noise_multiplier: float = 1.0  # DP releases get at least this much noise
    # Releases allowed without noise: masked_sums (securely aggregated exact sums: model
    # terms and combined statistics), clear_cells (this node's own statistics table in the
    # clear), metrics (exact per-node AUC). Everything else must be DP.
    exact_releases: tuple[str, ...] = ("masked_sums",)
    min_participants: int = 3  # never below 3: a sum over two is the other node's value
    # A DP release protects this node by its own noise, whoever else is in the sum; a sum
    # over fewer than this many nodes is still refused (1: one node's own DP release).
    min_dp_participants: int = 2
    min_k: int = 10  # small-cell threshold floor (the hub may ask for more only)
    min_rows: int = 50  # a model round needs this many rows with non-saturated scores
    max_abs_score: float = 30.0  # refuse models whose scores leave (-30, 30) on any row
    metric_noise_multiplier: float = 2.0  # noise of a DP metric, times its sensitivity
    metric_min_class: int = 50  # AUC only if both classes have this many rows
    # Row counts per table (`federate nodes`, table_counts.py): DP with at least this noise
    # (sigma in rows), at most this lifetime epsilon per table on counts (within the table's
    # lifetime cap), released rounded to this many rows; below min_rows only as "< min_rows".
    count_noise_multiplier: float = 20.0
    count_epsilon: float = 1.0
    count_rounding: int = 10

    def __post_init__(self) -> None:
        problems = []
        if not self.lifetime_epsilon > 0 or not 0 < self.lifetime_delta < 1:
            problems.append("lifetime_epsilon > 0 and 0 < lifetime_delta < 1")
        if self.count_noise_multiplier <= 0 or not 0 < self.count_epsilon <= self.lifetime_epsilon:
            problems.append("count_noise_multiplier > 0 and 0 < count_epsilon <= lifetime_epsilon")
        if self.count_rounding < 1:
            problems.append("count_rounding >= 1")
        if self.min_noise_multiplier < 0 or self.metric_noise_multiplier <= 0:
            problems.append("noise multipliers >= 0")
        if unknown := set(self.exact_releases) - set(RELEASE_CLASSES):
            problems.append(f"exact_releases among {', '.join(RELEASE_CLASSES)} ({unknown})")
        if self.min_participants < 3:
            problems.append("min_participants >= 3")
        if self.min_dp_participants < 1:
            problems.append("min_dp_participants >= 1")
        if self.min_k < 1 or self.min_rows < 1 or self.metric_min_class < 1:
            problems.append("min_k, min_rows and metric_min_class >= 1")
        if problems:
            raise UserError(f"node policy is not valid; fix: {'; '.join(problems)}")


def load_policy(node: LocalNode) -> NodePolicy:
    path = node.folder / POLICY_FILE
    if not path.exists():
        return NodePolicy()
    return parse_policy(path.read_text(), str(path))


def parse_policy(text: str, where: str) -> NodePolicy:
    """A policy's TOML (a local node's file, or SOVEREIGN_POLICY in the cloud)."""
    try:
        record = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where}: {exc}; fix: correct the TOML") from None
    known = {f.name for f in fields(NodePolicy)}
    if unknown := set(record) - known:
        raise UserError(f"{where}: unknown settings {sorted(unknown)}; fix: use {sorted(known)}")
    if "exact_releases" in record:
        record["exact_releases"] = tuple(record["exact_releases"])
    try:
        return NodePolicy(**record)
    except TypeError as exc:
        raise UserError(f"{where}: {exc}; fix: correct the settings") from None


def write_policy(node: LocalNode, policy: NodePolicy) -> Path:
    """Write a node's policy file (the node operator's act; used by tests and set-up)."""
    lines = []
    for f in fields(NodePolicy):
        value = getattr(policy, f.name)
        text = json.dumps(list(value) if isinstance(value, tuple) else value)
        lines.append(f"{f.name} = {'inf' if value == float('inf') else text}")  # TOML's inf
    node.folder.mkdir(parents=True, exist_ok=True)
    path = node.folder / POLICY_FILE
    path.write_text("\n".join(lines) + "\n")
    return path


# The guard's two tables (ODOMETER, RELEASE_LOG) are declared in the contracts layer, so the
# node stack can declare them in LEDGER_DATASET; locally they live in the node's warehouse.


def query_digest(algorithm: str, params: dict[str, str], model: tuple[float, ...]) -> str:
    record = json.dumps([algorithm, sorted(params.items()), [float(v).hex() for v in model]])
    return hashlib.sha256(record.encode()).hexdigest()


@dataclass(frozen=True)
class Release:
    """What a node is about to release, as the guard needs to judge it."""

    dataset: str
    algorithm: str
    query: str  # query_digest(...): identical for the same question
    release_class: ReleaseClass
    participants: tuple[str, ...]
    run_id: str
    step: int
    sensitivity: float  # L2, under adding or removing one row
    noise_multiplier: float | None  # requested; None: exact


@contextmanager
def opened_ledger(node: NodeHandle) -> Iterator[Warehouse]:
    """The node's ledger (with the guard's tables), opened for one call and closed after."""
    data = node.open_warehouse(create=False)
    try:
        ledger = node.open_ledger(data)
        try:
            ledger.ensure_tables([ODOMETER, RELEASE_LOG])
            yield ledger
        finally:
            if ledger is not data:
                ledger.close()
    finally:
        data.close()


@dataclass
class Guard:
    node: NodeHandle
    policy: NodePolicy = field(default_factory=NodePolicy)

    # The worker's open ledger (locally: the node's warehouse), if it keeps one (else each
    # call opens and closes one: node.open_ledger).
    warehouse: Warehouse | None = None

    # With a kept warehouse this guard is its node's only writer: the release log is read
    # once and mirrored in memory (every write still goes to the warehouse first).
    _log: dict[tuple[str, str], set[str]] | None = None

    def _open(self) -> AbstractContextManager[Warehouse]:
        if self.warehouse is not None:
            if self._log is None:
                self.warehouse.ensure_tables([ODOMETER, RELEASE_LOG])
                self._log = {}
                rows = self.warehouse.query(
                    f"SELECT dataset, query, participants FROM "
                    f"{self.warehouse.table_ref(RELEASE_LOG)}"
                ).to_pylist()
                for row in rows:
                    self._log.setdefault((row["dataset"], row["query"]), set()).add(
                        row["participants"]
                    )
            return nullcontext(self.warehouse)
        return opened_ledger(self.node)

    def lifetime_epsilon(self, dataset: str) -> float:
        with self._open() as warehouse:
            spent = self._multipliers(warehouse, dataset)
        return privacy.epsilon(spent, self.policy.lifetime_delta)

    def run_epsilon(self, dataset: str, run_id: str) -> float:
        """What one run's DP releases of `dataset` cost, at the policy's delta (from the
        odometer): what the node reports to the hub for the run's audit record."""
        with self._open() as warehouse:
            spent = self._multipliers(warehouse, dataset, run_id)
        return privacy.epsilon(spent, self.policy.lifetime_delta) if spent else 0.0

    def _multipliers(self, warehouse: Warehouse, dataset: str, run_id: str | None = None
                     ) -> list[float]:
        where, params = "dataset = ?", [dataset]
        if run_id is not None:
            where, params = where + " AND run_id = ?", [dataset, run_id]
        table = warehouse.query(
            f"SELECT noise_multiplier FROM {warehouse.table_ref(ODOMETER)} WHERE {where}",
            params,
        )
        return [float(v) for v in table.column(0).to_pylist()]

    def admit(self, release: Release, *, record: bool = True) -> float | None:
        """Check and record a release; the noise multiplier to apply (None: exact).

        Raises RefusedError with the reason. Recorded before returning: the caller must
        release only what this call admitted. A DP release is charged at once (its noise is
        drawn now); an exact masked sum is only checked when masked (`record=False`) and
        recorded when the node reveals the shares that make it readable, over the set of
        nodes it is then summed over.
        """
        policy = self.policy
        members = tuple(sorted(set(release.participants)))
        dp = release.noise_multiplier is not None
        if release.release_class == "post_processing":
            if dp or len(members) < policy.min_dp_participants:
                raise RefusedError(
                    f"post-processing over {len(members)} participants: this node's policy "
                    f"needs at least {policy.min_dp_participants} (and no noise request)"
                )
            return None
        needed = policy.min_dp_participants if dp else policy.min_participants
        if release.release_class == "masked_sums" and len(members) < needed:
            raise RefusedError(
                f"{len(members)} participants ({', '.join(members)}): this node's policy "
                f"needs at least {needed} for a{' DP' if dp else 'n exact'} masked release"
            )
        with self._open() as warehouse:
            if not dp:
                if release.release_class not in policy.exact_releases:
                    raise RefusedError(
                        f"an exact {release.release_class} release; this node's policy allows "
                        f"exact releases only of {', '.join(policy.exact_releases) or 'nothing'}"
                        f" (ask for DP)"
                    )
                if self._log is not None:
                    earlier = sorted(self._log.get((release.dataset, release.query), set()))
                else:
                    earlier = (
                        warehouse.query(
                            f"SELECT DISTINCT participants FROM "
                            f"{warehouse.table_ref(RELEASE_LOG)} WHERE dataset = ? AND query = ?",
                            [release.dataset, release.query],
                        )
                        .column(0)
                        .to_pylist()
                    )
                mine = ",".join(members)
                if any(p != mine for p in earlier):
                    raise RefusedError(
                        f"the same {release.algorithm} query was answered before over "
                        f"{{{earlier[0]}}}; answering it over {{{mine}}} would let the "
                        f"difference reveal a node's exact values"
                    )
                if not record:
                    return None
                warehouse.query(
                    f"INSERT INTO {warehouse.table_ref(RELEASE_LOG)} VALUES "
                    f"(?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP)",
                    [
                        release.dataset,
                        release.query,
                        mine,
                        release.release_class,
                        release.run_id,
                        release.step,
                    ],
                )
                if self._log is not None:
                    self._log.setdefault((release.dataset, release.query), set()).add(mine)
                return None
            requested = release.noise_multiplier or 0.0
            multiplier = max(requested, policy.min_noise_multiplier, 1e-3)
            spent = self._multipliers(warehouse, release.dataset)
            after = privacy.epsilon([*spent, multiplier], policy.lifetime_delta)
            if after > policy.lifetime_epsilon:
                before = privacy.epsilon(spent, policy.lifetime_delta)
                raise RefusedError(
                    f"privacy budget of {release.dataset} spent: this release would take its "
                    f"lifetime epsilon from {before:.3f} to {after:.3f}, past this node's cap "
                    f"{policy.lifetime_epsilon} (delta {policy.lifetime_delta:g})"
                )
            warehouse.query(
                f"INSERT INTO {warehouse.table_ref(ODOMETER)} VALUES "
                f"(?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP)",
                [
                    release.dataset,
                    release.run_id,
                    release.step,
                    release.algorithm,
                    multiplier,
                    after,
                ],
            )
            return multiplier

    def release(self, release: Release, vector: np.ndarray, *, record: bool = True) -> np.ndarray:
        """The fixed-point encoding of what may leave: admitted, recorded, noised if DP."""
        try:
            encoded = secure_agg.encode(vector)
        except secure_agg.RangeError as exc:
            raise RefusedError(f"{release.algorithm}: {exc}") from None
        multiplier = self.admit(release, record=record)
        if multiplier is None:
            return encoded
        return privacy.discrete_gaussian(encoded, multiplier * release.sensitivity)

