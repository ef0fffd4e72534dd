"""The images' Dockerfiles, read as data: pinned bases, non-root, the runtime set only,
entrypoints that exist in the wheel, and the worker's Confidential Space launch policy."""

from __future__ import annotations

import re
import shlex
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.workloads.federation.images import (
    FEDERATION,
    REPO,
    TASKS,
    chain,
    effective,
    entrypoint,
    labels,
    module_in_wheel,
    project_wheel,
    stages,
    wheel_names,
)
from workloads.contracts.federation_service import WorkerSettings

__all__ = ["project_wheel"]  # the session fixture, used below

# An exact patch release of an official image, optionally with its digest; never a moving
# tag such as python:3.11-slim.
PINNED_BASE = re.compile(r"^python:\d+\.\d+\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
TARGETS = {FEDERATION: ("worker", "coordinator"), TASKS: ("stage1",)}
LOG_REDIRECT = ("always", "debugonly", "never")  # Confidential Space's accepted values


@pytest.mark.parametrize("dockerfile", [FEDERATION, TASKS], ids=["federation", "tasks"])
def test_bases_are_pinned_and_every_copied_path_exists(dockerfile: Path) -> None:
    all_stages = stages(dockerfile)
    external = [s.base for s in all_stages.values() if s.base not in all_stages]
    assert external and all(PINNED_BASE.match(base) for base in external), external
    for stage in all_stages.values():
        for op, arg in stage.ops:
            if op == "COPY" and not arg.startswith("--from="):
                *sources, _ = shlex.split(arg)
                for source in sources:
                    assert (REPO / source).exists(), source
                    assert source.split("/")[0] not in ("tests", "infra", ".venv"), source
                    assert source != "requirements.txt", "the dev environment is not shipped"


@pytest.mark.parametrize(("dockerfile", "target"),
                         [(d, t) for d, targets in TARGETS.items() for t in targets])
def test_targets_run_as_non_root_with_the_runtime_set_only(dockerfile: Path, target: str) -> None:
    all_stages = stages(dockerfile)
    users = effective(all_stages, target, "USER")
    assert users and users[-1].isdigit() and int(users[-1]) >= 1000, users
    runs = effective(all_stages, target, "RUN")
    installs = [r for r in runs if "pip install" in r]
    assert any("-r /tmp/requirements-runtime.txt" in r for r in installs)
    for run in installs:
        for command in run.split("&&"):
            if "pip install" not in command:
                continue
            words = shlex.split(command)[shlex.split(command).index("install") + 1:]
            files = [w for w in words if not w.startswith("-")]
            # Only the runtime requirement file, then the project's own wheel without deps.
            assert files == ["/tmp/requirements-runtime.txt"] or (
                "--no-deps" in words and files == ["/tmp/wheels/*.whl"]), command
    copied = " ".join(effective(all_stages, target, "COPY"))
    assert "requirements-runtime.txt" in copied and "--from=wheel /wheels/" in copied


def test_the_worker_launch_policy_allows_exactly_the_worker_settings() -> None:
    all_stages = stages(FEDERATION)
    worker = labels(all_stages, "worker")
    allowed = worker["tee.launch_policy.allow_env_override"].split(",")
    assert sorted(allowed) == sorted(WorkerSettings.variables())
    assert len(allowed) == len(set(allowed))
    assert "SOVEREIGN_LOCAL_ROOT" not in allowed and "PUBSUB_EMULATOR_HOST" not in allowed
    assert worker["tee.launch_policy.log_redirect"] in LOG_REDIRECT
    # The coordinator (a Cloud Run job) carries no Confidential Space policy.
    assert not [k for k in labels(all_stages, "coordinator") if k.startswith("tee.")]
    assert [s.name for s in chain(all_stages, "coordinator")] == ["runtime", "coordinator"]


def test_entrypoints_run_modules_of_the_wheel(project_wheel: Path) -> None:
    names = wheel_names(project_wheel)
    commands = {t: entrypoint(stages(d), t) for d, targets in TARGETS.items() for t in targets}
    assert commands["worker"] == ["python", "-m", "workloads.federation.service", "worker"]
    assert commands["coordinator"] == ["python", "-m", "workloads.federation.service",
                                       "coordinator"]
    for command in commands.values():
        assert command[:2] == ["python", "-m"] and module_in_wheel(names, command[2]), command
    # The image's wheel: workloads and their data files, no Pulumi program, no tests.
    assert "workloads/contracts/message_schema.avsc" in names
    assert not [n for n in names if n.startswith(("infra/", "tests/"))]


def test_the_runtime_pins_satisfy_what_the_wheel_declares(project_wheel: Path) -> None:
    """What `pip check` proves in the image, checked here without one."""
    pins = {}
    for line in (REPO / "requirements-runtime.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    with zipfile.ZipFile(project_wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        declared = [line.split(":", 1)[1].strip() for line in
                    archive.read(metadata).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    assert declared
    for text in declared:
        requirement = Requirement(text)
        version = pins.get(canonicalize_name(requirement.name))
        assert version is not None, f"the wheel needs {requirement.name}, not in the runtime set"
        assert requirement.specifier.contains(version, prereleases=True), (text, version)
