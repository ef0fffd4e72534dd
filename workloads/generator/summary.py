"""Per-node summary of patient_genomic_data, like the seed's verification query.

Each node's numbers are computed by SQL inside that node's own warehouse, opened with
its own key, one node at a time: nodes are never joined or read together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from workloads.contracts.errors import UserError
from workloads.contracts.nodes import NODE_NAME
from workloads.contracts.tables.genomics import PATIENT_GENOMIC_DATA
from workloads.local_node import LocalNode
from workloads.warehouse.base import Warehouse


@dataclass(frozen=True)
class NodeSummary:
    node: str
    n: int
    cancer_rate: float
    mean_age: float
    mean_bmi: float
    mean_brca1: float  # mean allele counts
    mean_tp53: float
    mean_apoe4: float


def summarize(warehouse: Warehouse) -> NodeSummary:
    warehouse.ensure_tables([PATIENT_GENOMIC_DATA])
    row = warehouse.query(
        "SELECT count(*) AS n, avg(diagnosis_cancer), avg(age), avg(bmi), avg(variant_brca1), "
        f"avg(variant_tp53), avg(variant_apoe4) FROM {warehouse.table_ref(PATIENT_GENOMIC_DATA)}"
    ).to_pylist()[0]
    n, rate, age, bmi, brca1, tp53, apoe4 = row.values()
    nan = float("nan")

    def val(x: object) -> float:
        return nan if x is None else float(x)  # type: ignore[arg-type]

    return NodeSummary(warehouse.node, int(n), val(rate), val(age), val(bmi), val(brca1),
                       val(tp53), val(apoe4))


def local_nodes(root: Path) -> list[str]:
    """Nodes under `root` that have a warehouse."""
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir()
        if NODE_NAME.match(p.name) and LocalNode(p.name, root).warehouse_path.exists()
    )


def summarize_nodes(root: Path, nodes: Sequence[str] | None = None) -> list[NodeSummary]:
    names = list(nodes) if nodes else local_nodes(root)
    if not names:
        raise UserError(
            f"--root {root}: no node warehouses found; fix: run "
            f"'python -m workloads generate --node us --root {root}' first"
        )
    summaries = []
    for name in names:
        with LocalNode(name, root).open_warehouse(create=False) as warehouse:
            summaries.append(summarize(warehouse))
    return summaries


def format_summaries(summaries: Sequence[NodeSummary]) -> str:
    header = (f"{'node':<6}{'n':>12}{'cancer_rate':>13}{'mean_age':>10}{'mean_bmi':>10}"
              f"{'brca1':>8}{'tp53':>8}{'apoe4':>8}")
    lines = [header]
    for s in summaries:
        if s.n == 0:  # no patients: no rates or means to show (not NaN)
            lines.append(f"{s.node:<6}{s.n:>12,}" + "".join(
                f"{'-':>{w}}" for w in (13, 10, 10, 8, 8, 8)) + "  (no patients yet)")
            continue
        lines.append(
            f"{s.node:<6}{s.n:>12,}{s.cancer_rate:>13.4f}{s.mean_age:>10.2f}{s.mean_bmi:>10.2f}"
            f"{s.mean_brca1:>8.4f}{s.mean_tp53:>8.4f}{s.mean_apoe4:>8.4f}"
        )
    lines.append("(brca1/tp53/apoe4: mean allele counts; each node computed in its own warehouse)")
    return "\n".join(lines)
