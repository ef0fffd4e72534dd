"""Federated synthesis over local nodes, through the federation protocol.

`federated_synthesis` starts the local federation (workloads/federation/local.py: a
signed worker per node, in-process or over Pub/Sub), runs the synthesis rounds of
workloads/synthetic/federated.py (each node's release through its own guard, charged to
its odometer under its policy's cap; the hub reads only secure sums), then writes the
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
import math
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
from workloads.federation.coordinator import FederationStoppedError
from workloads.federation.defaults import SYNTH_CLIP as DEFAULT_CLIP
from workloads.federation.defaults import SYNTH_DELTA as DEFAULT_DELTA
from workloads.federation.defaults import SYNTH_MARGINAL_SHARE as DEFAULT_MARGINAL_SHARE
from workloads.local_node import DEFAULT_ROOT, LocalNode
from workloads.synthetic.api import write_json_atomic
from workloads.synthetic.columns import synth_columns
from workloads.synthetic.federated import Request, train
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
    transport: str = "inprocess",
    min_sites: int = 2,
    seed: int | None = None,
    quality: bool = True,
    round_timeout: float | None = None,
) -> SynthesisResult:
    """One synthesis run over the federation protocol (workers, guard, secure sums)."""
    from workloads.federation.coordinator import RunConfig
    from workloads.federation.defaults import DEFAULT_ROUND_TIMEOUT
    from workloads.federation.guard import Guard, load_policy
    from workloads.federation.local import local_federation

    spec = _table(table)
    columns = synth_columns(spec)
    if rows <= 0:
        raise UserError(f"--rows {rows} is invalid; fix: a positive number of rows")
    names = [n.name if isinstance(n, LocalNode) else n for n in nodes]
    if len(set(names)) != len(names):
        raise UserError("a node is named twice; fix: list each node once")
    local = [LocalNode(n, root) for n in names]
    _complete(spec, pd.DataFrame({c.name: [] for c in columns}))  # fail early if unfillable
    for node in local:
        with node.open_warehouse(create=False) as warehouse:
            present = warehouse.query(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                [spec.name],
            ).column(0)[0].as_py()
        if not present:
            raise UserError(
                f"node {node.name!r} has no table {spec.name} in {node.warehouse_path}; "
                f"fix: load it first (python -m workloads generate --node {node.name})"
            )
    rng = np.random.default_rng(seed)
    config = RunConfig(tuple(names), max_rounds=2, min_nodes=min_sites,
                       round_timeout=round_timeout or DEFAULT_ROUND_TIMEOUT)
    with local_federation(root, names, transport=transport) as hub:
        coordinator = hub.coordinator(config)
        try:
            training = train(coordinator, Request(
                spec, columns, epsilon, delta, marginal_share, clip,
                jitter_seed=int(rng.integers(1 << 62)),
            ))
        except FederationStoppedError:
            raise
        except UserError as exc:
            coordinator.stop(str(exc))  # tells the nodes, raises with the reason
        coordinator.finish()
    assert training.model is not None
    synthetic = training.model.sample(rows, rng)
    scores: dict[str, Any] = {}
    spent: dict[str, float] = {}
    for node in local:  # after the run: the workers have closed the warehouses
        with node.open_warehouse(create=False) as warehouse:
            if quality:
                real = warehouse.query(f"SELECT * FROM {warehouse.table_ref(spec)}").to_pandas()
                scores[node.name] = QualityEvaluator(real, synthetic, spec).summary()
            spent[node.name] = Guard(node, load_policy(node), warehouse).lifetime_epsilon(
                spec.name)

    out_dir.mkdir(parents=True, exist_ok=True)
    arrow = _complete(spec, synthetic)
    stem = f"{spec.name}.synthetic"
    csv = _atomic(out_dir / f"{stem}.csv", lambda p: arrow.to_pandas().to_csv(p, index=False))
    parquet = _atomic(out_dir / f"{stem}.parquet", lambda p: pq.write_table(arrow, p))
    m_hist, m_prod = training.multipliers
    metadata: dict[str, Any] = {
        "table": spec.name,
        "rows": rows,
        "run_id": training.run_id,
        "transport": transport,
        "method": "gaussian_copula (DP marginals + DP normal-score correlation)",
        "nodes": names,
        "rounds": training.rounds,
        "schema": [{"name": c.name, "kind": c.kind, "type": c.type, "levels": list(c.levels),
                    "bounds": list(c.bounds) if c.kind != "categorical" else None,
                    "bins": c.bins} for c in columns],
        "privacy": {
            "run_budget": {"epsilon": epsilon, "delta": delta},
            "neighbours": "add or remove one row of a node's table",
            "marginal_share": marginal_share,
            "clip": clip,
            "requested_noise_multipliers": {"marginals": m_hist, "products": m_prod},
            "sensitivities": {"marginals": math.sqrt(len(columns)),
                              "products": clip**2 * math.sqrt(len(columns) *
                                                              (len(columns) - 1) / 2)},
            "accounting": "each node's guard: at least its policy's noise multiplier, composed "
                          "with its earlier DP releases of the table (RDP), refused past its "
                          "policy's lifetime_epsilon",
            "node_lifetime_epsilon": spent,
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
        transport=args.transport, seed=args.seed, quality=not args.no_quality,
    )
    spent = result.metadata_content["privacy"]["node_lifetime_epsilon"]
    print(f"wrote {result.rows} synthetic rows: {result.csv}, {result.parquet}")
    quality = f"; quality: {result.quality}" if result.quality else ""
    print(f"metadata: {result.metadata}{quality}")
    for node, s in spent.items():
        print(f"node {node}: this run asked for epsilon {args.epsilon} (delta {args.delta}); "
              f"its guard's lifetime epsilon of {result.metadata_content['table']} is now "
              f"{s:.3f} (cap: lifetime_epsilon in its federation_policy.toml)")
    print("a re-run is a new DP release: it is charged again and writes new rows")
    return 0
