"""The local end-to-end demo: what `python -m workloads demo` (scripts/run-local.sh) runs.

Three sovereign nodes (us, eu, sg), each its own encrypted folder under `root`. Inside each
node: synthetic patients, a small VCF through the real pipeline (normalise, annotate, load)
and the SQL-derived genomic features, Synthea-shaped FHIR bundles ingested and flattened by
the SQL on FHIR views, and a small robotics fleet. Across the nodes, through the federation
(signed messages, secure aggregation, each node's guard and odometer): descriptive
statistics, the federated logistic model, and a federated synthetic table with its SDMetrics
score. Then each node's privacy budget (from its own odometer and ledger), the bytes the hub
received, and the offline posture of the us, eu, sg and hub stacks; all of it in one report
(`<root>/demo/report.html`, self-contained, and `report.md`).

The pooled fit and the "real" side of the synthetic-data plots read the nodes directly: they
exist only on this one machine, to show that the federated products are right.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from workloads.contracts.errors import UserError
from workloads.federation.defaults import DEFAULT_NODES
from workloads.generator import NodeSummary, find_profile, generate_node, summarize_nodes

if TYPE_CHECKING:
    import numpy as np

    from workloads.federation.coordinator import FitResult, StatsRow

DEMO_NODES = DEFAULT_NODES
DEFAULT_ROWS = 2000  # per node: enough that the carrier cells of the statistics are released
QUICK_ROWS = 600
DEFAULT_SEED = 42
VCF_RECORDS, QUICK_VCF_RECORDS = 400, 150
PROCEDURES, QUICK_PROCEDURES = 200, 60
SYNTHETIC_ROWS = 2000
SYNTHETIC_EPSILON = 3.0  # per node, for the synthetic table's one run
POSTURE_STACKS = ("us", "eu", "sg", "hub")
STATE_FILE = "demo-state.json"  # under <root>/demo: the arguments of the last complete run
PATIENTS = "patient_genomic_data"


@dataclass(frozen=True)
class DemoConfig:
    rows: int = DEFAULT_ROWS
    seed: int = DEFAULT_SEED
    nodes: tuple[str, ...] = DEMO_NODES
    vcf_records: int = VCF_RECORDS
    procedures: int = PROCEDURES
    transport: str = "inprocess"

    @staticmethod
    def quick(**changes: Any) -> DemoConfig:
        base: dict[str, Any] = {"rows": QUICK_ROWS, "vcf_records": QUICK_VCF_RECORDS,
                                "procedures": QUICK_PROCEDURES}
        return DemoConfig(**{**base, **changes})

    def key(self) -> dict[str, Any]:
        return {"rows": self.rows, "seed": self.seed, "nodes": list(self.nodes),
                "vcf_records": self.vcf_records, "procedures": self.procedures}


def generate(
    root: Path,
    *,
    rows: int = DEFAULT_ROWS,
    seed: int = DEFAULT_SEED,
    nodes: Sequence[str] = DEMO_NODES,
    progress: bool = True,
) -> list[NodeSummary]:
    """Generate each node's data (idempotent: re-running changes nothing) and summarise it."""
    profiles = [find_profile(node) for node in nodes]  # all checked before any work
    for profile in profiles:
        generate_node(profile, rows=rows, seed=seed, root=root, progress=progress)
    return summarize_nodes(root, nodes)


# --- inside each node -------------------------------------------------------------------------


def _command(argv: list[str]) -> str:
    """One of the project's own commands, in this process; its stdout is returned."""
    from workloads.cli import main

    buffer, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(errors):
        code = main(argv)
    logging.getLogger().setLevel(logging.WARNING)  # main() set INFO: keep the demo's output short
    if code != 0:
        last = errors.getvalue().strip().splitlines()[-1:] or [""]
        raise UserError(f"the demo step `python -m workloads {' '.join(argv)}` failed "
                        f"(exit {code}: {last[0]}); fix: run it alone to see why")
    return buffer.getvalue()


def node_steps(root: Path, node: str, config: DemoConfig) -> list[tuple[str, list[str]]]:
    at = ["--node", node, "--root", str(root), "--no-progress"]
    return [
        ("VCF synth", ["vcf", "synth", *at, "--records", str(config.vcf_records),
                       "--shards", "1", "--seed", str(config.seed)]),
        ("VCF pipeline", ["vcf", "batch", "run-local", *at, "--workers", "1"]),
        ("VCF features", ["vcf", "derive", *at[:-1]]),  # it has no progress bar
        ("FHIR synth", ["fhir", "synth", *at, "--seed", str(config.seed)]),
        ("FHIR ingest", ["fhir", "ingest", *at]),
        ("robotics", ["robotics", "generate", *at, "--procedures", str(config.procedures),
                      "--hz", "1", "--seed", str(config.seed)]),
    ]


def node_tables(root: Path, node: str) -> dict[str, int]:
    """Rows per table of a node's warehouse (counted inside the node)."""
    from workloads.local_node import LocalNode

    with LocalNode(node, root).open_warehouse(create=False) as warehouse:
        names = warehouse.query(
            "SELECT table_name FROM information_schema.tables ORDER BY table_name"
        ).column(0).to_pylist()
        counts = {}
        for name in names:
            counts[name] = int(warehouse.query(f'SELECT count(*) FROM "{name}"').column(0)[0]
                               .as_py())
    return counts


# --- across the nodes -------------------------------------------------------------------------


@dataclass
class FederationResult:
    stats: list[StatsRow]
    fit: FitResult
    pooled: np.ndarray
    pooled_se: np.ndarray
    max_abs_diff: float
    bytes_to_hub: int
    steps: int
    k: int
    run_id: str
    text: str
    chart: Path | None = None
    robotics: Any = None  # workloads.robotics.federated.RoboticsTable


def federate(
    root: Path,
    nodes: Sequence[str] = DEMO_NODES,
    *,
    transport: str = "inprocess",
    out: TextIO | None = None,
    chart: Path | None = None,
    robotics: bool = False,
) -> FederationResult:
    """Federated statistics + model (+ the robotics table when the nodes hold fleets) over
    `nodes` under `root`; prints and returns them (and draws the forest plot into `chart`)."""
    import numpy as np

    from workloads.federation import report
    from workloads.federation.coordinator import RunConfig
    from workloads.federation.local import local_federation
    from workloads.local_node import LocalNode

    with local_federation(root, list(nodes), transport=transport) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=tuple(nodes)))
        stats = coordinator.statistics()
        fit = coordinator.fit()
        # Complications by robot model x procedure category: the robotics_cells algorithm,
        # through the same guard (each node's small-cell floor and margins rules).
        from workloads.robotics import federated as robotics_federated

        table = robotics_federated.run(coordinator) if robotics else None
        coordinator.finish()
    pooled, pooled_se = report.pooled_fit([LocalNode(n, root) for n in nodes])
    diff = float(np.max(np.abs(fit.coefficients - pooled)))
    text = "\n\n".join(
        [
            report.stats_table(stats, coordinator.config.k),
            report.fit_table(fit, pooled),
            *([table.text()] if table is not None else []),
            f"Federated vs pooled: max |coefficient difference| = {diff:.1e} "
            f"({'identical to 1e-6' if diff < 1e-6 else 'DIFFERENT'})",
            f"Data never left the nodes: the hub received {hub.endpoint.bytes_received} bytes "
            f"in {len(coordinator.bytes_per_round)} steps over {transport} - signed, masked "
            f"aggregates only, readable only as sums over at least three nodes.",
        ]
    )
    if out is not None:
        print(text, file=out)
    if chart is not None:
        write_chart(fit, pooled, pooled_se, chart)
    return FederationResult(stats, fit, pooled, pooled_se, diff, hub.endpoint.bytes_received,
                            len(coordinator.bytes_per_round), coordinator.config.k,
                            coordinator.config.run_id, text, chart, table)


@dataclass
class SyntheticResult:
    rows: int
    epsilon: float
    scores: dict[str, dict[str, Any]]  # node -> SDMetrics summary (scored inside the node)
    parquet: Path
    plot: Path


def synthesize(root: Path, nodes: Sequence[str], out_dir: Path, *, seed: int) -> SyntheticResult:
    from workloads.synthetic.run import federated_synthesis

    result = federated_synthesis(list(nodes), PATIENTS, SYNTHETIC_ROWS, SYNTHETIC_EPSILON,
                                 out_dir=out_dir, root=root, seed=seed)
    assert result.quality is not None
    scores = json.loads(result.quality.read_text())["per_node"]
    plot = out_dir / "synthetic_vs_real.png"
    _distribution_plot(root, nodes, result.parquet, plot)
    return SyntheticResult(result.rows, SYNTHETIC_EPSILON, scores, result.parquet, plot)


def _pooled_rows(root: Path, nodes: Sequence[str], columns: Sequence[str]) -> Any:
    """Local demo only: the nodes' own rows, read directly (a federation never can)."""
    import pandas as pd

    from workloads.contracts.catalogue import table_named
    from workloads.local_node import LocalNode

    frames = []
    for name in nodes:
        with LocalNode(name, root).open_warehouse(create=False) as warehouse:
            ref = warehouse.table_ref(table_named(PATIENTS))
            frames.append(warehouse.query(f"SELECT {', '.join(columns)} FROM {ref}").to_pandas())
    return pd.concat(frames, ignore_index=True)


def _distribution_plot(root: Path, nodes: Sequence[str], parquet: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pyarrow.parquet as pq

    from workloads.synthetic.columns import synth_columns
    from workloads.synthetic.run import _table

    columns = synth_columns(_table(PATIENTS))
    names = [c.name for c in columns]
    synthetic = pq.read_table(parquet, columns=names).to_pandas()
    real = _pooled_rows(root, nodes, names)
    figure, axes = plt.subplots(1, len(columns), figsize=(2.6 * len(columns), 2.8))
    for axis, column in zip(np.atleast_1d(axes), columns, strict=True):
        if column.kind == "categorical":
            levels = sorted(set(real[column.name].dropna()) | set(synthetic[column.name].dropna()))
            x = np.arange(len(levels))
            for offset, (label, frame) in ((-0.2, ("real", real)), (0.2, ("synthetic", synthetic))):
                shares = frame[column.name].value_counts(normalize=True)
                axis.bar(x + offset, [shares.get(v, 0.0) for v in levels], 0.4, label=label)
            axis.set_xticks(x, [str(v) for v in levels], fontsize=8)
        else:
            low, high = column.bounds
            bins = np.linspace(low, high, 21)
            axis.hist(real[column.name].dropna(), bins=bins, density=True, alpha=0.5,
                      label="real")
            axis.hist(synthetic[column.name].dropna(), bins=bins, density=True, alpha=0.5,
                      label="synthetic")
        axis.set_title(column.name, fontsize=9)
        axis.tick_params(labelsize=7)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    figure.suptitle("Federated synthetic table vs the nodes' real rows (per column)", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_chart(fit: FitResult, pooled: np.ndarray, pooled_se: np.ndarray, path: Path) -> None:
    """The forest plot: each term's federated and pooled estimate with its 95% interval."""
    from workloads.analysis.report import Estimates, forest_plot

    def series(label: str, values: np.ndarray, errors: np.ndarray) -> Estimates:
        return Estimates(label, {
            name: (float(v), float(v - 1.96 * e), float(v + 1.96 * e))
            for name, v, e in zip(fit.names, values, errors, strict=True)
        })

    forest_plot(
        [series("federated (aggregates only)", fit.coefficients, fit.standard_errors),
         series("pooled (all rows, local check)", pooled, pooled_se)],
        path, title="Cancer risk (logistic): federated vs pooled",
    )


# --- budgets, releases, posture ---------------------------------------------------------------


@dataclass
class NodeBudget:
    node: str
    federation_epsilon: float  # lifetime, from the node's federation odometer
    federation_delta: float
    dp_releases: int
    synthetic_epsilon: float  # its synthesis releases alone (synth_* rows of the odometer)
    synthetic_delta: float
    synthetic_events: int
    releases: list[dict[str, Any]] = field(default_factory=list)  # the release log, in order


def budgets(root: Path, nodes: Sequence[str]) -> list[NodeBudget]:
    from workloads.federation import privacy
    from workloads.federation.guard import ODOMETER, RELEASE_LOG, Guard, load_policy
    from workloads.local_node import LocalNode

    out = []
    for name in nodes:
        node = LocalNode(name, root)
        policy = load_policy(node)
        with node.open_warehouse(create=False) as warehouse:
            guard = Guard(node, policy, warehouse)
            epsilon = guard.lifetime_epsilon(PATIENTS)
            dp = warehouse.query(
                f"SELECT count(*) FROM {warehouse.table_ref(ODOMETER)}").column(0)[0].as_py()
            # One row per run and kind of release, in order: the exact masked sums of the
            # release log, the noised releases of the odometer (synthesis included).
            releases = warehouse.query(
                f"SELECT run_id, min(released_at) AS at, release_class AS what, "
                f"participants AS summed_over, string_agg(CAST(step AS VARCHAR), ', ' "
                f"ORDER BY step) AS steps, count(*) AS n, NULL AS epsilon "
                f"FROM {warehouse.table_ref(RELEASE_LOG)} GROUP BY ALL "
                f"UNION ALL SELECT run_id, min(released_at), algorithm || ' (noised)', '', "
                f"string_agg(CAST(step AS VARCHAR), ', ' ORDER BY step), count(*), "
                f"max(epsilon_after) FROM {warehouse.table_ref(ODOMETER)} GROUP BY ALL "
                f"ORDER BY 2, 3"
            ).to_pylist()
            synth = warehouse.query(  # synthesis is charged to the same odometer
                f"SELECT noise_multiplier FROM {warehouse.table_ref(ODOMETER)} "
                f"WHERE starts_with(algorithm, 'synth_')").column(0).to_pylist()
        out.append(NodeBudget(name, epsilon, policy.lifetime_delta, int(dp),
                              privacy.epsilon(synth, policy.lifetime_delta),
                              policy.lifetime_delta, len(synth), releases))
    return out


def postures(out_dir: Path) -> dict[str, str]:
    """Each stack's offline posture (rendered under Pulumi mocks): the full Markdown is
    written beside the report; the summary is its opening bullet list."""
    from infra.render import render

    summaries = {}
    for stack in POSTURE_STACKS:
        try:
            text = render(stack).posture
        except UserError as error:  # a stack whose config is incomplete: say so, go on
            summaries[stack] = f"- not rendered: {error}"
            continue
        (out_dir / "posture").mkdir(parents=True, exist_ok=True)
        (out_dir / "posture" / f"{stack}.posture.md").write_text(text)
        head = text.split("\n## ", 1)[0]
        summaries[stack] = "\n".join(line for line in head.splitlines() if line.startswith("- "))
    return summaries


# --- the report -------------------------------------------------------------------------------


@dataclass
class DemoResult:
    root: Path
    config: DemoConfig
    summaries: list[NodeSummary]
    tables: dict[str, dict[str, int]]
    federation: FederationResult
    synthetic: SyntheticResult
    budgets: list[NodeBudget]
    posture: dict[str, str]
    chart: Path
    markdown: Path
    html: Path
    seconds: float


def robotics_blocks(table: Any) -> list[Block]:
    """The published robotics table: complication rate of n procedures per cell, '*' where
    a node's guard suppressed it (small, or derivable from the margins)."""
    from workloads.robotics.aggregate import COLUMN_LEVELS, ROW_LEVELS
    from workloads.robotics.federated import ALL

    rows = []
    for i, model in enumerate([*ROW_LEVELS, ALL]):
        cells = []
        for j in range(len(COLUMN_LEVELS) + 1):
            n, rate = table.counts["procedures"][i][j], table.rate(i, j)
            cells.append("*" if n is None else "-" if n == 0 else
                         f"{rate:.1%} of {n:.0f}" if rate is not None else f"n={n:.0f}")
        rows.append([model, *cells])
    released = sum(c not in ("*", "-") for r in rows for c in r[1:])
    return [
        ("p", f"Complication rate by robot model x procedure category over "
              f"{', '.join(table.nodes)}, from each node's `surgical_robotics` tables through "
              f"the `robotics_cells` algorithm: counts summed by secure aggregation, a cell "
              f"published only if every node passed it. `*` = suppressed (fewer than "
              f"{table.k} procedures, complicated or uncomplicated ones at some node, or "
              f"derivable from the margins); `-` = no procedures. {released} non-empty cells "
              f"released; at demo sizes mostly the margins ('all') pass."),
        ("table", (["robot model", *COLUMN_LEVELS, ALL], rows)),
    ]


def _fmt_cell(value: tuple[float, ...] | None) -> list[str]:
    if value is None:
        return ["*", "*", "*", "*", "*"]
    n, cases, rate, age, bmi = value
    return [f"{n:.0f}", f"{cases:.0f}", f"{rate:.1%}", f"{age:.1f}", f"{bmi:.1f}"]


Block = tuple[str, Any]  # ("h1"|"h2"|"p"|"b"|"ul"|"img", text) or ("table", (header, rows))


def report_blocks(result: DemoResult) -> list[Block]:
    """The report's content, once: rendered as Markdown and as HTML."""
    fed, syn, cfg = result.federation, result.synthetic, result.config
    blocks: list[Block] = [
        ("h1", "Sovereign federated research: demo report"),
        ("p", f"{len(cfg.nodes)} nodes ({', '.join(cfg.nodes)}), {cfg.rows:,} synthetic "
              f"patients each (seed {cfg.seed}). Every node's rows stayed in its own encrypted "
              f"folder under `{result.root}`; the hub received {fed.bytes_to_hub:,} bytes of "
              f"signed, masked aggregates in {fed.steps} steps."),
        ("h2", "1. Inside each node"),
        ("p", "Built inside the node: patients; a VCF through the real pipeline (normalise, "
              "annotate, load) and the SQL-derived genomic features; Synthea-shaped FHIR "
              "bundles, validated, loaded and flattened by the SQL on FHIR views; a robotics "
              "fleet. Rows per table (counted inside the node, never released):"),
    ]
    names = sorted({t for counts in result.tables.values() for t in counts})
    blocks.append(("table", (["table", *cfg.nodes], [
        [f"`{t}`", *[f"{result.tables[n].get(t, 0):,}" for n in cfg.nodes]] for t in names
    ])))
    blocks += [
        ("h2", "2. Descriptive statistics, as released"),
        ("p", f"Combined over the nodes by secure aggregation. A cell is released only if "
              f"every node has at least {fed.k} patients, cases and non-cases in it (each "
              f"node's guard applies its own policy, and the complement rule); `*` = "
              f"suppressed."),
        ("table", (["cell", "patients", "cases", "cancer rate", "mean age", "mean BMI"],
                   [[row.label, *_fmt_cell(row.values["combined"])] for row in fed.stats])),
        ("h2", "3. Federated logistic model vs pooled"),
        ("p", "Cancer risk (`diagnosis_cancer`) on age, BMI and the BRCA1, TP53 and APOE e4 "
              "allele counts of `patient_genomic_data`. The federation's GLM reads one table "
              "per node, so BMI is the patients table's own column: the clinical records' BMI "
              "(`clinical_features`) is not joined in by the federation engine yet. "
              "Newton-Raphson over masked sums of gradient and Hessian; the pooled fit reads "
              f"all rows (a local check only). {fed.fit.rounds} rounds; max |federated - "
              f"pooled| = {fed.max_abs_diff:.1e}."),
        ("img", ("forest", "forest plot: federated vs pooled")),
        ("table", (["term", "federated", "std err", "95% CI", "pooled", "abs. difference"], [
            [name, f"{c:.6f}", f"{e:.6f}", f"[{c - 1.96 * e:.4f}, {c + 1.96 * e:.4f}]",
             f"{p:.6f}", f"{abs(c - p):.1e}"]
            for name, c, e, p in zip(fed.fit.names, fed.fit.coefficients,
                                     fed.fit.standard_errors, fed.pooled, strict=True)
        ])),
        ("p", "AUC per node (computed inside each node on the final model, noised, charged to "
              "its odometer): "
              + ", ".join(f"{n} {v:.3f}" for n, v in sorted(fed.fit.auc.items()))
              + (("; refused: " + ", ".join(f"{n} ({r})"
                                            for n, r in fed.fit.auc_refused.items()))
                 if fed.fit.auc_refused else "")),
        ("h2", "4. Robotics statistic"),
        *robotics_blocks(result.federation.robotics),
        ("h2", "5. Federated synthetic table"),
        ("p", f"{syn.rows:,} synthetic rows of `{PATIENTS}` from a Gaussian copula trained "
              f"across the nodes (DP marginals and correlation, securely aggregated; epsilon "
              f"{syn.epsilon:g} per node). SDMetrics quality, scored inside each node against "
              f"its own rows (only the scores leave it):"),
        ("table", (["node", "overall", "column shapes", "pair trends"], [
            [n, _score(s.get("overall_score")), _score(s.get("column_shapes")),
             _score(s.get("pair_trends"))] for n, s in sorted(syn.scores.items())
        ])),
        ("img", ("synthetic", "per-column distributions: real vs synthetic")),
        ("p", "(The real side of these plots reads the nodes' rows directly: a local check, "
              "like the pooled fit.)"),
        ("h2", "6. Privacy budgets (each node's own odometer)"),
        ("table", (["node", "federation epsilon (lifetime)", "federation DP releases",
                    "synthetic-data epsilon (lifetime)", "synthetic DP events", "delta"], [
            [b.node, f"{b.federation_epsilon:.3f}", str(b.dp_releases),
             f"{b.synthetic_epsilon:.3f}", str(b.synthetic_events), f"{b.federation_delta:g}"]
            for b in result.budgets
        ])),
        ("p", "Exact masked sums (statistics, model terms) cost no epsilon: each guard allows "
              "them only as sums over at least three nodes; noised releases (the AUC, the "
              "synthetic table) are charged to the node's lifetime budget."),
        ("h2", "7. What each node released, step by step"),
        ("p", "From each node's own records, written inside the node before each upload: "
              "the release log (exact masked sums: the statistics at the first step, then one "
              "per Newton round of the model) and the odometer (noised releases: the AUC, "
              "and the synthetic table's marginals and correlation sums)."),
    ]
    for budget in result.budgets:
        blocks.append(("b", budget.node))
        header = ["run", "first release (UTC)", "what", "readable only as a sum over", "steps",
                  "releases", "lifetime epsilon after"]
        blocks.append(("table", (header, [
            [r["run_id"], str(r["at"])[:19], r["what"], r["summed_over"] or "-",
             r["steps"] or "-", str(r["n"]),
             "-" if r["epsilon"] is None else f"{r['epsilon']:.3f}"] for r in budget.releases
        ])))
    blocks += [
        ("h2", "8. Offline posture of the stacks"),
        ("p", "Rendered from the Pulumi programs under mocks (no cloud account); the full "
              "posture of each stack is in `posture/<stack>.posture.md` beside this report."),
    ]
    for stack, summary in result.posture.items():
        blocks += [("b", stack), ("ul", [line[2:] for line in summary.splitlines()])]
    blocks.append(("p", f"Run took {result.seconds:.0f} s."))
    return blocks


def _score(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def to_markdown(blocks: list[Block], images: dict[str, str]) -> str:
    out = []
    for kind, value in blocks:
        if kind == "h1":
            out.append(f"# {value}")
        elif kind == "h2":
            out.append(f"## {value}")
        elif kind == "b":
            out.append(f"**{value}**")
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in value))
        elif kind == "img":
            out.append(f"![{value[1]}]({images[value[0]]})")
        elif kind == "table":
            header, rows = value
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            out.append("\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]))
        else:
            out.append(value)
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    import html
    import re

    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text, quote=False))


def to_html(blocks: list[Block], images: dict[str, str]) -> str:
    import html

    out = []
    for kind, value in blocks:
        if kind in ("h1", "h2"):
            out.append(f"<{kind}>{_inline(value)}</{kind}>")
        elif kind == "b":
            out.append(f"<h3>{_inline(value)}</h3>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in value) + "</ul>")
        elif kind == "img":
            out.append(f"<img src='{images[value[0]]}' alt='{html.escape(value[1])}'>")
        elif kind == "table":
            header, rows = value
            out.append("<table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header)
                       + "</tr>" + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r)
                                           + "</tr>" for r in rows) + "</table>")
        else:
            out.append(f"<p>{_inline(value)}</p>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Demo report</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px}img{max-width:100%}</style></head><body>\n"
        + "\n".join(out) + "\n</body></html>\n"
    )


def write_report(result: DemoResult, out_dir: Path) -> tuple[Path, Path]:
    """report.md (images beside it) and report.html (images embedded: one file, no server)."""
    import base64

    images = {"forest": result.chart, "synthetic": result.synthetic.plot}
    blocks = report_blocks(result)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    _atomic_text(md_path, to_markdown(blocks, {k: p.name for k, p in images.items()}))
    inline = {k: "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()
              for k, p in images.items()}
    _atomic_text(html_path, to_html(blocks, inline))
    return md_path, html_path


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


# --- the whole flow ---------------------------------------------------------------------------


def fresh_start(root: Path, nodes: Sequence[str]) -> None:
    """Remove what the demo made under `root`: its nodes (data, keys), the roster, the report.
    Other nodes' folders and keys under `root` are left alone."""
    from workloads.federation import roster as rosters
    from workloads.local_node import LocalNode

    for name in nodes:
        node = LocalNode(name, root)
        shutil.rmtree(node.folder, ignore_errors=True)
        node.key_path.unlink(missing_ok=True)
    for party in (*nodes, rosters.HUB):
        (root / ".keys" / f"{party}.signing.key").unlink(missing_ok=True)
    (root / "roster.json").unlink(missing_ok=True)
    shutil.rmtree(root / "demo", ignore_errors=True)


def _previous(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state


def run_demo(
    root: Path,
    config: DemoConfig | None = None,
    *,
    progress: bool = True,
    fresh: bool = False,
    out: TextIO | None = None,
) -> DemoResult | None:
    """The whole flow; None when an identical complete run is already there (re-run: nothing
    is changed, no budget spent; `fresh=True` starts over)."""
    from tqdm import tqdm

    config = config or DemoConfig()
    out = out or sys.stdout
    out_dir = root / "demo"
    if len(config.nodes) < 3:
        raise UserError(f"--nodes {','.join(config.nodes)}: the federation needs at least three "
                        f"nodes (a masked sum over two is the other node's value); fix: name "
                        f"three or more")
    if config.rows < 1:
        raise UserError(f"--rows {config.rows}: must be a positive number of patients per "
                        f"node; fix: e.g. --rows {DEFAULT_ROWS}")
    for name in config.nodes:
        find_profile(name)  # every node checked before any work
    if fresh:
        fresh_start(root, config.nodes)
    previous = _previous(out_dir)
    if previous and previous.get("config") == config.key() and (out_dir / "report.html").exists():
        print(f"Nothing changed: {root} already holds this demo's data (same rows, seed and "
              f"nodes) and its report; the federated products were not re-run, so no privacy "
              f"budget was spent. --fresh starts over.\n", file=out)
        print(previous.get("summary", ""), file=out)
        return None

    started = time.monotonic()
    steps: list[tuple[str, Callable[[], Any]]] = []
    state: dict[str, Any] = {}

    def add(label: str, action: Callable[[], Any]) -> None:
        steps.append((label, action))

    for name in config.nodes:
        add(f"{name}: patients", partial(generate_node, find_profile(name), rows=config.rows,
                                         seed=config.seed, root=root, progress=False))
        for label, argv in node_steps(root, name, config):
            add(f"{name}: {label}", partial(_command, argv))
    chart = out_dir / "federated_vs_pooled.png"
    add("federation: statistics + model", lambda: state.__setitem__(
        "federation", federate(root, config.nodes, transport=config.transport, chart=chart,
                                       robotics=True)))
    add("federation: synthetic table", lambda: state.__setitem__(
        "synthetic", synthesize(root, config.nodes, out_dir, seed=config.seed)))
    add("budgets + release logs", lambda: state.__setitem__(
        "budgets", budgets(root, config.nodes)))
    add("posture of the stacks", lambda: state.__setitem__("posture", postures(out_dir)))

    out_dir.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(steps), desc="demo", unit="step", disable=not progress,
              file=sys.stderr) as bar:
        for label, action in steps:
            bar.set_postfix_str(label)
            action()
            bar.update()

    fed: FederationResult = state["federation"]
    result = DemoResult(
        root=root, config=config, summaries=summarize_nodes(root, config.nodes),
        tables={n: node_tables(root, n) for n in config.nodes}, federation=fed,
        synthetic=state["synthetic"], budgets=state["budgets"], posture=state["posture"],
        chart=chart, markdown=out_dir / "report.md", html=out_dir / "report.html",
        seconds=time.monotonic() - started,
    )
    write_report(result, out_dir)
    summary = summary_text(result)
    _atomic_text(out_dir / STATE_FILE, json.dumps({"config": config.key(), "summary": summary},
                                                  indent=2) + "\n")
    print(summary, file=out)
    return result


def robotics_summary(table: Any) -> str:
    from workloads.robotics.federated import COLS, ROWS

    total, rate = table.counts["procedures"][ROWS - 1][COLS - 1], table.rate(ROWS - 1, COLS - 1)
    overall = ("suppressed" if total is None or rate is None
               else f"{rate:.1%} of {total:.0f} procedures")
    return f"Robotics statistic: complication rate over every fleet {overall}."


def summary_text(result: DemoResult) -> str:
    from workloads.generator import format_summaries

    fed, syn = result.federation, result.synthetic
    released = sum(row.values["combined"] is not None for row in fed.stats)
    overall = [s.get("overall_score") for s in syn.scores.values()]
    scores = [float(v) for v in overall if v is not None]
    return "\n".join([
        format_summaries(result.summaries),
        "",
        fed.text,
        "",
        f"Synthetic table: {syn.rows:,} rows, SDMetrics overall quality "
        f"{min(scores):.2f}-{max(scores):.2f} across the nodes (epsilon {syn.epsilon:g} each).",
        f"Statistics: {released} of {len(fed.stats)} cells released.",
        "Privacy budget spent (lifetime, from each node's odometer): " + ", ".join(
            f"{b.node} federation eps {b.federation_epsilon:.2f} + synthetic eps "
            f"{b.synthetic_epsilon:.2f}" for b in result.budgets),
        robotics_summary(fed.robotics),
        f"Report: {result.html} (self-contained) and {result.markdown}; "
        f"took {result.seconds:.0f} s.",
    ])
