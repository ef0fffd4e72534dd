"""The node-side federated aggregate: the same cells on every node, and the nodes' sum is
the pooled computation."""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np

from workloads.contracts.tables.robotics import (
    COMPLICATIONS_BY_MODEL_CATEGORY,
    PROCEDURE_CATEGORIES,
    PROCEDURE_OUTCOMES,
    ROBOT_MODELS,
    SURGICAL_PROCEDURES,
    SURGICAL_ROBOTS,
)
from workloads.local_node import LocalNode
from workloads.robotics.aggregate import (
    COLUMN_LEVELS,
    MEASURES,
    ROW_LEVELS,
    CellCounts,
    node_cell_counts,
)
from workloads.robotics.profile import find_profile
from workloads.robotics.run import generate_fleet, local_ddl, view_sql
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

from .conftest import SMALL, add_patients

PARENTS_FIRST = (SURGICAL_ROBOTS, SURGICAL_PROCEDURES, PROCEDURE_OUTCOMES)


def test_nodes_sum_equals_the_pooled_computation(tmp_path: Path) -> None:
    per_node: list[CellCounts] = []
    capped: list[CellCounts] = []
    pooled = DuckDBWarehouse("pool", tmp_path / "pool.duckdb", secrets.token_hex(32))
    for table in PARENTS_FIRST:
        pooled.query(local_ddl(table, pooled))
    view = COMPLICATIONS_BY_MODEL_CATEGORY
    pooled.query(f"CREATE VIEW {pooled.table_ref(view.name)} AS {view_sql(view.sql, pooled)}")
    for node, models in (("us", None), ("eu", None), ("us", ("Mako", "ROSA Knee"))):
        root = tmp_path / f"{node}-{len(per_node)}"
        add_patients(root, node, rows=100)
        profile = find_profile(node)
        config = profile.config(**{**SMALL, "procedures": 120}, models=models)
        generate_fleet(profile, config, seed=len(per_node), root=root, progress=False)
        with LocalNode(node, root).open_warehouse(create=False) as wh:
            counts = node_cell_counts(wh)
            assert counts.counts["procedures"].shape == (len(ROBOT_MODELS),
                                                         len(PROCEDURE_CATEGORIES))
            per_node.append(counts)
            capped.append(node_cell_counts(wh, max_per_patient=1))
            distinct = wh.query(
                f"SELECT count(DISTINCT patient_id) FROM {wh.table_ref(SURGICAL_PROCEDURES)} "
                "WHERE status IN ('completed', 'aborted')").column(0)[0].as_py()
            assert capped[-1].counts["procedures"].sum() == distinct  # one per patient
            assert counts.counts["procedures"].sum() > distinct  # patients come back
            suffix = f"-{len(per_node)}"  # two fleets named "us": keep their ids apart
            for table in PARENTS_FIRST:
                rows = wh.query(f"SELECT * FROM {wh.table_ref(table)}")
                for key in ("robot_id", "procedure_id", "outcome_id", "patient_id"):
                    if key in rows.column_names:
                        i = rows.column_names.index(key)
                        rows = rows.set_column(i, key, [[v + suffix for v in
                                                         rows.column(key).to_pylist()]])
                with pooled.transaction() as con:
                    con.register("_rows", rows)
                    con.execute(f"INSERT INTO {pooled.table_ref(table)} SELECT * FROM _rows")
                    con.unregister("_rows")
    total = per_node[0] + per_node[1] + per_node[2]
    pooled_counts = node_cell_counts(pooled)
    total_capped = capped[0] + capped[1] + capped[2]
    pooled_capped = node_cell_counts(pooled, max_per_patient=1)
    for m in MEASURES:
        assert np.array_equal(total.counts[m], pooled_counts.counts[m]), m
        assert np.array_equal(total_capped.counts[m], pooled_capped.counts[m]), m
    assert int(total.counts["procedures"].sum()) > 300
    # The vector a node sends has a fixed length and round-trips.
    vector = per_node[2].vector()
    assert len(vector) == len(MEASURES) * len(ROW_LEVELS) * len(COLUMN_LEVELS)
    again = CellCounts.from_vector(vector)
    for m in MEASURES:
        assert np.array_equal(again.counts[m], per_node[2].counts[m])
    # An orthopedic-only fleet still reports every cell (zeros included).
    mako_only = per_node[2].counts["procedures"]
    assert mako_only[:, COLUMN_LEVELS.index("orthopedic")].sum() == mako_only.sum() > 0
    rate = total.complication_rate()
    assert np.isnan(rate[ROW_LEVELS.index("Mako"), COLUMN_LEVELS.index("cardiac")])
    pooled.close()
