"""Dockerfiles read as data (no Docker engine here), and the project's wheel built the way
their `wheel` stage builds it (the same sources, the same pinned build backend)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FEDERATION = REPO / "containers" / "federation" / "Dockerfile"
TASKS = REPO / "containers" / "tasks" / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    ops: list[tuple[str, str]] = field(default_factory=list)


def stages(path: Path) -> dict[str, Stage]:
    """Stages by name (an unnamed stage is "stage<i>"), each with its instructions."""
    text = path.read_text().replace("\\\n", " ")
    result: dict[str, Stage] = {}
    current: Stage | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, arg = line.partition(" ")
        op, arg = op.upper(), arg.strip()
        if op == "FROM":
            words = arg.split()
            named = len(words) > 2 and words[1].upper() == "AS"
            name = words[2] if named else f"stage{len(result)}"
            current = Stage(name, words[0])
            result[name] = current
        else:
            assert current is not None, f"{path}: {op} before FROM"
            current.ops.append((op, arg))
    return result


def chain(all_stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, root first."""
    stage = all_stages[name]
    parents = chain(all_stages, stage.base) if stage.base in all_stages else []
    return [*parents, stage]


def effective(all_stages: dict[str, Stage], name: str, op: str) -> list[str]:
    return [arg for stage in chain(all_stages, name) for o, arg in stage.ops if o == op]


def entrypoint(all_stages: dict[str, Stage], name: str) -> list[str]:
    entries = effective(all_stages, name, "ENTRYPOINT")
    assert entries, f"target {name} has no ENTRYPOINT"
    command: list[str] = json.loads(entries[-1])  # exec form only
    return command


def labels(all_stages: dict[str, Stage], name: str) -> dict[str, str]:
    result = {}
    for arg in effective(all_stages, name, "LABEL"):
        for pair in shlex.split(arg):
            key, _, value = pair.partition("=")
            result[key] = value
    return result


def wheel_sources(path: Path) -> list[str]:
    """What the Dockerfile's `wheel` stage copies from the repository."""
    sources = []
    for op, arg in stages(path)["wheel"].ops:
        if op == "COPY" and not arg.startswith("--from="):
            sources += shlex.split(arg)[:-1]
    return sources


def build_backend_pin(path: Path) -> str:
    run = " ".join(arg for op, arg in stages(path)["wheel"].ops if op == "RUN")
    match = re.search(r"setuptools==[0-9.]+", run)
    assert match, "the wheel stage pins no build backend"
    return match.group(0)


def build_wheel(dest: Path, dockerfile: Path = FEDERATION) -> Path:
    """The project's wheel from exactly what the wheel stage copies, outside the source
    tree (setuptools writes build/ and *.egg-info beside its input)."""
    src = dest / "src"
    for source in wheel_sources(dockerfile):
        origin = REPO / source
        target = src / source
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    constraints = dest / "build-constraints.txt"
    constraints.write_text(build_backend_pin(dockerfile) + "\n")
    out = dest / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(src)],
        check=True, timeout=300, env={**os.environ, "PIP_CONSTRAINT": str(constraints)},
    )
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def module_in_wheel(names: set[str], module: str) -> bool:
    base = module.replace(".", "/")
    return f"{base}.py" in names or f"{base}/__main__.py" in names
