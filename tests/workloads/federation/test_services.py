"""The images' entrypoints, run as processes from the built wheel against the Pub/Sub
emulator, in local mode (docs/federation.md, 'Services').

Exercised: the Dockerfiles' ENTRYPOINT command lines, the installed wheel (PYTHONPATH = a
`pip install --no-deps --target` folder, cwd outside the repository: not the source tree),
the settings read from the environment (roster and policy as variables), Pub/Sub with the
topic schema, the signed protocol, each node's guard and ledger, the spec fit, and the
audit record. Not exercised here: KMS signing (local key files instead; KmsSigner has its
stand-in test), BigQuery (local DuckDB nodes instead; test_cloud_node.py runs the worker's
BigQuery statements in a stand-in) and GCS (a folder as the results store).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from tests.workloads.federation.conftest import Federation
from tests.workloads.federation.images import FEDERATION, entrypoint, project_wheel, stages
from workloads.federation import results, roster
from workloads.federation.report import pooled_fit
from workloads.federation.service import main
from workloads.federation.transport import create_resources

__all__ = ["project_wheel"]

SPEC = {"table": "patient_genomic_data", "outcome": "diagnosis_cancer",
        "covariates": ["age", "bmi", "variant_brca1", "variant_tp53", "variant_apoe4"]}


def _command(target: str, *args: str) -> list[str]:
    command = entrypoint(stages(FEDERATION), target)
    assert command[0] == "python"
    return [sys.executable, *command[1:], *args]  # the image's python is the test's python


@pytest.mark.emulator
@pytest.mark.slow
def test_the_images_entrypoints_run_a_signed_fit_from_the_wheel(
    pubsub_emulator: str, three_nodes: Federation, project_wheel: Path, tmp_path: Path
) -> None:
    root, nodes = three_nodes
    names = [n.name for n in nodes]
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(site), str(project_wheel)], check=True, timeout=120)
    cwd = tmp_path / "run"
    cwd.mkdir()
    project = f"svc-{uuid.uuid4().hex[:8]}"
    create_resources(project, names)
    base = {k: v for k, v in os.environ.items() if not k.startswith("SOVEREIGN_")}
    base.update(PYTHONPATH=str(site), PUBSUB_EMULATOR_HOST=pubsub_emulator,
                SOVEREIGN_LOCAL_ROOT=str(root), SOVEREIGN_HUB_PROJECT=project,
                SOVEREIGN_ROSTER=roster.path(root).read_text())
    where = subprocess.run([sys.executable, "-c", "import workloads; print(workloads.__file__)"],
                           cwd=cwd, env=base, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(site)  # the wheel runs, not the tree
    spec = cwd / "spec.json"
    spec.write_text(json.dumps(SPEC))
    logs = {}
    workers = []
    for name in names:
        logs[name] = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed below
        env = {**base, "SOVEREIGN_NODE": name, "SOVEREIGN_POLICY": "min_k = 10\n"}
        workers.append(subprocess.Popen(
            _command("worker", "--exit-after-run", "--idle-timeout", "90"),
            cwd=cwd, env=env, stdout=logs[name], stderr=subprocess.STDOUT))
    try:
        hub = subprocess.run(
            _command("coordinator", "fit", "--spec", str(spec), "--round-timeout", "60"),
            cwd=cwd, env={**base, "SOVEREIGN_RESULTS_BUCKET": str(tmp_path / "results")},
            capture_output=True, text=True, timeout=180, check=False)
        codes = [w.wait(timeout=60) for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        for log in logs.values():
            log.close()
    assert hub.returncode == 0, hub.stderr + hub.stdout
    assert codes == [0, 0, 0], {n: (tmp_path / f"{n}.log").read_text()[-2000:] for n in names}
    (record_path,) = (tmp_path / "results" / "runs").glob("*.json")
    assert f"audit record {record_path}" in hub.stdout
    record = json.loads(record_path.read_text())
    assert results.verify_record(record, roster.load(root)) == []
    assert record["status"] == "released" and record["product"] == "fit"
    assert record["analysis"]["fit"]["spec"]["covariates"] == SPEC["covariates"]
    assert record["analysis"]["fit"]["source"] == str(spec)
    assert record["participants"]["answered"] == sorted(names)
    assert record["charged"] == {n: {} for n in sorted(names)}  # exact masked sums
    senders = {(e["node"], e["kind"]) for e in record["released_from"]}
    assert senders >= {(n, k) for n in names for k in ("masked", "reveal")}
    estimates = [t["estimate"] for t in record["result"]["fit"]["terms"]]
    reference, _ = pooled_fit(nodes)
    np.testing.assert_allclose(estimates, reference, rtol=0, atol=1e-6)


def _run(argv: list[str], env: Mapping[str, str], capsys: pytest.CaptureFixture[str]
         ) -> tuple[int, str]:
    code = main(argv, env)
    return code, capsys.readouterr().err


def test_settings_errors_are_one_line_with_a_fix(
    three_nodes: Federation, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = three_nodes
    code, err = _run(["worker"], {}, capsys)
    assert code == 2 and err.startswith("error: WorkerSettings lacks SOVEREIGN_NODE, ")
    assert "fix:" in err and "Traceback" not in err
    local = {"SOVEREIGN_LOCAL_ROOT": str(root), "SOVEREIGN_NODE": "us",
             "SOVEREIGN_HUB_PROJECT": "p", "SOVEREIGN_ROSTER": roster.path(root).read_text()}
    code, err = _run(["worker"], local, capsys)  # local mode still needs the policy
    assert code == 2 and "lacks SOVEREIGN_POLICY" in err
    code, err = _run(["worker"], {**local, "SOVEREIGN_POLICY": "min_k = ["}, capsys)
    assert code == 2 and err.startswith("error: SOVEREIGN_POLICY: ") and "fix:" in err
    code, err = _run(["worker"], {**local, "SOVEREIGN_POLICY": "min_participants = 2"}, capsys)
    assert code == 2 and "min_participants >= 3" in err
    code, err = _run(["worker"], {**local, "SOVEREIGN_POLICY": "x = 1",
                                  "SOVEREIGN_ROSTER": "{}"}, capsys)
    assert code == 2 and "roster SOVEREIGN_ROSTER is not valid" in err
    code, err = _run(["coordinator", "fit"], {"SOVEREIGN_LOCAL_ROOT": str(root)}, capsys)
    assert code == 2 and "CoordinatorSettings (local mode) lacks SOVEREIGN_HUB_PROJECT" in err


@pytest.mark.emulator
@pytest.mark.slow
def test_the_local_coordinator_command_keeps_the_same_record_under_the_hub_folder(
    pubsub_emulator: str, three_nodes: Federation, capsys: pytest.CaptureFixture[str]
) -> None:
    from workloads.cli import main as cli
    from workloads.federation.local import worker_processes

    root, nodes = three_nodes
    names = [n.name for n in nodes]
    project = f"cli-{uuid.uuid4().hex[:8]}"
    create_resources(project, names)
    with worker_processes(root, names, project, pubsub_emulator) as workers:
        code = cli(["federate", "coordinator", "--root", str(root), "--project", project,
                    "--nodes", ",".join(names), "--round-timeout", "60"])
    assert code == 0 and [w.returncode for w in workers] == [0, 0, 0]
    out = capsys.readouterr().out
    records = sorted((root / "hub" / "results" / "runs").glob("*.json"))
    assert records and f"audit record {records[-1]}" in out
    record = json.loads(records[-1].read_text())
    assert record["product"] == "stats+fit" and set(record["result"]) == {"stats", "fit"}
    assert record["hub_project"] == project
    assert results.verify_record(record, roster.load(root)) == []
