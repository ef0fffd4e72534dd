"""A node's rows for one analysis, read from its own warehouse, checked against the
columns' public bounds (from the contracts layer, never from the data)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workloads.contracts.catalogue import table_named
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Column
from workloads.federation.node_handle import NodeHandle
from workloads.warehouse.base import Warehouse


def column(table: str, name: str) -> Column:
    for candidate in table_named(table).columns:
        if candidate.name == name:
            return candidate
    raise UserError(f"table {table} has no column {name!r}; fix: name one of its columns")


def bounds(table: str, name: str) -> tuple[float, float]:
    """The column's public bounds; only releasable columns with bounds may be analysed."""
    col = column(table, name)
    if not col.releasable or col.bounds is None:
        raise UserError(
            f"{table}.{name} is not releasable in aggregate or has no public bounds; "
            f"fix: analyse a releasable column with bounds (workloads/contracts)"
        )
    return float(col.bounds[0]), float(col.bounds[1])


def centre_scale(table: str, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Public affine scaling into [-1, 1]: x_scaled = (x - centre) / scale."""
    pairs = [bounds(table, n) for n in names]
    centre = np.array([(low + high) / 2.0 for low, high in pairs])
    scale = np.array([(high - low) / 2.0 for low, high in pairs])
    return centre, scale


@dataclass(frozen=True)
class NodeData:
    """Columns of one table in memory, inside the node only."""

    table: str
    columns: tuple[str, ...]
    values: np.ndarray  # n x len(columns), float64
    # Derived arrays an algorithm computes once per load (e.g. the scaled design matrix).
    derived: dict[object, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    def get(self, name: str) -> np.ndarray:
        result: np.ndarray = self.values[:, self.columns.index(name)]
        return result


def load(
    node: NodeHandle,
    table: str,
    columns: tuple[str, ...],
    warehouse: Warehouse | None = None,
) -> NodeData:
    """Read `columns` of `table` from the node's encrypted warehouse; every value must be
    inside its column's public bounds (else a refusal naming the column: the DP
    sensitivity and the fixed-point range rest on those bounds)."""
    definition = table_named(table)
    for name in columns:
        bounds(table, name)
    own = warehouse is None
    opened = node.open_warehouse(create=False) if warehouse is None else warehouse
    try:
        result = opened.query(f"SELECT {', '.join(columns)} FROM {opened.table_ref(definition)}")
    finally:
        if own:
            opened.close()
    if result.num_rows == 0:
        raise UserError(
            f"node {node.name!r}: {table} is empty; fix: load data first "
            f"(python -m workloads generate --node {node.name})"
        )
    values = np.column_stack(
        [result.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in columns]
    )
    for i, name in enumerate(columns):
        low, high = bounds(table, name)
        outside = ~((values[:, i] >= low) & (values[:, i] <= high))  # NaN counts as outside
        if outside.any():
            raise UserError(
                f"node {node.name!r}: {int(outside.sum())} values of {table}.{name} are missing "
                f"or outside its public bounds [{low:g}, {high:g}]; fix: correct or quarantine "
                f"those rows"
            )
    return NodeData(table, tuple(columns), values)
