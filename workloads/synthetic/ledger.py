"""A node's privacy ledger, kept in the node's own (encrypted) warehouse.

Every DP event a node releases is written here BEFORE the release, in one SQL statement
that inserts all of a run's events only if the node's total stays within its cap, so a
charge is all-or-nothing and survives restarts (DuckDB commits each statement atomically;
the warehouse file is encrypted under the node's key). A second synthesis is charged
again: nothing is ever refunded. The federation engine's node odometer can replace this
class through the `Odometer` protocol (workloads/synthetic/dp.py).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa

from workloads.contracts.schema import Column, Table
from workloads.federation.defaults import SYNTH_DELTA, SYNTH_NODE_EPSILON
from workloads.synthetic.dp import BudgetExceededError, DPEvent, Spent, epsilon_of, rho_for

LEDGER = Table(
    name="synthetic_dp_ledger",
    description="Differential-privacy events this node released for synthetic data (node-only).",
    columns=(
        Column("event_id", "STRING", "REQUIRED", "Unique id of the event"),
        Column("run_id", "STRING", "REQUIRED", "The synthesis run"),
        Column("charged_at", "TIMESTAMP", "REQUIRED", "When it was charged (before release)"),
        Column("query", "STRING", "REQUIRED", "What was released"),
        Column("mechanism", "STRING", "REQUIRED", "discrete_gaussian | gaussian"),
        Column("sensitivity", "FLOAT", "REQUIRED", "L2 sensitivity under the neighbours"),
        Column("scale", "FLOAT", "REQUIRED", "Noise scale"),
        Column("rho", "FLOAT", "REQUIRED", "zCDP cost"),
        Column("neighbours", "STRING", "REQUIRED", "The neighbour relation"),
    ),
    primary_key=("event_id",),
)


class LedgerStore(Protocol):
    """What the ledger needs of a warehouse (DuckDBWarehouse, or an in-memory DuckDB)."""

    def ensure_tables(self, tables: Any) -> None: ...

    def table_ref(self, table: Table | str) -> str: ...

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table: ...


@dataclass(frozen=True)
class NodeBudget:
    """A node's own lifetime cap on synthesis releases (its policy, not the hub's)."""

    epsilon: float = SYNTH_NODE_EPSILON
    delta: float = SYNTH_DELTA

    @property
    def rho(self) -> float:
        return rho_for(self.epsilon, self.delta)


class WarehouseLedger:
    def __init__(self, node: str, store: LedgerStore, budget: NodeBudget | None = None) -> None:
        self.node = node
        self.store = store
        self.budget = budget or NodeBudget()
        store.ensure_tables([LEDGER])
        self._ref = store.table_ref(LEDGER)

    def charge(self, events: Sequence[DPEvent]) -> Spent:
        """Record every event or none; refuse (BudgetExceededError) past the node's cap."""
        if not events:
            return self.spent()
        if any(e.node != self.node for e in events):
            raise ValueError(f"ledger of {self.node} asked to charge another node's events")
        new_rho = sum(e.rho for e in events)
        cap = self.budget.rho
        now = datetime.now(UTC)
        rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(events))
        params: list[Any] = []
        for e in events:
            params += [str(uuid.uuid4()), e.run_id, now, e.query, e.mechanism, e.sensitivity,
                       e.scale, e.rho, e.neighbours]
        if math.isinf(cap):  # an uncapped node (simulations, benchmarks without noise)
            cap_sql = "TRUE"
        elif math.isinf(new_rho):  # a release without noise never fits a finite cap
            cap_sql = "FALSE"
        else:
            cap_sql = f"(SELECT coalesce(sum(rho), 0) FROM {self._ref}) + ? <= ?"
            params += [new_rho, cap * (1 + 1e-12)]
        inserted = self.store.query(
            f"INSERT INTO {self._ref} SELECT * FROM (VALUES {rows}) "
            f"WHERE {cap_sql} RETURNING event_id",
            params,
        )
        if inserted.num_rows != len(events):
            self._refuse(self.spent(), new_rho)
        return self.spent()

    def check(self, events: Sequence[DPEvent]) -> None:
        new_rho = sum(e.rho for e in events)
        if math.isinf(self.budget.rho) or not events:
            return
        spent = self.spent()
        if math.isinf(new_rho) or spent.rho + new_rho > self.budget.rho * (1 + 1e-12):
            self._refuse(spent, new_rho)

    def _refuse(self, spent: Spent, new_rho: float) -> None:
        would = epsilon_of([spent.rho, new_rho], self.budget.delta)
        raise BudgetExceededError(
            f"node {self.node}: this synthesis would bring its privacy loss to epsilon "
            f"{would:.3f} (delta {self.budget.delta}), over its cap epsilon "
            f"{self.budget.epsilon}; refused before any release; fix: a smaller epsilon, "
            f"or a node whose cap allows it"
        )

    def spent(self) -> Spent:
        row = self.store.query(f"SELECT coalesce(sum(rho), 0), count(*) FROM {self._ref}")
        rho = float(row.column(0)[0].as_py())
        count = int(row.column(1)[0].as_py())
        return Spent(rho, epsilon_of([rho], self.budget.delta), self.budget.delta, count)

    def events(self, run_id: str | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT * FROM {self._ref}"
        params: list[Any] = []
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params.append(run_id)
        return list(self.store.query(sql + " ORDER BY charged_at, query", params).to_pylist())
