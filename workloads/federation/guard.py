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
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

import numpy as np

from workloads.contracts.errors import UserError
from workloads.contracts.schema import Column, Table
from workloads.federation import privacy, secure_agg
from workloads.local_node import LocalNode
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

POLICY_FILE = "federation_policy.toml"
ReleaseClass = Literal["masked_sums", "clear_cells", "metrics"]
RELEASE_CLASSES: tuple[ReleaseClass, ...] = ("masked_sums", "clear_cells", "metrics")


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
        if self.min_k < 1 or self.min_rows < 1 or self.metric_min_class < 1:
            problems.append("min_k, min_rows and metric_min_class >= 1")
        if problems:
            raise UserError(f"node policy is not valid; fix: {'; '.join(problems)}")


def load_policy(node: LocalNode) -> NodePolicy:
    path = node.folder / POLICY_FILE
    if not path.exists():
        return NodePolicy()
    try:
        record = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: {exc}; fix: correct the TOML") from None
    known = {f.name for f in fields(NodePolicy)}
    if unknown := set(record) - known:
        raise UserError(f"{path}: unknown settings {sorted(unknown)}; fix: use {sorted(known)}")
    if "exact_releases" in record:
        record["exact_releases"] = tuple(record["exact_releases"])
    try:
        return NodePolicy(**record)
    except TypeError as exc:
        raise UserError(f"{path}: {exc}; fix: correct the settings") from None


def write_policy(node: LocalNode, policy: NodePolicy) -> Path:
    """Write a node's policy file (the node operator's act; used by tests and set-up)."""
    lines = []
    for f in fields(NodePolicy):
        value = getattr(policy, f.name)
        lines.append(f"{f.name} = {json.dumps(list(value) if isinstance(value, tuple) else value)}")
    node.folder.mkdir(parents=True, exist_ok=True)
    path = node.folder / POLICY_FILE
    path.write_text("\n".join(lines) + "\n")
    return path


# The guard's two tables live in the node's warehouse (encrypted under the node's key).
ODOMETER = Table(
    name="federation_odometer",
    description="Every differentially private release of this node, per dataset, for life.",
    columns=(
        Column("dataset", "STRING", "REQUIRED", "The table released from"),
        Column("run_id", "STRING", "REQUIRED", "Run of the release"),
        Column("step", "INTEGER", "REQUIRED", "Round of the release"),
        Column("algorithm", "STRING", "REQUIRED", "What was released"),
        Column("noise_multiplier", "FLOAT", "REQUIRED", "sigma / L2 sensitivity"),
        Column("epsilon_after", "FLOAT", "REQUIRED", "Lifetime epsilon after it"),
        Column("released_at", "TIMESTAMP", "REQUIRED", "When"),
    ),
)
RELEASE_LOG = Table(
    name="federation_releases",
    description="Every exact release: which query, over which participant set.",
    columns=(
        Column("dataset", "STRING", "REQUIRED", "The table released from"),
        Column("query", "STRING", "REQUIRED", "sha256 of algorithm, parameters and model"),
        Column("participants", "STRING", "REQUIRED", "Sorted comma-separated node set"),
        Column("release_class", "STRING", "REQUIRED", "masked_sums | clear_cells | metrics"),
        Column("run_id", "STRING", "REQUIRED", "Run of the release"),
        Column("step", "INTEGER", "REQUIRED", "Round of the release"),
        Column("released_at", "TIMESTAMP", "REQUIRED", "When"),
    ),
)


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


@dataclass
class Guard:
    node: LocalNode
    policy: NodePolicy = field(default_factory=NodePolicy)

    # The worker's open warehouse, if it keeps one (else each call opens and closes one).
    warehouse: DuckDBWarehouse | None = None

    # With a kept warehouse this guard is its node's only writer: the release log is read
    # once and mirrored in memory (every write still goes to the warehouse first).
    _log: dict[tuple[str, str], set[str]] | None = None

    def _open(self) -> AbstractContextManager[DuckDBWarehouse]:
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
        warehouse = self.node.open_warehouse(create=False)
        warehouse.ensure_tables([ODOMETER, RELEASE_LOG])
        return warehouse

    def lifetime_epsilon(self, dataset: str) -> float:
        with self._open() as warehouse:
            spent = self._multipliers(warehouse, dataset)
        return privacy.epsilon(spent, self.policy.lifetime_delta)

    def _multipliers(self, warehouse: DuckDBWarehouse, dataset: str) -> list[float]:
        table = warehouse.query(
            f"SELECT noise_multiplier FROM {warehouse.table_ref(ODOMETER)} WHERE dataset = ?",
            [dataset],
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
        if release.release_class == "masked_sums" and len(members) < policy.min_participants:
            raise RefusedError(
                f"{len(members)} participants ({', '.join(members)}): this node's policy "
                f"needs at least {policy.min_participants} for a masked release"
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
                    f"(?, ?, ?, ?, ?, ?, now())",
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
                f"INSERT INTO {warehouse.table_ref(ODOMETER)} VALUES (?, ?, ?, ?, ?, ?, now())",
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

