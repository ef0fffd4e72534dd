"""The import rule, enforced: infra/ imports nothing of workloads/ but workloads.contracts,
and workloads/contracts/ imports nothing of workloads/ outside itself.

Every import statement counts, at module level or inside a function (a lazy import is
still a dependency: the Pulumi program or its provider process would need it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = "workloads.contracts"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in `source` (of module `module`)."""
    package = module.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = package[: len(package) - node.level]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            yield node.lineno, name
            for alias in node.names:  # `from workloads import batch` imports workloads.batch
                yield node.lineno, f"{name}.{alias.name}"


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(path: Path, source: str | None = None) -> list[str]:
    module = _module_name(path)
    text = path.read_text() if source is None else source
    found = []
    for line, name in imported_modules(text, module):
        if not _within(name, "workloads"):
            continue
        if name == "workloads" and _within(module, CONTRACTS):
            continue  # `from workloads import contracts`-style parent imports resolve here
        if not _within(name, CONTRACTS) and name != "workloads":
            found.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    return found


def _sources(folder: str) -> list[Path]:
    return sorted(p for p in (REPO / folder).rglob("*.py") if ".venv" not in p.parts)


@pytest.mark.parametrize("folder", ["infra", "workloads/contracts"])
def test_only_the_contracts_cross_the_line(folder: str) -> None:
    sources = _sources(folder)
    assert len(sources) > 3
    problems = [v for path in sources for v in violations(path)]
    assert problems == [], "\n".join(problems)


def test_the_rule_catches_every_spelling_of_a_forbidden_import() -> None:
    node = REPO / "infra" / "node.py"
    contract = REPO / "workloads" / "contracts" / "batch.py"
    for bad in (
        "import workloads.batch.job",
        "from workloads.batch import job",
        "from workloads import batch",
        "def f():\n    from workloads.vcf.pipeline import process_shard\n",
    ):
        assert violations(node, bad), bad
        assert violations(contract, bad), bad
    assert violations(contract, "from ..batch import job")  # relative, out of contracts
    for good in ("from workloads.contracts.batch import TaskEnv", "import pulumi",
                 "from workloads.contracts import schema"):
        assert violations(node, good) == [], good
    assert violations(contract, "from .schema import Table") == []
