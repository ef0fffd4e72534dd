"""Task kinds: one registry; the job builder, the dynamic resource, the entrypoint and the
local runner carry a kind's name and know nothing of what any kind does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from workloads.batch import registry
from workloads.batch.registry import TaskKind, register_task_kind, task_kind, task_kinds
from workloads.contracts.batch import TaskContext
from workloads.contracts.errors import UserError

REPO = Path(__file__).resolve().parents[3]
GENERIC = ["workloads/batch/job.py", "workloads/batch/local.py", "workloads/batch/task.py",
           "workloads/batch/registry.py", "workloads/contracts/batch.py", "infra/batch_job.py"]


def _code_strings_and_names(path: Path) -> list[str]:
    """Every identifier and string constant of the code, docstrings and comments aside."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                found.append(node.value)
        elif isinstance(node, ast.Name):
            found.append(node.id)
        elif isinstance(node, ast.Attribute):
            found.append(node.attr)
        elif isinstance(node, ast.alias):
            found.append(node.name)
    return found


@pytest.mark.parametrize("module", GENERIC)
def test_the_generic_parts_know_no_kind(module: str) -> None:
    mentions = [s for s in _code_strings_and_names(REPO / module) if "vcf" in s.lower()]
    # The registry names each kind's module once, so the entrypoint can import it.
    allowed = list(registry.TASK_MODULES) if module.endswith("registry.py") else []
    assert [m for m in mentions if m not in allowed] == []


def test_vcf_registers_itself() -> None:
    kinds = task_kinds()
    assert "vcf" in kinds and kinds["vcf"].run.__module__ == "workloads.vcf.task"


def test_unknown_kinds_and_bad_names_fail_clearly() -> None:
    with pytest.raises(UserError, match=r"no task kind 'nope'; fix: use one of .*vcf"):
        task_kind("nope")
    with pytest.raises(ValueError, match="lowercase letters"):
        register_task_kind(TaskKind("Bad Name", run=task_kind("vcf").run))


def test_a_kind_registers_with_one_call_and_runs_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))

    class Done:
        status = "staged"

        def __init__(self, item: str) -> None:
            self.item = item

        def to_json(self) -> str:
            return self.item

    def echo(context: TaskContext) -> Done:
        return Done(context.item)

    register_task_kind(TaskKind("echo", run=echo))
    context = TaskContext(kind="echo", items=("a", "b"), index=1, input_location="/in",
                          staging_location="/st")
    assert registry.run_task(context).to_json() == "b"
    with pytest.raises(ValueError, match="registered twice"):
        register_task_kind(TaskKind("echo", run=lambda c: Done("x")))
