"""The Pub/Sub emulator from the gcloud SDK: find it, start it on a free local port, stop it.

`python -m workloads.federation.emulator --check` exits 0 when the emulator and Java are
usable, else prints what is missing and exits 1 (scripts/setup.sh relies on exactly this).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workloads.contracts.errors import UserError

BIN_ENV = "PUBSUB_EMULATOR_BIN"
_RELATIVE_BIN = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
_COMMON_SDK_ROOTS = (
    Path("/usr/lib/google-cloud-sdk"),
    Path("/usr/share/google-cloud-sdk"),
    Path("/opt/google-cloud-sdk"),
    Path.home() / "google-cloud-sdk",
)
READY_TIMEOUT_S = 30.0


def find_emulator() -> tuple[Path | None, list[str]]:
    """The emulator's launcher, or None and the reasons it was not found."""
    problems: list[str] = []
    from_env = os.environ.get(BIN_ENV)
    if from_env:
        path = Path(from_env)
        if path.is_file() and os.access(path, os.X_OK):
            return path, []
        return None, [f"{BIN_ENV}={from_env} is not an executable file"]
    roots = list(_COMMON_SDK_ROOTS)
    gcloud = shutil.which("gcloud")
    if gcloud:
        # The SDK root is the parent of bin/ (gcloud may be a symlink into it).
        roots.insert(0, Path(gcloud).resolve().parent.parent)
    for root in roots:
        candidate = root / _RELATIVE_BIN
        if candidate.is_file():
            return candidate, []
    problems.append(
        "cloud-pubsub-emulator not found under "
        + ", ".join(str(r) for r in roots)
        + f" (set {BIN_ENV}, or install the gcloud SDK's pubsub-emulator component)"
    )
    return None, problems


def missing() -> list[str]:
    """What stops the emulator from running here (empty when it can run)."""
    _, problems = find_emulator()
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        problems.append("java not found (apt-get install openjdk-17-jre-headless)")
    return problems


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def running_emulator(project: str = "sovereign-local") -> Iterator[str]:
    """Start the emulator on 127.0.0.1 (free port, throwaway data dir); yield "host:port".

    The emulator is always stopped afterwards (its whole process group: the launcher
    script starts a Java child).
    """
    binary, _problems = find_emulator()
    if binary is None or missing():
        raise UserError("Pub/Sub emulator not usable: " + "; ".join(missing()))
    for _attempt in range(3):  # another process may grab the free port first
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="pubsub-emulator-") as data_dir:
            log = open(Path(data_dir) / "emulator.log", "wb")  # noqa: SIM115 - closed below
            proc = subprocess.Popen(
                [str(binary), "--host=127.0.0.1", f"--port={port}", f"--data_dir={data_dir}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "CLOUDSDK_CORE_PROJECT": project},
            )
            try:
                deadline = time.monotonic() + READY_TIMEOUT_S
                while proc.poll() is None and not _listening(port):
                    if time.monotonic() > deadline:
                        raise UserError(
                            f"Pub/Sub emulator did not listen on port {port} within "
                            f"{READY_TIMEOUT_S:.0f} s; fix: check Java and {binary}"
                        )
                    time.sleep(0.1)
                if proc.poll() is not None:
                    continue  # exited (port taken?): try another port
                yield f"127.0.0.1:{port}"
                return
            finally:
                _stop(proc)
                log.close()
    raise UserError(f"Pub/Sub emulator {binary} exited at start three times; fix: run it by hand")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads.federation.emulator")
    parser.add_argument("--check", action="store_true", help="exit 0 if the emulator can run")
    args = parser.parse_args(argv)
    problems = missing()
    if problems:
        for problem in problems:
            print(f"pubsub emulator: {problem}", file=sys.stderr)
        return 1
    if args.check:
        binary, _ = find_emulator()
        print(f"pubsub emulator: {binary}")
        return 0
    # Stop cleanly (and so stop the Java process too) on Ctrl-C or kill, even when started
    # in the background, where shells make SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with running_emulator() as host:
        print(f"PUBSUB_EMULATOR_HOST={host} (Ctrl-C stops it)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
