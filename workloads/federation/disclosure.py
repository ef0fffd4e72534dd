"""Small-cell suppression for the statistics table.

A cell (a row of the table for one node, or combined) is released only if its patients,
its cancer cases and its non-cases all number at least k. Suppressing one cell is not
enough when totals are published, so two secondary rules remove the simple differencing
attacks:
- within a partition (the levels 0/1/2 of one allele count add up to "all"): if exactly
  one level is suppressed, the smallest other level is suppressed too;
- across nodes (the combined cell is the sum of the node cells): if exactly one node's
  cell is suppressed, the combined cell is suppressed too.
This is a heuristic, not an optimal suppression pattern (tau-argus style): it stops
recovering a suppressed cell by one subtraction, not every interval bound one could derive
from many linear combinations.
"""

from __future__ import annotations

import numpy as np

from workloads.federation.local_stats import ALLELE_COLUMNS, STATS_FIELDS, stats_cells

DEFAULT_K = 10
SUPPRESSED = -1.0  # on the wire: a suppressed cell's values


def primary(cells: np.ndarray, k: int) -> np.ndarray:
    """cells: rows x (n, cases, sum_age, sum_bmi). True where the row must be suppressed."""
    n, cases = cells[:, 0], cells[:, 1]
    hidden: np.ndarray = (n < k) | (cases < k) | (n - cases < k)
    return hidden


def within_partitions(cells: np.ndarray, suppressed: np.ndarray) -> np.ndarray:
    out = suppressed.copy()
    labels = stats_cells()
    if out[0]:  # "all" hidden: hide everything
        out[:] = True
        return out
    for column in ALLELE_COLUMNS:
        rows = [i for i, (c, _) in enumerate(labels) if c == column]
        hidden = [i for i in rows if out[i]]
        if len(hidden) == 1:
            candidates = [i for i in rows if not out[i]]
            out[min(candidates, key=lambda i: cells[i, 0])] = True
    return out


def node_release(vector: np.ndarray, k: int) -> np.ndarray:
    """Inside a node: its statistics with suppressed cells replaced by SUPPRESSED."""
    cells = vector.reshape(-1, len(STATS_FIELDS)).copy()
    hidden = within_partitions(cells, primary(cells, k))
    cells[hidden] = SUPPRESSED
    return cells.reshape(-1)


def combined_release(
    total: np.ndarray, node_cells: dict[str, np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """At the hub: combined cells and which of them are suppressed."""
    cells = total.reshape(-1, len(STATS_FIELDS))
    hidden = primary(cells, k)
    suppressed_per_node = np.sum(
        [c.reshape(-1, len(STATS_FIELDS))[:, 0] == SUPPRESSED for c in node_cells.values()],
        axis=0,
    )
    hidden |= suppressed_per_node == 1
    hidden = within_partitions(cells, hidden)
    return cells, hidden
