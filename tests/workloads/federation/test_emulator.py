"""Finding, starting and stopping the Pub/Sub emulator."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from workloads.federation import emulator


def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workloads.federation.emulator", "--check"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_names_what_is_missing(tmp_path: Path) -> None:
    result = _check({emulator.BIN_ENV: str(tmp_path / "no-such-emulator")})
    assert result.returncode == 1
    assert "PUBSUB_EMULATOR_BIN" in result.stderr and "not an executable" in result.stderr


@pytest.mark.emulator
def test_check_passes_and_the_emulator_is_always_stopped() -> None:
    if emulator.missing():
        pytest.skip("Pub/Sub emulator not usable: " + "; ".join(emulator.missing()))
    assert _check({}).returncode == 0
    with pytest.raises(RuntimeError, match="boom"), emulator.running_emulator() as host:
        port = int(host.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # listening
        raise RuntimeError("boom")
    with socket.socket() as s:  # stopped even though the block failed
        assert s.connect_ex(("127.0.0.1", port)) != 0
