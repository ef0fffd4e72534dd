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


DEMO_NODES = DEFAULT_NODES
DEFAULT_ROWS = 2000  # per node: enough that the carrier cells of the statistics are released
QUICK_ROWS = 600
DEFAULT_SEED = 42
VCF_RECORDS, QUICK_VCF_RECORDS = 400, 150
PROCEDURES, QUICK_PROCEDURES = 1200, 60
# One robot model, so that 1,200 procedures a node (about 13 s each to generate with 1 Hz
# telemetry) fill enough model x category cells past every node's k to show released rates;
# the full ten-model mix would need ~10x the procedures (and minutes) for the same.
DEMO_ROBOT_MODELS = "da Vinci Xi"
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
                      "--models", DEMO_ROBOT_MODELS, "--hz", "1", "--seed", str(config.seed)]),
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


EXAMPLES = Path(__file__).resolve().parent / "analysis" / "examples"
DEMO_SPEC = EXAMPLES / "cancer_risk_joined.yaml"  # the model: a researcher's analysis spec
DEMO_STATS = EXAMPLES / "risk_factors_stats.yaml"  # the statistics: a statistics spec


@dataclass
class FederationResult:
    counts: dict[str, dict[str, Any]]  # node -> table -> table_counts.Count (as released)
    stats: Any  # workloads.analysis.statistics.StatsResult, NaN where not published
    shown: np.ndarray  # which statistics cells were published
    fit: Any  # workloads.analysis.glm.FitResult (federated)
    pooled: Any  # analysis.report.Estimates: statsmodels over every node's rows (local check)
    per_node: list[Any]  # Estimates of each node alone (local check), where estimable
    per_node_notes: list[str]
    truth: dict[str, dict[str, float]]  # "us, eu" -> term -> the generator's coefficient
    max_abs_diff: float
    bytes_to_hub: int
    steps: int
    k: int
    run_id: str
    text: str
    chart: Path | None = None
    robotics: Any = None  # workloads.robotics.federated.RoboticsTable


def profile_truth(nodes: Sequence[str], terms: Sequence[str]) -> dict[str, dict[str, float]]:
    """The generator's true coefficients of the demo's model terms, grouped by the nodes whose
    profiles share them: logit P(cancer) = intercept + age * (age - centre) + allele terms;
    BMI and sex have no effect in the generator (0)."""
    groups: dict[tuple[tuple[str, float], ...], list[str]] = {}
    for node in nodes:
        profile = find_profile(node)
        coefficients = {"intercept": profile.intercept
                        - profile.coefficients.get("age", 0.0) * profile.age_center}
        for term in terms:
            if term == "intercept":
                continue
            gene = term.removeprefix("variant_")
            coefficients[term] = float(profile.coefficients.get(
                "age" if term == "age" else gene if gene in ("brca1", "tp53", "apoe4") else "",
                0.0))
        key = tuple(sorted(coefficients.items()))
        groups.setdefault(key, []).append(node)
    return {", ".join(members): dict(key) for key, members in groups.items()}


def federate(
    root: Path,
    nodes: Sequence[str] = DEMO_NODES,
    *,
    transport: str = "inprocess",
    out: TextIO | None = None,
    chart: Path | None = None,
    robotics: bool = False,
) -> FederationResult:
    """The researcher's workflow over `nodes` under `root`, every value through each node's
    guard: released row counts (`federate nodes`), the statistics spec (`analysis_stats`),
    the model spec (`analysis_glm`) over the joined view, and the robotics table when the
    nodes hold fleets. Then the local checks (pooled and per-node fits, reading the nodes
    directly) and the forest plot into `chart`."""
    from contextlib import ExitStack

    import numpy as np

    from workloads.analysis import glm, statistics
    from workloads.analysis.pooled import pooled_estimates
    from workloads.analysis.report import Estimates
    from workloads.analysis.spec import load_spec, read_mapping
    from workloads.federation.analysis_hub import fit_spec, stats_spec
    from workloads.federation.coordinator import RunConfig
    from workloads.federation.local import local_federation
    from workloads.federation.table_counts import countable, format_counts, node_counts
    from workloads.local_node import LocalNode

    spec = load_spec(DEMO_SPEC)
    stats_request = statistics.from_dict(read_mapping(DEMO_STATS), where=str(DEMO_STATS))
    with local_federation(root, list(nodes), transport=transport) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=tuple(nodes), max_rounds=spec.max_iter))
        counts = node_counts(coordinator)
        stats, shown = stats_spec(coordinator, stats_request)
        fit = fit_spec(coordinator, spec)
        from workloads.robotics import federated as robotics_federated

        table = robotics_federated.run(coordinator) if robotics else None
        coordinator.finish()
    with ExitStack() as stack:
        warehouses = {}
        for name in nodes:
            warehouses[name] = stack.enter_context(
                LocalNode(name, root).open_warehouse(create=False))
        pooled = pooled_estimates(warehouses, spec)
        per_node, notes = [], []
        for name, warehouse in warehouses.items():
            try:
                alone = glm.run_local_fit({name: warehouse}, spec)
            except UserError as exc:
                notes.append(f"{name} alone: not estimable ({exc})")
                continue
            per_node.append(Estimates.of(f"{name} alone (local check)", alone))
    names = [t.name for t in fit.terms]
    truth = profile_truth(nodes, names)
    diff = float(np.max(np.abs(fit.coefficients - np.array([pooled.values[n][0]
                                                            for n in names]))))
    text = "\n\n".join([
        "Row counts each node released (DP, rounded):\n" + format_counts(counts, countable()),
        statistics_text(stats, shown),
        fit_text(fit, pooled, truth),
        *([table.text()] if table is not None else []),
        f"Federated vs pooled (statsmodels): max |coefficient difference| = {diff:.1e} "
        f"({'identical to 1e-6' if diff < 1e-6 else 'DIFFERENT'})",
        f"Data never left the nodes: the hub received {hub.endpoint.bytes_received} bytes "
        f"in {len(coordinator.bytes_per_round)} steps over {transport} - signed, masked "
        f"aggregates and each node's guarded releases only.",
    ])
    if out is not None:
        print(text, file=out)
    result = FederationResult(
        counts, stats, shown, fit, pooled, per_node, notes, truth, diff,
        hub.endpoint.bytes_received, len(coordinator.bytes_per_round), coordinator.config.k,
        coordinator.config.run_id, text, chart, table)
    if chart is not None:
        write_chart(result, chart)
    return result


def statistics_rows(stats: Any, shown: np.ndarray) -> list[list[str]]:
    """Per level of each cross-tab with the outcome: patients, cases, rate ('*' unless both
    of the level's cells were published)."""
    cells = {(c.group, c.statistic): i for i, c in enumerate(stats.plan.cells)}
    rows = []
    for a, b in stats.plan.spec.crosstabs:
        column = stats.plan.table.column(a)
        outcome = stats.plan.table.column(b)
        for level in column.levels:
            index = [cells[("all", f"{a}={level},{b}={o}")] for o in outcome.levels]
            if not all(shown[i] for i in index):
                rows.append([f"{a} = {level}", "*", "*", "*"])
                continue
            values = [float(stats.combined[i]) for i in index]
            n, cases = sum(values), values[-1]
            rows.append([f"{a} = {level}", f"{n:.0f}", f"{cases:.0f}",
                         f"{cases / n:.1%}" if n else "-"])
    return rows


def numeric_rows(stats: Any, shown: np.ndarray) -> list[list[str]]:
    cells = {(c.group, c.statistic): i for i, c in enumerate(stats.plan.cells)}
    summary = stats.summary()["all"]
    rows = []
    for name in stats.plan.spec.numeric:
        needed = [cells[("all", f"{name}:{s}")] for s in ("count", "sum", "sum_squares")]
        if not all(shown[i] for i in needed):
            rows.append([name, "*", "*", "*"])
            continue
        entry = summary[name]
        rows.append([name, f"{entry['count']:.0f}", f"{entry['mean']:.2f}", f"{entry['sd']:.2f}"])
    return rows


def statistics_text(stats: Any, shown: np.ndarray) -> str:
    lines = [f"Statistics of {stats.plan.spec.table} as released ('*': not published)"]
    lines += [f"  {r[0]:<22} patients {r[1]:>6}  cases {r[2]:>5}  rate {r[3]:>6}"
              for r in statistics_rows(stats, shown)]
    lines += [f"  {r[0]:<22} n {r[1]:>6}  mean {r[2]:>7}  SD {r[3]:>6}"
              for r in numeric_rows(stats, shown)]
    return "\n".join(lines)


def fit_rows(fit: Any, pooled: Any, truth: dict[str, dict[str, float]]) -> list[list[str]]:
    rows = []
    for t in fit.terms:
        p = pooled.values[t.name][0]
        true = " / ".join(f"{values[t.name]:g}" for values in truth.values())
        rows.append([t.name, f"{t.estimate:.6f}", f"{t.std_error:.6f}",
                     f"[{t.ci_low:.4f}, {t.ci_high:.4f}]",
                     "-" if t.name == "intercept" or t.ratio is None else f"{t.ratio:.3f}",
                     f"{t.p_value:.2g}", f"{p:.6f}", f"{abs(t.estimate - p):.1e}", true])
    return rows


FIT_HEADER = ["term", "federated", "std err", "95% CI", "odds ratio", "p", "pooled",
              "abs. difference", "true value"]


def fit_text(fit: Any, pooled: Any, truth: dict[str, dict[str, float]]) -> str:
    lines = [f"Logistic model of {fit.spec.outcome} on {fit.spec.table}: n = {fit.n:,}, "
             f"{fit.iterations} rounds (true values: {' / '.join(truth)})",
             "  " + "  ".join(FIT_HEADER)]
    lines += ["  " + "  ".join(row) for row in fit_rows(fit, pooled, truth)]
    return "\n".join(lines)


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


def write_chart(fed: FederationResult, path: Path) -> None:
    """The forest plot: federated, pooled, each node alone, and the generator's true values."""
    from workloads.analysis.report import Estimates, forest_plot

    truths = list(fed.truth.items())
    series = [Estimates.of("federated (aggregates only)", fed.fit), fed.pooled, *fed.per_node]
    truth = truths[0][1] if len(truths) == 1 else None
    if truth is None:  # profiles differ: one series of points per group of nodes
        series += [Estimates(f"true value ({nodes})", {k: (v, v, v) for k, v in values.items()})
                   for nodes, values in truths]
    forest_plot(series, path, truth=truth,
                title="Cancer risk (logistic) on the joined genomic + clinical view")


# --- budgets, releases, posture ---------------------------------------------------------------


@dataclass
class NodeBudget:
    node: str
    federation_epsilon: float  # lifetime, largest over the node's tables (its odometer)
    federation_delta: float
    dp_releases: int
    synthetic_epsilon: float  # its synthesis releases alone (synth_* rows of the odometer)
    synthetic_delta: float
    synthetic_events: int
    releases: list[dict[str, Any]] = field(default_factory=list)  # the release log, in order
    federation_by_table: dict[str, float] = field(default_factory=dict)  # lifetime per table


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
            # The odometer is per table (a dataset): each table's lifetime epsilon.
            tables = warehouse.query(
                f"SELECT DISTINCT dataset FROM {warehouse.table_ref(ODOMETER)} ORDER BY 1"
            ).column(0).to_pylist()
            by_table = {t: guard.lifetime_epsilon(t) for t in tables}
            epsilon = max(by_table.values(), default=0.0)
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
                              policy.lifetime_delta, len(synth), releases, by_table))
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
        if any(c != "-" for c in cells):  # a model no node's fleet has: one line below
            rows.append([model, *cells])
    absent = [m for m in ROW_LEVELS if m not in {r[0] for r in rows}]
    released = sum(c not in ("*", "-") for r in rows for c in r[1:])
    return [
        ("p", f"Complication rate by robot model x procedure category over "
              f"{', '.join(table.nodes)}, from each node's `surgical_robotics` tables through "
              f"the `robotics_cells` algorithm: counts summed by secure aggregation, a cell "
              f"published only if every node passed it. `*` = suppressed (fewer than "
              f"{table.k} procedures, complicated or uncomplicated ones at some node, or "
              f"derivable from the margins); `-` = no procedures. {released} non-empty cells "
              f"released."
              + (f" Models with no procedures at any node (released as 0): "
                 f"{', '.join(absent)}." if absent else "")),
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
    from workloads.federation.guard import NodePolicy
    from workloads.federation.table_counts import countable

    policy = NodePolicy()
    blocks += [
        ("p", f"What the hub may learn of each node's size (`python -m workloads federate "
              f"nodes`): each node releases, through its own guard, a differentially private "
              f"row count per declared table with a releasable column: noise of at least "
              f"{policy.count_noise_multiplier:g} rows (default policy), charged to that "
              f"table's odometer (at most epsilon {policy.count_epsilon:g} per table for "
              f"life), rounded to {policy.count_rounding} rows, `< {policy.min_rows}` below "
              f"the node's minimum. Exact counts stay inside the node (the table above)."),
        ("table", (["table (released)", *cfg.nodes], [
            [f"`{t}`", *[fed.counts[n][t].text() if n in fed.counts else "no answer"
                         for n in cfg.nodes]] for t in countable()
        ])),
        ("h2", "2. Descriptive statistics, as released"),
        ("p", f"The statistics spec `{DEMO_STATS.relative_to(DEMO_STATS.parents[3])}` over "
              f"the joined view `{fed.stats.plan.spec.table}` (`analysis_stats`): one SQL "
              f"aggregate per node, summed by secure aggregation. A cell is published only if "
              f"every node's guard passed it: at least k = {fed.k} rows at every node (or "
              f"none), and no single hidden cell recoverable from its family's total; `*` = "
              f"suppressed."),
        ("table", (["cell", "patients", "cases", "cancer rate"], statistics_rows(
            fed.stats, fed.shown))),
        ("table", (["column", "patients with a value", "mean", "SD"], numeric_rows(
            fed.stats, fed.shown))),
        ("h2", "3. Cancer risk model: federated vs pooled"),
        ("p", f"The analysis spec `{DEMO_SPEC.relative_to(DEMO_SPEC.parents[3])}`: "
              f"`{fed.fit.spec.outcome}` on the allele counts derived from each node's VCF "
              f"and on age, BMI and sex from its FHIR records, joined inside each node by the "
              f"declared view `{fed.fit.spec.table}` (no row leaves a node; the join runs in "
              f"its warehouse). Fitted by the `analysis_glm` algorithm: each Newton round is "
              f"one SQL aggregate per node (gradient and X'WX), through its guard, summed by "
              f"secure aggregation; {fed.fit.iterations} rounds, {fed.fit.n:,} patients "
              f"({sum(fed.fit.excluded_per_node.values()):,} left out for a missing or "
              f"undeclared value, counted inside the nodes and released only as their sum). "
              f"The pooled fit is statsmodels' GLM over every node's rows of the same "
              f"view (a local check only; a real federation never can): max |federated - "
              f"pooled| = {fed.max_abs_diff:.1e}. True values: the generator's profile "
              f"coefficients ({'; '.join(fed.truth)}; BMI and sex have no effect there)."),
        ("img", ("forest", "forest plot: federated, pooled, each node alone, true values")),
        ("table", (FIT_HEADER, fit_rows(fed.fit, fed.pooled, fed.truth))),
        ("p", "Each node alone (on the plot) is also a local check: a node's own fit is a "
              "per-node release, which the default node policy does not allow over the "
              "federation (exact releases only as masked sums over three or more nodes)."
              + (" " + "; ".join(fed.per_node_notes) if fed.per_node_notes else "")),
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
        ("table", (["node", "federation epsilon (lifetime, largest per table)",
                    "federation DP releases",
                    "synthetic-data epsilon (lifetime)", "synthetic DP events", "delta"], [
            [b.node, f"{b.federation_epsilon:.3f}", str(b.dp_releases),
             f"{b.synthetic_epsilon:.3f}", str(b.synthetic_events), f"{b.federation_delta:g}"]
            for b in result.budgets
        ])),
        ("p", "Exact masked sums (statistics, model terms) cost no epsilon: each guard allows "
              "them only as sums over at least three nodes; noised releases (the row counts of "
              "`federate nodes`, one per table; the synthetic table) are charged to the node's "
              "lifetime budget of the table they read. Per table: " + "; ".join(
                  f"{b.node}: " + ", ".join(f"`{t}` {e:.3f}" for t, e in
                                           b.federation_by_table.items())
                  for b in result.budgets) + "."),
        ("h2", "7. What each node released, step by step"),
        ("p", "From each node's own records, written inside the node before each upload: "
              "the release log (exact masked sums: the statistics, then one per Newton round "
              "of the model, then the robotics cells) and the odometer (noised releases: the "
              "row counts, and the synthetic table's marginals and correlation sums)."),
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
    released = int(fed.shown.sum())
    overall = [s.get("overall_score") for s in syn.scores.values()]
    scores = [float(v) for v in overall if v is not None]
    return "\n".join([
        format_summaries(result.summaries),
        "",
        fed.text,
        "",
        f"Synthetic table: {syn.rows:,} rows, SDMetrics overall quality "
        f"{min(scores):.2f}-{max(scores):.2f} across the nodes (epsilon {syn.epsilon:g} each).",
        f"Statistics: {released} of {len(fed.shown)} cells released.",
        "Privacy budget spent (lifetime, from each node's odometer): " + ", ".join(
            f"{b.node} federation eps {b.federation_epsilon:.2f} + synthetic eps "
            f"{b.synthetic_epsilon:.2f}" for b in result.budgets),
        robotics_summary(fed.robotics),
        f"Report: {result.html} (self-contained) and {result.markdown}; "
        f"took {result.seconds:.0f} s.",
    ])
