"""One way to start a local federation, used by `federate` and the demo.

Writes (or checks) the pinned roster and every party's signing key under `root`, then
starts the node workers: as threads on in-process queues, or as one OS process per node
against Pub/Sub (the emulator, started here unless PUBSUB_EMULATOR_HOST is set). Yields
the hub's side: its (byte-counting) endpoint, signing key and roster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from workloads.federation import roster as rosters
from workloads.federation.coordinator import Coordinator, RunConfig
from workloads.federation.defaults import LOCAL_PROJECT
from workloads.federation.identity import Signer, local_signer
from workloads.federation.transport import Counted, HubEndpoint, InProcessBus, NodeEndpoint
from workloads.federation.worker import NodeWorker
from workloads.local_node import LocalNode


@dataclass
class Hub:
    endpoint: Counted
    signer: Signer
    roster: rosters.Roster
    transport: str
    workers: list[NodeWorker] | None = None  # in-process only: for inspection in tests

    def coordinator(self, config: RunConfig) -> Coordinator:
        return Coordinator(self.endpoint, config, self.signer, self.roster)


def prepare(root: Path, nodes: list[str]) -> rosters.Roster:
    """Check each node has a warehouse, create keys, pin them in the roster."""
    for name in nodes:
        LocalNode(name, root).open_warehouse(create=False).close()  # clear error if missing
    return rosters.write_local(root, nodes)


@contextmanager
def local_federation(
    root: Path,
    nodes: list[str],
    *,
    transport: str = "inprocess",
    keep: bool = False,
    preload: bool = False,
    wrap: Callable[[str, NodeEndpoint], NodeEndpoint] | None = None,
) -> Iterator[Hub]:
    """`wrap` (in-process only) puts a node's endpoint behind another, e.g. a simulator's
    straggler whose uploads arrive late."""
    roster = prepare(root, nodes)
    signer = local_signer(root, rosters.HUB)
    with ExitStack() as stack:
        workers = None
        if transport == "inprocess":
            bus = InProcessBus(nodes)
            workers = [
                NodeWorker.local(LocalNode(n, root), wrap(n, bus.node(n)) if wrap else bus.node(n))
                for n in nodes
            ]
            if preload:
                for worker in workers:
                    worker.preload()
            stack.enter_context(_threads(workers))
            endpoint: HubEndpoint = bus.hub()
        else:
            from workloads.federation.transport import PubSubHub, create_resources

            host = os.environ.get("PUBSUB_EMULATOR_HOST")
            if not host:
                from workloads.federation.emulator import running_emulator

                host = stack.enter_context(running_emulator())
                stack.enter_context(_env("PUBSUB_EMULATOR_HOST", host))
            create_resources(LOCAL_PROJECT, nodes)
            stack.enter_context(worker_processes(root, nodes, LOCAL_PROJECT, host))
            endpoint = PubSubHub(LOCAL_PROJECT)
        yield Hub(Counted(endpoint, keep=keep), signer, roster, transport, workers)


@contextmanager
def _threads(workers: list[NodeWorker]) -> Iterator[None]:
    stop = threading.Event()
    threads = [
        threading.Thread(target=w.serve, args=(stop,), name=f"worker-{w.name}", daemon=True)
        for w in workers
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)


@contextmanager
def worker_processes(
    root: Path, nodes: list[str], project: str, emulator_host: str | None = None
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One `python -m workloads federate worker` process per node, stopped afterwards."""
    env = dict(os.environ)
    if emulator_host:
        env["PUBSUB_EMULATOR_HOST"] = emulator_host
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "workloads", "federate", "worker", "--node", node,
             "--root", str(root), "--project", project, "--exit-after-run",
             "--idle-timeout", "120"],
            env=env,
        )
        for node in nodes
    ]
    try:
        yield processes
    finally:
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.terminate()
                process.wait(timeout=10)


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old
