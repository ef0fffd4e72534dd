"""`python -m workloads federate stats|fit|worker|coordinator`: the federation engine."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from workloads.contracts.errors import UserError
from workloads.local_node import DEFAULT_ROOT

DEFAULT_PROJECT = "sovereign-local"


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "federate",
        help="federated statistics and models: only aggregates leave a node",
        description="Run the federation engine over local nodes (folders under --root) or "
        "as one side of a Pub/Sub federation (worker inside a node, coordinator at the hub).",
    )
    commands = parser.add_subparsers(dest="federate_command", required=True, metavar="ACTION")

    for name, help_text in (
        ("stats", "federated counts, means and cancer rates with small-cell suppression"),
        ("fit", "federated logistic regression of diagnosis_cancer (exact, or DP)"),
    ):
        action = commands.add_parser(name, help=help_text, description=help_text)
        _run_options(action)
        action.set_defaults(func=_run, product=name)

    worker = commands.add_parser(
        "worker",
        help="a node's worker: answer the hub's rounds from this node's warehouse",
        description="Pulls the node's subscription on the hub's broadcast topic and uploads "
        "masked aggregates. Needs PUBSUB_EMULATOR_HOST or Google credentials.",
    )
    worker.add_argument("--node", required=True, help="this node's name, e.g. us")
    worker.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help=f"folder of local nodes (default: {DEFAULT_ROOT})")
    worker.add_argument("--transport", choices=["pubsub"], default="pubsub")
    worker.add_argument("--project", default=DEFAULT_PROJECT, help="the hub's GCP project")
    worker.add_argument("--exit-after-run", action="store_true", help="stop when a run ends")
    worker.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="stop after this many seconds without messages",
    )
    worker.add_argument(
        "--max-epsilon",
        type=float,
        default=10.0,
        help="refuse DP runs whose budget exceeds this (default 10)",
    )
    worker.add_argument(
        "--min-k",
        type=int,
        default=10,
        help="this node's small-cell floor; a hub may only ask for more",
    )
    worker.add_argument(
        "--max-age",
        type=float,
        default=3600.0,
        help="ignore announcements older than this many seconds (default 3600)",
    )
    worker.add_argument(
        "--create-topics",
        action="store_true",
        help="emulator only: create the hub's topics and this node's subscription",
    )
    worker.set_defaults(func=_worker)

    coordinator = commands.add_parser(
        "coordinator",
        help="the hub's coordinator over Pub/Sub (workers run elsewhere)",
        description="Runs statistics and the model against workers already pulling their "
        "subscriptions. Needs PUBSUB_EMULATOR_HOST or Google credentials.",
    )
    coordinator.add_argument("--nodes", required=True, help="comma-separated node names")
    coordinator.add_argument("--project", default=DEFAULT_PROJECT)
    coordinator.add_argument(
        "--create-topics",
        action="store_true",
        help="emulator only: create the hub's topics and subscriptions",
    )
    _model_options(coordinator)
    coordinator.set_defaults(func=_coordinator)


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help=f"folder of local nodes (default: {DEFAULT_ROOT})")
    parser.add_argument("--nodes", default="us,eu", help="comma-separated node names")
    parser.add_argument(
        "--transport",
        choices=["inprocess", "pubsub"],
        default="inprocess",
        help="inprocess: workers as threads; pubsub: workers as processes over the Pub/Sub "
        "emulator (started here unless PUBSUB_EMULATOR_HOST is set)",
    )
    _model_options(parser)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--k", type=int, default=10, help="small-cell threshold (default 10)")
    parser.add_argument("--round-timeout", type=float, default=30.0, help="seconds per round")
    parser.add_argument(
        "--quorum",
        type=int,
        default=None,
        help="continue after dropouts while at least this many nodes answer "
        "(default: all nodes; any dropout stops the run)",
    )
    parser.add_argument(
        "--dp-epsilon",
        type=float,
        default=None,
        help="fit with differential privacy under this total epsilon",
    )
    parser.add_argument("--dp-delta", type=float, default=1e-6)
    parser.add_argument("--dp-clip", type=float, default=3.0)
    parser.add_argument(
        "--dp-rounds",
        type=int,
        default=None,
        help="releases the budget covers (default: stats 1, fit 6, both 7)",
    )


PLANNED_RELEASES = {"stats": 1, "fit": 6, "both": 7}


def _config(args: argparse.Namespace, nodes: list[str], product: str) -> Any:
    from workloads.federation.coordinator import RunConfig
    from workloads.federation.privacy import DPConfig

    dp = None
    if args.dp_epsilon is not None:
        rounds = args.dp_rounds or PLANNED_RELEASES[product]
        dp = DPConfig(args.dp_epsilon, args.dp_delta, args.dp_clip, rounds)
    if args.k < 1:
        raise UserError(f"--k {args.k}: the small-cell threshold must be at least 1")
    return RunConfig(
        nodes=tuple(nodes), round_timeout=args.round_timeout, quorum=args.quorum, k=args.k, dp=dp
    )


def _node_list(text: str) -> list[str]:
    nodes = [n.strip() for n in text.split(",") if n.strip()]
    from workloads.local_node import LocalNode

    for node in nodes:
        LocalNode(node, Path("."))  # validates the name
    return nodes


def _products(coordinator: Any, product: str) -> None:
    from workloads.federation import report

    if product in ("stats", "both"):
        print(report.stats_table(coordinator.statistics(), coordinator.config.k))
    if product in ("fit", "both"):
        print(report.fit_table(coordinator.fit()))
    coordinator.finish()


def _run(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from workloads.federation import runner
    from workloads.federation.coordinator import Coordinator
    from workloads.local_node import LocalNode

    nodes = _node_list(args.nodes)
    config = _config(args, nodes, args.product)
    local = [LocalNode(n, args.root) for n in nodes]
    for node in local:
        node.open_warehouse(create=False).close()  # clear error if a node is missing
    with ExitStack() as stack:
        if args.transport == "inprocess":
            hub: Any = stack.enter_context(runner.in_process(local))
        else:
            from workloads.federation.emulator import running_emulator
            from workloads.federation.transport import PubSubHub, create_resources

            host = os.environ.get("PUBSUB_EMULATOR_HOST") or stack.enter_context(running_emulator())
            os.environ["PUBSUB_EMULATOR_HOST"] = host
            create_resources(DEFAULT_PROJECT, nodes)
            stack.enter_context(runner.worker_processes(args.root, nodes, DEFAULT_PROJECT, host))
            hub = PubSubHub(DEFAULT_PROJECT)
        _products(Coordinator(hub, config), args.product)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from workloads.federation.transport import PubSubNode
    from workloads.federation.worker import NodeWorker
    from workloads.local_node import LocalNode

    node = LocalNode(args.node, args.root)
    if args.create_topics:
        from workloads.federation.transport import create_resources

        create_resources(args.project, [args.node])
    worker = NodeWorker(
        node,
        PubSubNode(args.project, args.node),
        max_epsilon=args.max_epsilon,
        max_age_s=args.max_age,
        min_k=args.min_k,
    )
    worker.data()  # read the node's rows now: a missing warehouse fails before any round
    logging.getLogger(__name__).info("node %s: worker pulling its subscription", args.node)
    worker.serve(exit_after_run=args.exit_after_run, idle_timeout=args.idle_timeout)
    return 0


def _coordinator(args: argparse.Namespace) -> int:
    from workloads.federation.coordinator import Coordinator
    from workloads.federation.transport import PubSubHub

    nodes = _node_list(args.nodes)
    config = _config(args, nodes, "both")
    if args.create_topics:
        from workloads.federation.transport import create_resources

        create_resources(args.project, nodes)
    _products(Coordinator(PubSubHub(args.project), config), "both")
    return 0
