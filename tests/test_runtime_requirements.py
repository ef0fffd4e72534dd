"""The runtime requirement set the images install (requirements-runtime.in/.txt).

- every third-party module imported anywhere under workloads/ (an AST walk, lazy imports
  included) comes from a distribution in the runtime set;
- the set is closed: every dependency of a runtime distribution (per its installed
  metadata, which requirements.txt pinned) is in it too;
- no development tool is in it (tests, linters, type checkers, stubs, Pulumi, Checkov);
- each runtime pin equals requirements.txt's pin (one version per package);
- the project's wheel declares only runtime requirements (pyproject reads
  requirements-runtime.in), so `pip check` inside an image passes.

`python tests/test_runtime_requirements.py --write` regenerates requirements-runtime.txt
from requirements-runtime.in and requirements.txt.
"""

from __future__ import annotations

import ast
import functools
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
RUNTIME_IN = REPO / "requirements-runtime.in"
RUNTIME_TXT = REPO / "requirements-runtime.txt"
DEV_TXT = REPO / "requirements.txt"
FIRST_PARTY = {"workloads", "infra", "tests", "benchmarks"}
# Development-only distributions (and name prefixes) that must never reach an image.
DEV_ONLY = {"pytest", "pytest-xdist", "hypothesis", "mypy", "ruff", "pandas-stubs", "pulumi",
            "pulumi-gcp", "pulumi-policy", "checkov", "sdv", "execnet", "iniconfig",
            "pluggy", "debugpy", "semver", "librt", "ast-serialize", "pathspec"}
DEV_PREFIXES = ("types-", "pytest-", "pulumi")
# workloads/demo.py renders the stacks' offline posture through infra/ (Pulumi's SDK): the
# demo is a development command, never run by an image.
DEV_IMPORTS = {("workloads/demo.py", "infra")}


def read_lines(path: Path) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def pins(path: Path) -> dict[str, tuple[str, str]]:
    """canonical name -> (name as written, version) of a fully pinned file."""
    result = {}
    for line in read_lines(path):
        name, _, version = line.partition("==")
        assert version, f"{path.name}: {line!r} is not pinned with =="
        key = canonicalize_name(name)
        assert key not in result, f"{path.name}: {name} pinned twice"
        result[key] = (name, version)
    return result


def closure(names: list[str]) -> set[str]:
    """Every distribution `names` need at run time (installed metadata, no extras)."""
    seen: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        seen.add(key)
        for text in distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            stack.append(requirement.name)
    return seen


def runtime_top() -> list[str]:
    return [Requirement(line).name for line in read_lines(RUNTIME_IN)]


def imported_modules() -> dict[str, set[str]]:
    """Full dotted name of every absolute import under workloads/ -> files importing it."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "workloads").rglob("*.py")):
        rel = str(path.relative_to(REPO))
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from google.cloud import bigquery` needs google-cloud-bigquery, not just
                # some package of the google.cloud namespace.
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                found.setdefault(name, set()).add(rel)
    return found


@functools.cache
def _files(dist: str) -> tuple[str, ...]:
    return tuple(str(f) for f in distribution(dist).files or [])


@functools.cache
def _top_levels() -> dict[str, list[str]]:
    return packages_distributions()


def distributions_of(module: str) -> set[str]:
    """The distributions that provide `module` (namespace packages such as google.cloud are
    shared: the longest dotted prefix some distribution's files provide decides)."""
    top = module.split(".")[0]
    candidates = _top_levels().get(top, [])
    if len(candidates) <= 1:
        return {canonicalize_name(c) for c in candidates}
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        folder = "/".join(parts[:length])
        owners = set()
        for candidate in candidates:
            if any(f.startswith(folder + "/") or f == folder + ".py" for f in _files(candidate)):
                owners.add(canonicalize_name(candidate))
        if owners and length > 1:
            return owners
    return {canonicalize_name(c) for c in candidates}


def third_party_imports() -> dict[str, set[str]]:
    stdlib = sys.stdlib_module_names
    return {m: files for m, files in imported_modules().items()
            if m.split(".")[0] not in stdlib and m.split(".")[0] not in FIRST_PARTY}


def write() -> None:
    dev = pins(DEV_TXT)
    needed = closure(runtime_top())
    lines = [
        "# Generated from requirements-runtime.in: its whole dependency closure, each at the",
        "# version requirements.txt pins (one version per package; python 3.11, linux x86_64).",
        "# Refresh after requirements.txt changes: python tests/test_runtime_requirements.py "
        "--write",
    ]
    lines += [f"{dev[k][0]}=={dev[k][1]}" for k in sorted(needed, key=lambda k: dev[k][0].lower())]
    RUNTIME_TXT.write_text("\n".join(lines) + "\n")


# --- tests -----------------------------------------------------------------------------------


def test_every_imported_third_party_module_is_in_the_runtime_set() -> None:
    runtime = set(pins(RUNTIME_TXT))
    missing = {}
    for module, files in third_party_imports().items():
        owners = distributions_of(module)
        assert owners, f"{module} (imported by {sorted(files)}) comes from no installed package"
        if not owners & runtime:
            missing[module] = (sorted(owners), sorted(files))
    assert missing == {}, f"add to requirements-runtime.in: {missing}"


def test_first_party_imports_outside_the_wheel_only_where_allowed() -> None:
    """workloads/ may import infra/ (which needs Pulumi) only in the development demo."""
    for module, files in imported_modules().items():
        top = module.split(".")[0]
        if top in FIRST_PARTY - {"workloads"}:
            assert {(f, top) for f in files} <= DEV_IMPORTS, (module, files)


def test_the_runtime_set_is_closed_and_pinned_as_in_requirements_txt() -> None:
    runtime = pins(RUNTIME_TXT)
    dev = pins(DEV_TXT)
    assert set(runtime) == closure(runtime_top()), (
        "requirements-runtime.txt is not the closure of requirements-runtime.in; fix: python "
        "tests/test_runtime_requirements.py --write")
    for key, (name, version) in runtime.items():
        assert key in dev, f"{name} is not in requirements.txt"
        assert dev[key][1] == version, f"{name}: {version} here, {dev[key][1]} in requirements.txt"
        try:
            installed = distribution(name).version
        except PackageNotFoundError:  # pragma: no cover - the dev environment has them all
            raise AssertionError(f"{name} is not installed: run scripts/setup.sh") from None
        assert installed == version, f"{name}: pinned {version}, installed {installed}"
    for line in read_lines(RUNTIME_IN):  # the .in's constraints hold for the pins
        requirement = Requirement(line)
        pinned = runtime[canonicalize_name(requirement.name)][1]
        assert requirement.specifier.contains(pinned, prereleases=True), (line, pinned)


def test_no_development_tool_is_in_the_runtime_set() -> None:
    runtime = set(pins(RUNTIME_TXT))
    dev_only = {canonicalize_name(n) for n in DEV_ONLY}
    assert runtime & dev_only == set()
    assert [k for k in runtime if k.startswith(DEV_PREFIXES)] == []


def test_the_wheel_declares_the_runtime_requirements() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    declared = pyproject["tool"]["setuptools"]["dynamic"]["dependencies"]["file"]
    assert declared == [RUNTIME_IN.name]


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_runtime_requirements.py --write")
    write()
    print(f"wrote {RUNTIME_TXT}")
