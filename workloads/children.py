"""Worker processes that die with the command that started them.

A pool's workers are separate processes: if the command is killed (SIGTERM, SIGKILL,
a closed terminal), nothing stops them by itself and they run on or hang. Each worker
asks the kernel to send it SIGKILL when its parent dies (Linux PR_SET_PDEATHSIG), and
a pool left by an exception (Ctrl-C, SIGTERM turned into an exception by the CLI)
terminates its workers instead of waiting for them.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:
    """Pool initializer: SIGKILL this process when its parent exits (Linux only)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent may have died before prctl took effect.
    if parent is not None and os.getppid() != parent:
        os._exit(1)
    # Ctrl-C reaches the whole process group: the parent alone decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):  # the process is gone
        for task in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"{task.path}/children") as listing:
                found += [int(c) for c in listing.read().split()]  # (a thread may end)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a worker and everything it started, its children first. The worker is
    stopped meanwhile so it starts nothing new; a grandchild still starting up (a spawn
    child reading its set-up from the worker) would otherwise find its parent gone and
    print a traceback over the command's own message."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGSTOP)
    for child in _children(pid):
        kill_tree(child)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def child_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A spawn-context process pool whose workers never outlive this process."""
    spawn = multiprocessing.get_context("spawn")  # no inherited DuckDB/htslib state
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=spawn,
                               initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):
            if process.pid is not None:
                kill_tree(process.pid)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
