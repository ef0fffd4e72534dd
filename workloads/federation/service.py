"""The federation's two services, as their images run them (containers/federation/Dockerfile).

    python -m workloads.federation.service worker [--exit-after-run] [--idle-timeout S]
    python -m workloads.federation.service coordinator fit|stats [--spec FILE|gs://...]
        [--nodes a,b,c] [--k K] [--dp-epsilon E ...]

Settings come from the environment (workloads.contracts.federation_service: the stacks set
them; WorkerSettings as Confidential Space `tee-env-*` metadata, CoordinatorSettings on the
Cloud Run job). In the cloud the worker reads its node's BigQuery datasets (read-only), keeps
its guard's odometer and release log in LEDGER_DATASET and signs with its KMS key; the
coordinator signs with the hub's KMS key and writes each run's audit record to the results
bucket (results.py).

Local mode (`SOVEREIGN_LOCAL_ROOT=<folder of local nodes>`): the same entrypoints and the
same roster/policy/Pub/Sub settings, but the node is a local folder (encrypted DuckDB
warehouse and ledger), signing keys are the local key files under `<root>/.keys/`, and
SOVEREIGN_RESULTS_BUCKET may be a folder. The cloud-only settings (projects' datasets,
ledger dataset, KMS keys, region) are then not needed and not used.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from workloads.contracts.errors import UserError
from workloads.contracts.federation_service import CoordinatorSettings, WorkerSettings

log = logging.getLogger("workloads.federation.service")
LOCAL_ROOT_ENV = "SOVEREIGN_LOCAL_ROOT"
# Settings used only in the cloud (local mode replaces them by the local root's files).
CLOUD_ONLY = frozenset({
    "SOVEREIGN_NODE_PROJECT", "SOVEREIGN_REGION", "SOVEREIGN_SIGNING_KEY",
    "SOVEREIGN_DATASETS", "SOVEREIGN_LEDGER_DATASET", "SOVEREIGN_BQ_KMS_KEY",
    "SOVEREIGN_IDENTITY_PROVIDER",
})
PRODUCTS = ("fit", "stats")
S = TypeVar("S", WorkerSettings, CoordinatorSettings)


def _attested_clients(settings: WorkerSettings) -> tuple[Any, Any]:
    """BigQuery and KMS clients under the Confidential Space attested identity."""
    from google.auth import identity_pool
    from google.cloud import bigquery, kms

    from workloads.contracts.federation_service import attested_credentials_info

    info = attested_credentials_info(settings.identity_provider)
    credentials = identity_pool.Credentials.from_info(info).with_scopes(  # type: ignore[no-untyped-call]
        ["https://www.googleapis.com/auth/cloud-platform"]
    )
    return (
        bigquery.Client(project=settings.node_project, location=settings.region,
                        credentials=credentials),
        kms.KeyManagementServiceClient(credentials=credentials),
    )


def settings_from(cls: type[S], env: Mapping[str, str], local: bool) -> S:
    """The service's settings; in local mode without the cloud-only ones."""
    if not local:
        return cls.from_environment(env)
    needed = [v for v in cls.variables() if v not in CLOUD_ONLY]
    missing = [v for v in needed if not env.get(v)]
    if missing:
        raise UserError(f"{cls.__name__} (local mode) lacks {', '.join(missing)}; fix: set "
                        f"them (see docs/federation.md, 'Services')")
    return cls(**{f.name: env.get(f.metadata["env"], "") for f in fields(cls)})


def _roster(text: str) -> Any:
    from workloads.federation.roster import Roster

    return Roster.from_json(text, "SOVEREIGN_ROSTER")


# --- worker ----------------------------------------------------------------------------------


def worker(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from workloads.federation import privacy
    from workloads.federation.guard import parse_policy
    from workloads.federation.transport import PubSubNode
    from workloads.federation.worker import NodeWorker

    root = env.get(LOCAL_ROOT_ENV)
    settings = settings_from(WorkerSettings, env, local=bool(root))
    roster = _roster(settings.roster)
    policy = parse_policy(settings.policy, "SOVEREIGN_POLICY")
    node: Any
    if root:
        from workloads.federation.identity import local_signer
        from workloads.local_node import LocalNode

        node = LocalNode(settings.node, Path(root))
        signer: Any = local_signer(Path(root), settings.node, create=False)
    else:
        from workloads.federation.identity import KmsSigner
        from workloads.federation.node_handle import CloudNode

        # The node's data and signing key are granted to the attested image only (its
        # workload identity pool's principalSet, infra/federation_worker.py), not to the VM's
        # account: BigQuery and KMS go through the attested credentials; Pub/Sub keeps ADC.
        bigquery_client, kms_client = _attested_clients(settings)
        node = CloudNode(settings.node, settings.node_project, settings.region,
                         settings.dataset_ids(), settings.ledger_dataset,
                         settings.bigquery_kms_key, client=bigquery_client)
        signer = KmsSigner(settings.signing_key, client=kms_client)
    served = NodeWorker(node, PubSubNode(settings.hub_project, settings.node), signer, roster,
                        policy)
    privacy.warm_up()
    log.info("node %s: worker pulling its subscription in %s (%s)", settings.node,
             settings.hub_project, "local node" if root else "BigQuery")
    served.serve(exit_after_run=args.exit_after_run, idle_timeout=args.idle_timeout)
    return 0


# --- coordinator -----------------------------------------------------------------------------


@contextlib.contextmanager
def _spec_file(location: str) -> Iterator[Path]:
    """A spec named by a path, or by gs://bucket/key (read through the object store)."""
    if not location.startswith("gs://"):
        yield Path(location)
        return
    from workloads.objectstore.base import open_store

    parent, _, name = location.rpartition("/")
    if not name or parent == "gs:/":
        raise UserError(f"--spec {location}: names no object; fix: gs://bucket/path/spec.json")
    data = open_store(parent).read_bytes(name)
    with tempfile.TemporaryDirectory(prefix="spec-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        yield path


def run_products(coordinator: Any, products: Sequence[str], spec: str | None,
                 analysis: dict[str, Any], result: dict[str, Any]) -> None:
    """Run each product on one coordinator, printing what it publishes and filling
    `analysis` (what was asked) and `result` (what was published) as each one ends."""
    from workloads.federation import report

    for product in products:
        if product == "fit" and spec:
            from workloads.analysis.cli import print_fit
            from workloads.analysis.spec import load_spec
            from workloads.federation.analysis_hub import fit_spec

            with _spec_file(spec) as path:
                analysis_spec = load_spec(path)
            coordinator.config.max_rounds = max(coordinator.config.max_rounds,
                                                analysis_spec.max_iter)
            analysis["fit"] = {"spec": analysis_spec.to_dict(), "source": spec}
            fitted = fit_spec(coordinator, analysis_spec)
            print_fit(fitted)
            result["fit"] = fitted.to_dict()
        elif product == "fit":
            analysis["fit"] = {"model": "default cancer-risk logistic regression "
                                        "(algorithms.GLMParams)"}
            model = coordinator.fit()
            print(report.fit_table(model))
            result["fit"] = {
                "terms": list(model.names),
                "coefficients": [float(v) for v in model.coefficients],
                "standard_errors": [float(v) for v in model.standard_errors],
                "rounds": model.rounds, "converged": model.converged, "loglik": model.loglik,
                "auc": model.auc, "auc_refused": model.auc_refused,
                "epsilon_requested_spent": model.epsilon,
                "participants": list(model.participants),
            }
        elif product == "stats" and spec:
            import argparse as _argparse

            from workloads.analysis import statistics
            from workloads.federation.analysis_hub import stats_spec

            with _spec_file(spec) as path:
                stats = statistics.spec_from_args(_argparse.Namespace(spec=path, crosstab=None))
            analysis["stats"] = {"spec": stats.to_dict(), "source": spec}
            published, shown = stats_spec(coordinator, stats)
            for i, cell in enumerate(published.plan.cells):
                value = f"{published.combined[i]:,.6g}" if shown[i] else "*"
                print(f"  [{cell.group}] {cell.statistic}: {value}")
            result["stats"] = published.to_dict()
        elif product == "stats":
            analysis["stats"] = {"statistics": "default genomics table (algorithms.StatsParams)"}
            rows = coordinator.statistics()
            print(report.stats_table(rows, coordinator.config.k))
            result["stats"] = [{"label": r.label, "combined": r.values["combined"]}
                               for r in rows]
        else:
            raise UserError(f"product {product!r}; fix: one of {', '.join(PRODUCTS)}")


def run_and_record(coordinator: Any, products: Sequence[str], spec: str | None,
                   store: Any, *, hub_project: str = "") -> str:
    """Run, finish (or stop), and write the run's audit record; the record's URI.

    A run that stops after the hub read something is recorded too (status "stopped"), then
    the stop is raised: every value the hub has read is in the audit trail.
    """
    from workloads.federation import results
    from workloads.federation.coordinator import FederationStoppedError

    started = _now()
    status, reason = "released", ""
    analysis: dict[str, Any] = {}
    result: dict[str, Any] = {}  # products published before a stop are kept
    try:
        run_products(coordinator, products, spec, analysis, result)
        coordinator.finish()
    except FederationStoppedError as exc:
        status, reason = "stopped", str(exc)
        if not coordinator.released_from:
            raise
    record = results.build(coordinator, product="+".join(products), analysis=analysis,
                           result=result, started_at=started, finished_at=_now(),
                           status=status, reason=reason, hub_project=hub_project)
    uri = results.write(store, results.seal(record, coordinator.signer))
    print(f"run {coordinator.config.run_id}: audit record {uri}")
    if status == "stopped":
        raise UserError(f"{reason} (the values read before the stop are recorded in {uri})")
    return uri


def results_store(location: str, local: bool) -> Any:
    from workloads.objectstore.base import open_store

    if local or location.startswith("gs://"):
        return open_store(location)
    return open_store(f"gs://{location}")  # the stack gives the bucket's name


def coordinator(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from workloads.cli.federate import node_list, run_config
    from workloads.federation.coordinator import Coordinator
    from workloads.federation.roster import HUB
    from workloads.federation.transport import PubSubHub

    root = env.get(LOCAL_ROOT_ENV)
    settings = settings_from(CoordinatorSettings, env, local=bool(root))
    roster = _roster(settings.roster)
    if root:
        from workloads.federation.identity import local_signer

        signer: Any = local_signer(Path(root), HUB, create=False)
    else:
        from workloads.federation.identity import KmsSigner

        signer = KmsSigner(settings.signing_key)
    nodes = node_list(args.nodes) if args.nodes else list(roster.nodes)
    config = run_config(args, nodes, args.product)
    store = results_store(settings.results_bucket, local=bool(root))
    hub = Coordinator(PubSubHub(settings.hub_project), config, signer, roster)
    run_and_record(hub, [args.product], args.spec, store, hub_project=settings.hub_project)
    return 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from workloads.cli.federate import model_options

    parser = argparse.ArgumentParser(
        prog="python -m workloads.federation.service",
        description="The federation's services as their images run them; settings from the "
        "environment (docs/federation.md, 'Services').")
    services = parser.add_subparsers(dest="service", required=True, metavar="SERVICE")
    serve = services.add_parser("worker", help="a node's worker (WorkerSettings)")
    serve.add_argument("--exit-after-run", action="store_true", help="stop when a run ends")
    serve.add_argument("--idle-timeout", type=float, default=None,
                       help="stop after this many seconds without messages")
    serve.set_defaults(func=worker)
    hub = services.add_parser("coordinator", help="the hub's coordinator: one run of one "
                              "product (CoordinatorSettings)")
    hub.add_argument("product", choices=PRODUCTS)
    hub.add_argument("--spec", default=None, metavar="FILE|gs://...",
                     help="an analysis spec (fit) or statistics spec (stats), JSON or YAML")
    hub.add_argument("--nodes", default=None,
                     help="comma-separated node names (default: every node in the roster)")
    model_options(hub)
    hub.set_defaults(func=coordinator)
    return parser


class _Terminated(BaseException):
    """SIGTERM (Cloud Run and Confidential Space stop containers with it): unwind cleanly."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.monotonic()
    try:
        code: int = args.func(args, os.environ if env is None else env)
        return code
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except _Terminated:
        print(f"error: terminated after {time.monotonic() - started:.0f} s; fix: run the "
              f"service again (a node's ledger keeps every release it admitted)",
              file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
