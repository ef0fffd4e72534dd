"""Start the node workers of a local federation: as threads (in-process transport) or as
one OS process per node talking to Pub/Sub (the emulator, or the cloud)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workloads.federation.transport import Counted, InProcessBus
from workloads.federation.worker import NodeWorker
from workloads.local_node import LocalNode


@contextmanager
def in_process(
    nodes: list[LocalNode], *, keep: bool = False, preload: bool = False
) -> Iterator[Counted]:
    """Workers as threads on in-process queues; yields the hub's (counting) endpoint.

    preload: read each node's rows before the first round (for timing the rounds alone).
    """
    bus = InProcessBus([n.name for n in nodes])
    stop = threading.Event()
    workers = [NodeWorker(node, bus.node(node.name)) for node in nodes]
    if preload:
        for worker in workers:
            worker.data()
    threads = [
        threading.Thread(target=w.serve, args=(stop,), name=f"worker-{w.name}", daemon=True)
        for w in workers
    ]
    for thread in threads:
        thread.start()
    try:
        yield Counted(bus.hub(), keep=keep)
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
            [
                sys.executable,
                "-m",
                "workloads",
                "federate",
                "worker",
                "--node",
                node,
                "--root",
                str(root),
                "--transport",
                "pubsub",
                "--project",
                project,
                "--exit-after-run",
                "--idle-timeout",
                "120",
            ],
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
