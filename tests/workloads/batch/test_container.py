"""The task image: everything the Dockerfile copies exists; its entrypoint runs a kind."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from workloads.contracts.batch import TaskEnv
from workloads.vcf.synth import PatientGenotypes, write_synthetic_vcf

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "containers" / "tasks" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split()[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def test_every_copied_path_exists() -> None:
    copies = [shlex.split(arg) for op, arg in _instructions()
              if op == "COPY" and not arg.startswith("--from=")]  # not from a build stage
    assert copies
    for *sources, _dest in copies:
        for source in sources:
            assert (REPO / source).exists(), source


def test_debian_base_bcftools_non_root_and_task_entrypoint() -> None:
    ops = _instructions()
    assert "bookworm" in next(arg for op, arg in ops if op == "FROM")
    run = " ".join(arg for op, arg in ops if op == "RUN")
    assert "apt-get install" in run and "bcftools" in run and "tabix" in run
    assert "-r /tmp/requirements-runtime.txt" in run and "requirements.txt " not in run
    user = [arg for op, arg in ops if op == "USER"]
    assert user and user[-1] not in ("root", "0")
    entry = json.loads(next(arg for op, arg in ops if op == "ENTRYPOINT"))
    assert entry == ["python", "-m", "workloads.batch.task"]


def _task(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workloads.batch.task", *args], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120, check=False)


def test_entrypoint_help_and_a_dry_task(tmp_path: Path) -> None:
    assert _task(["--help"], {}).returncode == 0
    assert _task([], {}).returncode == 2  # no task environment: a clear error, no traceback
    counts = np.array([0, 1], dtype=np.int8)
    patients = PatientGenotypes(["US-0001", "US-0002"], counts, counts, counts)
    bucket = tmp_path / "bucket"
    write_synthetic_vcf(patients, bucket / "vcf", records=20, shards=2, progress=False)
    shards = ["vcf/synthetic-0000-of-0002.vcf.gz", "vcf/synthetic-0001-of-0002.vcf.gz"]
    env = {TaskEnv.KIND: "vcf", TaskEnv.INPUT: str(bucket), TaskEnv.STAGING: str(bucket),
           TaskEnv.ITEMS: json.dumps(shards), TaskEnv.INDEX: "1"}
    unknown = _task([], {**env, TaskEnv.KIND: "nosuchkind"})
    assert unknown.returncode == 2 and "no task kind 'nosuchkind'" in unknown.stderr
    done = _task([], env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["key"] == shards[1] and result["status"] == "staged"
    staged = bucket / "staging" / result["staged_id"] / "variants.parquet"
    assert staged.exists()
