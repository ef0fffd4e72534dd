"""`python -m workloads federate stats|fit|nodes|worker|coordinator|roster`: the federation
engine."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from workloads.cli.synth import add_synth_arguments
from workloads.cli.synth import run as run_synth
from workloads.contracts.errors import UserError
from workloads.federation import defaults
from workloads.federation.defaults import LOCAL_PROJECT, TRANSPORTS
from workloads.local_node import DEFAULT_ROOT

DEFAULT_NODES = ",".join(defaults.DEFAULT_NODES)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "federate",
        help="federated statistics and models: only protected aggregates leave a node",
        description="Run the federation engine over local nodes (folders under --root) or "
        "as one side of a Pub/Sub federation (worker inside a node, coordinator at the hub). "
        "Every message is signed and checked against the pinned roster; every release "
        "passes the node's own guard and policy (<node folder>/federation_policy.toml).",
    )
    commands = parser.add_subparsers(dest="federate_command", required=True, metavar="ACTION")

    for name, help_text in (
        ("stats", "federated counts, means and cancer rates with small-cell suppression"),
        ("fit", "federated logistic regression of diagnosis_cancer (exact, or DP)"),
        ("robotics", "federated complication rate by robot model x procedure category "
         "(small-cell and secondary suppression; exact, or DP with --max-per-patient)"),
    ):
        action = commands.add_parser(name, help=help_text, description=help_text)
        _root(action)
        action.add_argument("--nodes", default=DEFAULT_NODES,
                            help=f"comma-separated node names (default {DEFAULT_NODES})")
        action.add_argument("--transport", choices=TRANSPORTS, default=TRANSPORTS[0],
                            help="inprocess: workers as threads; pubsub: workers as processes "
                            "over the Pub/Sub emulator (started here unless "
                            "PUBSUB_EMULATOR_HOST is set)")
        model_options(action)
        if name == "fit":
            _spec_options(action)
        elif name == "stats":
            _stats_options(action)
        action.set_defaults(func=_run, product=name)
        if name == "robotics":
            action.add_argument("--max-per-patient", type=int, default=0, metavar="M",
                                help="count only each patient's first M procedures (needed "
                                "for DP: the sensitivity is proportional to M; 0: all)")
            action.add_argument("--out", type=Path, default=None,
                                help="also write the published table as JSON to this file")

    nodes_cmd = commands.add_parser(
        "nodes",
        help="each node's declared tables and their released row counts (DP, through each "
        "node's guard)",
        description="Asks every node, over the signed protocol, for the row count of each "
        "declared table (and analysable view) with a releasable column. Each node answers "
        "through its own guard: noised (at least its count_noise_multiplier rows), charged "
        "to that table's odometer (at most count_epsilon per table for life), rounded to its "
        "count_rounding, and '< min_rows' below its min_rows (docs/analysis.md).",
    )
    _root(nodes_cmd)
    nodes_cmd.add_argument("--nodes", default=DEFAULT_NODES,
                           help=f"comma-separated node names (default {DEFAULT_NODES})")
    nodes_cmd.add_argument("--transport", choices=TRANSPORTS, default=TRANSPORTS[0])
    nodes_cmd.add_argument("--tables", default=None,
                           help="comma-separated tables (default: every declared table with a "
                           "releasable column)")
    nodes_cmd.add_argument("--out", type=Path, metavar="FILE", help="also write JSON here")
    nodes_cmd.set_defaults(func=_nodes)

    synth = commands.add_parser(
        "synth",
        help="federated DP synthetic data (Gaussian copula) over local nodes",
        description="Through the federation protocol (in-process or Pub/Sub), each node's "
        "worker releases DP histograms and DP normal-score sums of the table through its "
        "guard, masked so that only their totals are read; writes the synthetic table (CSV, "
        "Parquet), its metadata and an SDMetrics quality report into --out. Every run is "
        "charged to every node's odometer, capped by its own policy's lifetime_epsilon.",
    )
    add_synth_arguments(synth)
    synth.set_defaults(func=run_synth)

    roster = commands.add_parser(
        "roster",
        help="create the local parties' signing keys and pin them in <root>/roster.json",
    )
    _root(roster)
    roster.add_argument("--nodes", default=DEFAULT_NODES)
    roster.set_defaults(func=_roster)

    worker = commands.add_parser(
        "worker",
        help="a node's worker: answer the hub's steps from this node's warehouse",
        description="Pulls the node's subscription on the hub's broadcast topic and uploads "
        "signed, masked aggregates. Needs PUBSUB_EMULATOR_HOST or Google credentials.",
    )
    worker.add_argument("--node", required=True, help="this node's name, e.g. us")
    _root(worker)
    worker.add_argument("--project", default=LOCAL_PROJECT, help="the hub's GCP project")
    worker.add_argument("--roster", type=Path, default=None,
                        help="the pinned roster (default: <root>/roster.json)")
    worker.add_argument("--kms-key", default=None,
                        help="sign with this Cloud KMS key version (projects/.../"
                        "cryptoKeyVersions/N) instead of the local key file")
    worker.add_argument("--exit-after-run", action="store_true", help="stop when a run ends")
    worker.add_argument("--idle-timeout", type=float, default=None,
                        help="stop after this many seconds without messages")
    worker.add_argument("--create-topics", action="store_true",
                        help="emulator only: create the hub's topics and this node's subscription")
    worker.set_defaults(func=_worker)

    coordinator = commands.add_parser(
        "coordinator",
        help="the hub's coordinator over Pub/Sub (workers run elsewhere)",
        description="Runs statistics and the model against workers already pulling their "
        "subscriptions, and writes the run's audit record to <root>/hub/results/runs/ "
        "(docs/federation.md). Needs PUBSUB_EMULATOR_HOST or Google credentials.",
    )
    coordinator.add_argument("--nodes", default=DEFAULT_NODES, help="comma-separated node names")
    _root(coordinator)
    coordinator.add_argument("--project", default=LOCAL_PROJECT)
    coordinator.add_argument("--roster", type=Path, default=None,
                             help="the pinned roster (default: <root>/roster.json)")
    coordinator.add_argument("--kms-key", default=None,
                             help="sign with this Cloud KMS key version instead of a key file")
    coordinator.add_argument("--create-topics", action="store_true",
                             help="emulator only: create the hub's topics and subscriptions")
    model_options(coordinator)
    coordinator.set_defaults(func=_coordinator)


def _root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help=f"folder of local nodes, keys and roster (default: {DEFAULT_ROOT})")


def model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--k", type=int, default=defaults.DEFAULT_K,
                        help=f"small-cell threshold (default {defaults.DEFAULT_K}; each node "
                        "applies at least its own policy's min_k)")
    parser.add_argument("--round-timeout", type=float, default=defaults.DEFAULT_ROUND_TIMEOUT,
                        help=f"seconds per step (default {defaults.DEFAULT_ROUND_TIMEOUT:g}); "
                        "a node silent past it is dropped and its masks recovered")
    parser.add_argument("--max-rounds", type=int, default=defaults.DEFAULT_MAX_ROUNDS,
                        help=f"Newton rounds before giving up (default "
                        f"{defaults.DEFAULT_MAX_ROUNDS})")
    parser.add_argument("--dp-epsilon", type=float, default=None,
                        help="ask for differential privacy with this epsilon per node for the "
                        "run (nodes add at least their own policy's noise and charge their "
                        "lifetime odometers)")
    parser.add_argument("--dp-delta", type=float, default=defaults.DEFAULT_DP_DELTA)
    parser.add_argument("--dp-rounds", type=int, default=None,
                        help="releases the budget covers (default: "
                        + ", ".join(f"{k} {v}" for k, v in defaults.PLANNED_RELEASES.items())
                        + ")")


def _spec_options(parser: argparse.ArgumentParser) -> None:
    from workloads.analysis.spec import add_spec_arguments

    add_spec_arguments(parser)  # --spec FILE and the same as flags (docs/analysis.md)
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="write the spec fit's results as JSON here")
    parser.add_argument("--report", type=Path, metavar="FILE",
                        help="write a Markdown report here (and <stem>_forest.png beside it)")
    parser.add_argument("--truth", type=Path, metavar="FILE",
                        help="JSON of true coefficients by term, drawn on the forest plot")


def _stats_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", type=Path, metavar="FILE",
                        help="statistics spec (JSON/YAML; docs/analysis.md)")
    parser.add_argument("--table", help="a declared table")
    parser.add_argument("--numeric", help="numeric columns: count, mean, SD, histogram")
    parser.add_argument("--bins", type=int, help="histogram bins over the public bounds")
    parser.add_argument("--crosstab", action="append", metavar="A,B",
                        help="cross-tabulate two declared categoricals (repeatable)")
    parser.add_argument("--by", help="a declared categorical to split every statistic by")
    parser.add_argument("--cohort", help="row filter (the cohort language)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write results as JSON here")


def _spec_stats(args: argparse.Namespace, nodes: list[str]) -> int:
    """A researcher's statistics spec through the federation: each node's small-cell rules
    and guard, masked sums; '*' where a cell is not published."""
    import json
    import math

    from workloads.analysis import statistics
    from workloads.analysis.report import _atomic_write
    from workloads.federation.analysis_hub import stats_spec
    from workloads.federation.local import local_federation

    spec = statistics.spec_from_args(args)
    statistics.plan(spec)  # a bad spec fails before any node is asked
    config = run_config(args, nodes, "stats")
    with local_federation(args.root, nodes, transport=args.transport) as hub:
        coordinator = hub.coordinator(config)
        result, shown = stats_spec(coordinator, spec)
        coordinator.finish()
    print(f"Federated statistics over {', '.join(nodes)} (k {config.k}; '*': not published)")
    cells = []
    for i, cell in enumerate(result.plan.cells):
        value = float(result.combined[i]) if shown[i] else None
        cells.append({"group": cell.group, "statistic": cell.statistic, "kind": cell.kind,
                      "combined": value})
        print(f"  [{cell.group}] {cell.statistic}: "
              + ("*" if value is None else f"{value:,.6g}"))
    summary = {g: {k: v for k, v in entry.items()} for g, entry in result.summary().items()}
    for group, entry in summary.items():
        for name in spec.numeric:
            stats = entry[name]
            if not any(math.isnan(v) for v in stats.values()):
                print(f"  [{group}] {name}: mean {stats['mean']:.4g}, SD {stats['sd']:.4g} "
                      f"(n {stats['count']:,.0f})")
    if args.out:
        clean = json.loads(json.dumps(summary).replace("NaN", "null"))
        payload = {"spec": spec.to_dict(), "nodes": nodes, "k": config.k,
                   "dp_epsilon": config.dp.epsilon if config.dp else None,
                   "summary": clean, "cells": cells}
        _atomic_write(args.out, (json.dumps(payload, indent=2) + "\n").encode())
        print(f"results: {args.out}")
    return 0


def _has_spec(args: argparse.Namespace) -> bool:
    return any(getattr(args, key, None) is not None for key in ("spec", "table", "outcome"))


def _spec_fit(args: argparse.Namespace, nodes: list[str]) -> int:
    """A researcher's spec, fitted through the federation: signed steps, each node's guard,
    secure aggregation; the hub sees only sums."""
    from workloads.analysis.cli import print_fit, write_outputs
    from workloads.analysis.spec import spec_from_args
    from workloads.federation.analysis_hub import fit_spec
    from workloads.federation.local import local_federation

    spec = spec_from_args(args)
    config = run_config(args, nodes, "fit")
    config.max_rounds = max(config.max_rounds, spec.max_iter)
    with local_federation(args.root, nodes, transport=args.transport) as hub:
        coordinator = hub.coordinator(config)
        result = fit_spec(coordinator, spec)
        coordinator.finish()
    print_fit(result)
    notes = [f"federated over {', '.join(nodes)} ({args.transport}); each node's rows are "
             f"released only as a masked sum through its guard"]
    if config.dp is not None:
        notes.append(f"differentially private: epsilon {config.dp.epsilon:g} per node over "
                     f"{config.dp.releases} noisy rounds (fixed rounds: not a convergence test)")
    write_outputs(result, args, notes=notes)
    return 0


def run_config(args: argparse.Namespace, nodes: list[str], product: str) -> Any:
    from workloads.federation.coordinator import DPRequest, RunConfig
    from workloads.federation.defaults import PLANNED_RELEASES

    dp = None
    if args.dp_epsilon is not None:
        dp = DPRequest(args.dp_epsilon, args.dp_rounds or PLANNED_RELEASES[product],
                       args.dp_delta)
        dp.noise_multiplier  # noqa: B018 - a budget that cannot cover the rounds fails here
    return RunConfig(nodes=tuple(nodes), round_timeout=args.round_timeout, k=args.k,
                     max_rounds=args.max_rounds, dp=dp)


def node_list(text: str) -> list[str]:
    from workloads.local_node import LocalNode

    nodes = [n.strip() for n in text.split(",") if n.strip()]
    for node in nodes:
        LocalNode(node, Path("."))  # validates the name
    return nodes


def _products(coordinator: Any, product: str, args: argparse.Namespace) -> None:
    from workloads.federation import report

    if product in ("stats", "both"):
        print(report.stats_table(coordinator.statistics(), coordinator.config.k))
    if product in ("fit", "both"):
        print(report.fit_table(coordinator.fit()))
    if product == "robotics":
        _robotics(coordinator, args)
    coordinator.finish()


def _robotics(coordinator: Any, args: argparse.Namespace) -> None:
    import json

    from workloads.analysis.report import _atomic_write
    from workloads.robotics import federated

    if args.max_per_patient < 0:
        raise UserError(f"--max-per-patient {args.max_per_patient}: must be >= 0; fix: a count "
                        f"of procedures per patient (0: all)")
    if coordinator.config.dp is not None and args.max_per_patient < 1:
        raise UserError("DP robotics statistics need a per-patient cap; fix: add "
                        "--max-per-patient M (e.g. 2)")
    table = federated.run(coordinator, max_per_patient=args.max_per_patient)
    print(table.text())
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(args.out, (json.dumps(table.to_json(), indent=1) + "\n").encode())
        print(f"wrote {args.out}")


def _run(args: argparse.Namespace) -> int:
    from workloads.federation.local import local_federation

    nodes = node_list(args.nodes)
    if args.product == "fit" and _has_spec(args):
        return _spec_fit(args, nodes)
    if args.product == "stats" and (args.spec is not None or args.table is not None):
        return _spec_stats(args, nodes)
    config = run_config(args, nodes, args.product)
    with local_federation(args.root, nodes, transport=args.transport) as hub:
        _products(hub.coordinator(config), args.product, args)
    return 0


def _nodes(args: argparse.Namespace) -> int:
    import json

    from workloads.analysis.report import _atomic_write
    from workloads.federation.coordinator import RunConfig
    from workloads.federation.local import local_federation
    from workloads.federation.table_counts import countable, format_counts, node_counts

    nodes = node_list(args.nodes)
    known = countable()
    tables = known
    if args.tables:
        tables = tuple(t.strip() for t in args.tables.split(",") if t.strip())
        if unknown := [t for t in tables if t not in known]:
            raise UserError(f"--tables: {', '.join(unknown)} not declared with a releasable "
                            f"column; fix: use some of {', '.join(known)}")
    with local_federation(args.root, nodes, transport=args.transport) as hub:
        coordinator = hub.coordinator(RunConfig(nodes=tuple(nodes)))
        counts = node_counts(coordinator, tables)
        coordinator.finish()
    print("Declared tables and released row counts (each node's guard: DP-noised, rounded; "
          "'< n': below the node's min_rows)")
    print(format_counts(counts, tables))
    if args.out:
        payload = {node: {t: {"status": c.status, "rows": c.value, "detail": c.detail}
                          for t, c in row.items()} for node, row in counts.items()}
        _atomic_write(args.out, (json.dumps(payload, indent=2) + "\n").encode())
        print(f"results: {args.out}")
    return 0


def _roster(args: argparse.Namespace) -> int:
    from workloads.federation import roster

    pinned = roster.write_local(args.root, node_list(args.nodes))
    print(f"roster {roster.path(args.root)}: hub and {', '.join(pinned.nodes)}")
    return 0


def _signer(args: argparse.Namespace, party: str) -> Any:
    if args.kms_key:
        from workloads.federation.identity import KmsSigner

        return KmsSigner(args.kms_key)
    from workloads.federation.identity import local_signer

    return local_signer(args.root, party, create=False)


def _load_roster(args: argparse.Namespace) -> Any:
    from workloads.federation import roster

    if args.roster is None:
        return roster.load(args.root)
    if not args.roster.exists():
        raise UserError(f"roster {args.roster} does not exist; fix: name the pinned roster file")
    return roster.Roster.from_json(args.roster.read_text(), str(args.roster))


def _worker(args: argparse.Namespace) -> int:
    from workloads.federation.guard import load_policy
    from workloads.federation.transport import PubSubNode
    from workloads.federation.worker import NodeWorker
    from workloads.local_node import LocalNode

    node = LocalNode(args.node, args.root)
    if args.create_topics:
        from workloads.federation.transport import create_resources

        create_resources(args.project, [args.node])
    worker = NodeWorker(
        node, PubSubNode(args.project, args.node), _signer(args, args.node),
        _load_roster(args), load_policy(node),
    )
    worker.preload()  # read the node's rows now: a missing warehouse fails before any step
    logging.getLogger(__name__).info("node %s: worker pulling its subscription", args.node)
    worker.serve(exit_after_run=args.exit_after_run, idle_timeout=args.idle_timeout)
    return 0


def _coordinator(args: argparse.Namespace) -> int:
    from workloads.federation.coordinator import Coordinator
    from workloads.federation.roster import HUB
    from workloads.federation.transport import PubSubHub

    nodes = node_list(args.nodes)
    config = run_config(args, nodes, "both")
    if args.create_topics:
        from workloads.federation.transport import create_resources

        create_resources(args.project, nodes)
    coordinator = Coordinator(PubSubHub(args.project), config, _signer(args, HUB),
                              _load_roster(args))
    # The same audit record the cloud coordinator writes to the hub's results bucket.
    from workloads.federation.service import run_and_record
    from workloads.objectstore.folder import FolderStore

    run_and_record(coordinator, ["stats", "fit"], None,
                   FolderStore(args.root / "hub" / "results"), hub_project=args.project)
    return 0
