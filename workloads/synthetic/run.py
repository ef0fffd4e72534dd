"""Federated synthesis over local nodes: each node's own encrypted warehouse, in-process.

`federated_synthesis` runs the protocol (workloads/synthetic/protocol.py) with one party
per node reading its own warehouse and charging its own ledger there, then writes the
export the user asked for into `out_dir`: the synthetic table as CSV and Parquet, its
metadata JSON and an SDMetrics quality report. Files are written to a temporary name and
renamed, so a crash leaves the old file or the new one, never half of one. Every run is a
new DP release: a re-run charges every node again and writes new rows (it says so).

The quality report needs real rows, which never leave a node: each node scores the
synthetic table against its own rows, inside the node, and releases only the scores.
Those few numbers are NOT covered by differential privacy (like the federation's AUC);
`quality=False` skips them.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workloads.contracts.catalogue import table_named
from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table
from workloads.local_node import DEFAULT_ROOT, LocalNode
from workloads.synthetic.api import write_json_atomic
from workloads.synthetic.columns import synth_columns
from workloads.synthetic.dp import DEFAULT_CLIP, DEFAULT_DELTA, DEFAULT_MARGINAL_SHARE
from workloads.synthetic.ledger import NodeBudget, WarehouseLedger
from workloads.synthetic.node import SynthesisNode
from workloads.synthetic.protocol import Settings, train
from workloads.synthetic.quality import QualityEvaluator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthesisResult:
    csv: Path
    parquet: Path
    metadata: Path
    quality: Path | None
    rows: int
    metadata_content: dict[str, Any]


def _table(name: str | Table) -> Table:
    if isinstance(name, Table):
        return name
    try:
        return table_named(name)
    except KeyError as exc:
        raise UserError(f"{exc.args[0]}; fix: name a declared table") from None


def _complete(table: Table, synthetic: pd.DataFrame) -> pa.Table:
    """The synthetic columns plus fresh identifiers, in the declared schema and order."""
    data: dict[str, Any] = {}
    for column in table.columns:
        if column.name in synthetic.columns:
            data[column.name] = synthetic[column.name].to_numpy()
        elif column.role == "identifier" and column.type == "STRING":
            data[column.name] = [f"SYN-{i:08d}" for i in range(len(synthetic))]
        elif column.mode == "NULLABLE":
            data[column.name] = [None] * len(synthetic)
        else:
            raise UserError(
                f"table {table.name}: required column {column.name} is neither releasable with "
                f"public bounds/levels nor an identifier, so it cannot be synthesised; fix: "
                f"declare it in workloads/contracts/tables/"
            )
    return pa.table(data, schema=table.arrow_schema())


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def federated_synthesis(
    nodes: Sequence[str | LocalNode],
    table: str | Table,
    rows: int,
    epsilon: float,
    *,
    out_dir: Path,
    root: Path = DEFAULT_ROOT,
    delta: float = DEFAULT_DELTA,
    marginal_share: float = DEFAULT_MARGINAL_SHARE,
    clip: float = DEFAULT_CLIP,
    node_budget: NodeBudget | None = None,
    min_sites: int = 2,
    seed: int | None = None,
    quality: bool = True,
) -> SynthesisResult:
    spec = _table(table)
    columns = synth_columns(spec)
    if rows <= 0:
        raise UserError(f"--rows {rows} is invalid; fix: a positive number of rows")
    local = [n if isinstance(n, LocalNode) else LocalNode(n, root) for n in nodes]
    if len({n.name for n in local}) != len(local):
        raise UserError("a node is named twice; fix: list each node once")
    _complete(spec, pd.DataFrame({c.name: [] for c in columns}))  # fail early if unfillable
    settings = Settings(epsilon=epsilon, delta=delta, marginal_share=marginal_share, clip=clip,
                        min_sites=min_sites)
    budget = node_budget or NodeBudget()
    warehouses = []
    try:
        parties = []
        for node in local:
            warehouse = node.open_warehouse(create=False)
            warehouses.append(warehouse)
            present = warehouse.query(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                [spec.name],
            ).column(0)[0].as_py()
            if not present:
                raise UserError(
                    f"node {node.name!r} has no table {spec.name} in {node.warehouse_path}; "
                    f"fix: load it first (python -m workloads generate --node {node.name})"
                )
            ledger = WarehouseLedger(node.name, warehouse, budget)
            parties.append(SynthesisNode(node.name, warehouse, spec, columns, ledger))
        rng = np.random.default_rng(seed)
        training = train(parties, columns, settings)
        assert training.model is not None
        synthetic = training.model.sample(rows, rng)
        scores: dict[str, Any] = {}
        if quality:
            for party, warehouse in zip(parties, warehouses, strict=True):
                real = warehouse.query(f"SELECT * FROM {warehouse.table_ref(spec)}").to_pandas()
                scores[party.name] = QualityEvaluator(real, synthetic, spec).summary()
        spent = {p.name: p.odometer.spent() for p in parties}
    finally:
        for warehouse in warehouses:
            warehouse.close()

    out_dir.mkdir(parents=True, exist_ok=True)
    arrow = _complete(spec, synthetic)
    stem = f"{spec.name}.synthetic"
    csv = _atomic(out_dir / f"{stem}.csv", lambda p: arrow.to_pandas().to_csv(p, index=False))
    parquet = _atomic(out_dir / f"{stem}.parquet", lambda p: pq.write_table(arrow, p))
    plan = training.plan
    metadata: dict[str, Any] = {
        "table": spec.name,
        "rows": rows,
        "run_id": training.run_id,
        "method": "gaussian_copula (DP marginals + DP normal-score correlation)",
        "nodes": [n.name for n in local],
        "schema": [{"name": c.name, "kind": c.kind, "type": c.type, "levels": list(c.levels),
                    "bounds": list(c.bounds) if c.kind != "categorical" else None,
                    "bins": c.bins} for c in columns],
        "privacy": {
            "run_budget": {"epsilon": epsilon, "delta": delta},
            "neighbours": "add or remove one row of a node's table",
            "marginal_share": marginal_share,
            "clip": clip,
            "marginal_scale": plan.marginal_scale,
            "product_scale": plan.product_scale,
            "product_sensitivity": plan.product_sensitivity,
            "events_per_node": [e.__dict__ for e in plan.events("<node>", training.run_id,
                                                                 [c.name for c in columns])],
            "node_lifetime_spent": {n: {"epsilon": s.epsilon, "delta": s.delta, "rho": s.rho,
                                        "events": s.events} for n, s in spent.items()},
            "quality_scores_are_dp": False,
        },
        "rows_estimate": training.model.rows_estimate,
        "correlation": training.model.correlation.tolist(),
        "created": pd.Timestamp.now(tz="UTC").isoformat(),
    }
    meta_path = write_json_atomic(out_dir / f"{stem}.metadata.json", metadata)
    quality_path = None
    if quality:
        quality_path = write_json_atomic(out_dir / f"{stem}.quality.json", {
            "reference": "each node's own rows, scored inside the node (scores only leave it)",
            "per_node": scores,
        })
    return SynthesisResult(csv, parquet, meta_path, quality_path, rows, metadata)


# --- CLI ---------------------------------------------------------------------------------


def run_synth_command(args: argparse.Namespace) -> int:
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()]
    result = federated_synthesis(
        nodes, args.table, args.rows, args.epsilon, out_dir=args.out, root=args.root,
        delta=args.delta, marginal_share=args.marginal_share, clip=args.clip,
        node_budget=NodeBudget(args.node_max_epsilon, args.delta), seed=args.seed,
        quality=not args.no_quality,
    )
    spent = result.metadata_content["privacy"]["node_lifetime_spent"]
    print(f"wrote {result.rows} synthetic rows: {result.csv}, {result.parquet}")
    quality = f"; quality: {result.quality}" if result.quality else ""
    print(f"metadata: {result.metadata}{quality}")
    for node, s in spent.items():
        print(f"node {node}: this run charged epsilon {args.epsilon} (delta {args.delta}); "
              f"lifetime spent epsilon {s['epsilon']:.3f} over {s['events']} events")
    print("a re-run is a new DP release: it is charged again and writes new rows")
    return 0
