"""`python -m workloads analysis fit|stats|nodes`: researcher-specified analyses over the
local nodes (folders under --root), computed inside each node's warehouse.

`fit` goes through the federation engine in-process (the same as `federate fit --spec`):
each node answers through its own guard, the hub reads only masked sums. `--pooled` and
`--per-node` are the local demo's verification: they read the local warehouses directly
(every node's rows, or one node alone), which a real federation never can.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from workloads.analysis import glm
from workloads.analysis.report import Estimates, write_json, write_report
from workloads.analysis.spec import AnalysisSpec, add_spec_arguments, spec_from_args, validate
from workloads.contracts.catalogue import ALL_TABLES
from workloads.contracts.errors import UserError
from workloads.local_node import DEFAULT_ROOT, LocalNode


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "analysis",
        help="analyses you specify (table, outcome, covariates, cohort, family), pushed "
        "down into each node's warehouse",
        description="Fit a GLM or compute statistics over local nodes; each node answers "
        "with one SQL aggregate per round, no row leaves its warehouse. See docs/analysis.md.",
    )
    actions = parser.add_subparsers(dest="analysis_command", required=True, metavar="ACTION")

    fit = actions.add_parser("fit", help="federated GLM: logistic, linear or Poisson")
    add_spec_arguments(fit)
    _node_options(fit)
    fit.add_argument("--out", type=Path, metavar="FILE", help="write results as JSON here")
    fit.add_argument("--report", type=Path, metavar="FILE",
                     help="write a Markdown report here (and <stem>_forest.png beside it)")
    fit.add_argument("--pooled", action="store_true",
                     help="also fit on the pooled rows (local demo only: reads the rows)")
    fit.add_argument("--per-node", action="store_true", help="also fit each node alone")
    fit.add_argument("--truth", type=Path, metavar="FILE",
                     help="JSON of true coefficients by term, drawn on the forest plot")
    fit.set_defaults(func=_fit)

    stats = actions.add_parser("stats", help="counts, means, SDs, histograms, cross-tabs")
    stats.add_argument("--spec", type=Path, metavar="FILE", help="statistics spec (JSON/YAML)")
    stats.add_argument("--table", help="a declared table")
    stats.add_argument("--numeric", help="numeric columns: count, mean, SD, histogram")
    stats.add_argument("--bins", type=int, help="histogram bins over the public bounds")
    stats.add_argument("--crosstab", action="append", metavar="A,B",
                       help="cross-tabulate two declared categoricals (repeatable)")
    stats.add_argument("--by", help="a declared categorical to split every statistic by")
    stats.add_argument("--cohort", help="row filter (the cohort language)")
    _node_options(stats)
    stats.add_argument("--out", type=Path, metavar="FILE", help="write results as JSON here")
    stats.set_defaults(func=_stats)

    nodes = actions.add_parser("nodes", help="each node's declared tables and row counts")
    _node_options(nodes)
    nodes.set_defaults(func=_nodes)


def _node_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help=f"folder of local nodes (default: {DEFAULT_ROOT})")
    parser.add_argument("--nodes", default="", help="comma-separated nodes (default: all)")


def _node_names(args: argparse.Namespace) -> list[str]:
    names = [n.strip() for n in args.nodes.split(",") if n.strip()]
    if not names:
        root = Path(args.root)
        names = sorted(p.name for p in root.iterdir()
                       if (p / "warehouse.duckdb").exists()) if root.is_dir() else []
    if not names:
        raise UserError(
            f"no nodes under {args.root}; fix: generate some (python -m workloads generate "
            f"--node us --root {args.root}) or pass --root"
        )
    return names


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    with ExitStack() as stack:
        warehouses: dict[str, Any] = {}
        for name in _node_names(args):
            warehouse = LocalNode(name, Path(args.root)).open_warehouse(create=False)
            stack.callback(warehouse.close)
            warehouses[name] = warehouse
        yield warehouses


def _fit(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    if args.truth:
        _truth(args.truth)  # a bad file fails before any node is asked
    validate(spec)  # a bad spec fails before any node is asked
    result = _federated_fit(args, spec)
    with _opened(args) as warehouses:
        comparisons: list[Estimates] = []
        notes: list[str] = []
        if args.pooled:
            from workloads.analysis.pooled import pooled_estimates

            comparisons.append(pooled_estimates(warehouses, spec))
        if args.per_node:
            for name, warehouse in warehouses.items():
                try:
                    alone = glm.run_local_fit({name: warehouse}, spec)
                except UserError as exc:
                    notes.append(f"node {name} alone: not estimable ({exc})")
                    continue
                comparisons.append(Estimates.of(f"{name} alone", alone))
    print_fit(result)
    write_outputs(result, args, comparisons=comparisons, notes=notes)
    return 0


def _federated_fit(args: argparse.Namespace, spec: AnalysisSpec) -> glm.FitResult:
    """Over several nodes the fit always goes through the federation (signed steps, each
    node's guard and release log, secure aggregation), never straight at the warehouses."""
    from workloads.federation.analysis_hub import fit_spec
    from workloads.federation.coordinator import RunConfig
    from workloads.federation.local import local_federation

    nodes = _node_names(args)
    with local_federation(Path(args.root), nodes) as hub:
        coordinator = hub.coordinator(RunConfig(tuple(nodes), max_rounds=spec.max_iter))
        result = fit_spec(coordinator, spec)
        coordinator.finish()
    return result


def print_fit(result: glm.FitResult) -> None:
    print(_table(result))


def write_outputs(result: glm.FitResult, args: argparse.Namespace, *,
                  comparisons: Sequence[Estimates] = (), notes: Sequence[str] = ()) -> None:
    """`--out` JSON and `--report` Markdown with the forest plot (shared with `federate`)."""
    truth = _truth(args.truth) if getattr(args, "truth", None) else None
    if args.out:
        write_json(result, args.out, {"comparisons": {c.label: c.values for c in comparisons}})
        print(f"results: {args.out}")
    if args.report:
        plot = write_report(result, args.report, comparisons=list(comparisons), truth=truth,
                            notes=list(notes))
        print(f"report: {args.report} (forest plot {plot})")


def _truth(path: Path) -> dict[str, float]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(
            f"--truth {path}: {exc}; fix: give a JSON object of term: value"
        ) from None
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) for v in data.values()):
        raise UserError(f"--truth {path}: expected a JSON object of term: number")
    return {str(k): float(v) for k, v in data.items()}


def _table(result: glm.FitResult) -> str:
    ratio = {"logistic": "OR", "poisson": "RR"}.get(result.family)
    lines = [f"{result.family} model of {result.spec.outcome}: n = {result.n:,} ("
             + ", ".join(f"{k} {v:,}" for k, v in result.rows_per_node.items())
             + f"), {result.iterations} rounds, converged"]
    lines.append(f"{'term':<24}{'estimate':>12}{'std.err':>11}{'95% interval':>26}{'p':>11}"
                 + (f"{ratio:>9}" if ratio else ""))
    for t in result.terms:
        line = (f"{t.name:<24}{t.estimate:>12.5g}{t.std_error:>11.4g}"
                f"{f'{t.ci_low:.4g} to {t.ci_high:.4g}':>26}{t.p_value:>11.3g}")
        if ratio and t.ratio is not None and t.name != "intercept":
            line += f"{t.ratio:>9.4g}"
        lines.append(line)
    return "\n".join(lines)


def _stats(args: argparse.Namespace) -> int:
    from workloads.analysis import statistics

    spec = statistics.spec_from_args(args)
    with _opened(args) as warehouses:
        result = statistics.run_local_stats(warehouses, spec)
    print(statistics.format_table(result))
    if args.out:
        statistics.write_json(result, args.out)
        print(f"results: {args.out}")
    return 0


def _nodes(args: argparse.Namespace) -> int:
    with _opened(args) as warehouses:
        for name, warehouse in warehouses.items():
            print(f"{name}:")
            present = {
                row["table_name"] for row in warehouse.query(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_catalog = 'node'").to_pylist()
            }
            for table in ALL_TABLES:
                if table.name not in present:
                    continue
                count = warehouse.query(
                    f"SELECT count(*) AS n FROM {warehouse.table_ref(table)}").column("n")[0]
                usable = sum(1 for c in table.columns if c.releasable)
                print(f"  {table.name:<24} {count.as_py():>12,} rows  "
                      f"{usable} releasable column(s)")
    sys.stdout.flush()
    return 0
