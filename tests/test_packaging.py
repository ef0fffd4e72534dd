"""The project installs as a package: every data file the code reads ships in the wheel,
the console script names a real function, and no module edits sys.path."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
CODE = ("infra", "workloads", "benchmarks", "tests")


def _files(folder: str) -> list[Path]:
    skip = {".venv", "__pycache__", ".mypy_cache", ".pytest_cache", "golden"}
    return [p for p in (REPO / folder).rglob("*") if p.is_file() and not skip & set(p.parts)]


def test_every_data_file_of_the_packages_is_package_data() -> None:
    package_data: dict[str, list[str]] = PYPROJECT["tool"]["setuptools"]["package-data"]
    missing = []
    for folder in ("infra", "workloads"):
        for path in _files(folder):
            if path.suffix in (".py", ".pyc"):
                continue
            rel = path.relative_to(REPO)
            shipped = any(
                rel.is_relative_to(Path(*package.split(".")))
                and any(fnmatch.fnmatch(str(rel.relative_to(Path(*package.split(".")))), glob)
                        for glob in globs)
                for package, globs in package_data.items()
            )
            if not shipped:
                missing.append(str(rel))
    assert missing == [], f"add to [tool.setuptools.package-data]: {missing}"


def test_the_console_script_is_the_cli() -> None:
    target = PYPROJECT["project"]["scripts"]["sovereign"]
    module, function = target.split(":")
    assert getattr(importlib.import_module(module), function) is importlib.import_module(
        "workloads.cli"
    ).main


def test_no_module_edits_sys_path() -> None:
    edits = []
    for folder in CODE:
        for path in _files(folder):
            if path.suffix != ".py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in ("insert", "append", "extend")
                    and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "path"
                    and isinstance(node.value.value, ast.Name)
                    and node.value.value.id == "sys"
                ):
                    edits.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert edits == [], "install the project instead (pip install -e .): " + ", ".join(edits)
