"""Run the Pulumi program offline under mocks and capture every resource it declares.

`capture_stack("us")` reads `Pulumi.yaml` and `Pulumi.us.yaml`, applies optional overrides,
runs infra/program.py with Pulumi's mock monitor and returns each declared resource (the
stack, components and custom resources) with its inputs exactly as a CrossGuard policy
pack sees them (camelCase keys) and its effective `protect` option. The render command,
the unit tests and the policy tests all read the infrastructure through this one function.

It can run many times in one process: each call installs fresh mocks, a fresh root stack
and fresh config before running the program.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml  # type: ignore[import-untyped]
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra import mock_outputs
from workloads.contracts.errors import UserError


def project_dir(start: Path | None = None) -> Path:
    """The Pulumi project (the folder holding Pulumi.yaml and the stack files).

    From a source tree or an editable install, the tree this package lives in; from an
    installed copy (which ships no stack files), the nearest folder holding Pulumi.yaml from
    the working directory up, as the pulumi CLI finds it.
    """
    tree = Path(__file__).resolve().parents[1]
    if (tree / "Pulumi.yaml").is_file():
        return tree
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "Pulumi.yaml").is_file():
            return folder
    return here  # project_name() then says that Pulumi.yaml is missing and what to do


REPO_ROOT = project_dir()


@dataclass(frozen=True)
class CapturedResource:
    type: str
    name: str
    urn: str
    parent: str | None  # the parent's URN; None only for the root stack
    inputs: dict[str, Any]  # camelCase keys, as Mocks.new_resource and policy packs see them
    protect: bool  # the effective option, inherited from the parent when not set
    # Deployment order and options a real `up` depends on (the B2-B7 tests read them):
    dependencies: tuple[str, ...] = ()  # URNs this resource waits for (explicit + inputs)
    provider: str | None = None  # "urn::id" of an explicit provider, None for the default
    delete_before_replace: bool = False


class StackFileError(UserError):
    """Pulumi.yaml or Pulumi.<stack>.yaml is missing or unreadable."""


class _Mocks(pulumi.runtime.Mocks):
    """Gives every resource the computed outputs the real provider would (ids, emails...)."""

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[Any, Any]]:
        return mock_outputs.for_resource(args.typ, args.name, dict(args.inputs))

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        # The program reads every fact from config; only the documented service-agent reads
        # are answered (from the project number in config), any other invoke is an error.
        result = mock_outputs.for_invoke(args.token, dict(args.args))
        if result is None:
            raise NotImplementedError(f"the program must not call {args.token} (no cloud offline)")
        return result, []


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also recording each registration with its parent and protect flag."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.captured: list[CapturedResource] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        inputs = rpc.deserialize_properties(request.object) if request.object else {}
        self.captured.append(
            CapturedResource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent or None,
                inputs=_plain(inputs),
                protect=bool(request.protect),
                dependencies=tuple(
                    sorted(
                        {*request.dependencies}
                        | {u for deps in request.propertyDependencies.values() for u in deps.urns}
                    )
                ),
                provider=request.provider or None,
                delete_before_replace=bool(request.deleteBeforeReplace),
            )
        )
        return response


def _plain(value: Any) -> Any:
    """Deserialised properties as plain JSON-like values (dicts, lists, scalars)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def project_name(stack_dir: Path) -> str:
    path = stack_dir / "Pulumi.yaml"
    if not path.is_file():
        raise StackFileError(
            f"{path} not found; fix: run from the Pulumi project (the folder holding "
            f"Pulumi.yaml and Pulumi.<stack>.yaml) or a folder below it"
        )
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise StackFileError(f"{path}: no project `name:`")
    return str(data["name"])


def stack_config(
    stack: str, overrides: Mapping[str, Any] | None = None, *, stack_dir: Path = REPO_ROOT
) -> tuple[str, dict[str, Any]]:
    """(project, config) of a stack file with overrides applied; keys fully namespaced.

    Override keys may be bare (`region`) or namespaced (`gcp:project`); a value of None
    removes the key, as `pulumi config rm` would.
    """
    project = project_name(stack_dir)
    path = stack_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name.split(".")[1] for p in stack_dir.glob("Pulumi.*.yaml"))
        raise StackFileError(
            f"{path} not found: a stack needs its Pulumi.<stack>.yaml; fix: use one of "
            f"{', '.join(known) or 'none'} or write Pulumi.{stack}.yaml"
        )
    data = yaml.safe_load(path.read_text()) or {}
    values: dict[str, Any] = dict(data.get("config") or {})
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{project}:{key}"
        if value is None:
            values.pop(full, None)
        else:
            values[full] = value
    return project, values


def _as_runtime_value(value: Any) -> str:
    """Config the way the Pulumi engine hands it to a program: strings, structures as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


def _project_numbers(project: str, values: Mapping[str, Any]) -> dict[str, str]:
    """project id -> number for every project the stack file names (for service agents)."""

    def get(key: str) -> Any:
        return values.get(f"{project}:{key}")

    numbers = {str(get("project")): str(get("projectNumber"))}
    if get("hubProject"):
        numbers[str(get("hubProject"))] = str(get("hubProjectNumber"))
    key_project = get("keyProject")
    if isinstance(key_project, Mapping):
        numbers[str(key_project.get("project"))] = str(key_project.get("number"))
    return numbers


class _FileConfig:
    """A stack file's config read the way pulumi.Config reads it (for infra.config.load)."""

    def __init__(self, project: str, values: Mapping[str, Any]) -> None:
        self._project = project
        self._values = values

    def get(self, key: str) -> str | None:
        value = self._values.get(f"{self._project}:{key}")
        return None if value is None else _as_runtime_value(value)


def _referenced_outputs(
    project: str, values: Mapping[str, Any], stack_dir: Path
) -> dict[str, dict[str, Any]]:
    """The hub outputs a node reads (StackReference), computed from the hub's own stack file
    the way the hub program computes them from config: offline, no state backend needed."""
    from infra import config as infra_config
    from infra.hub import referenced_outputs

    if values.get(f"{project}:role") != "node":
        return {}
    name = str(values.get(f"{project}:hubStack") or infra_config.DEFAULT_HUB_STACK)
    hub_stack = name.rsplit("/", 1)[-1]
    if not (stack_dir / f"Pulumi.{hub_stack}.yaml").is_file():
        return {}
    _, hub_values = stack_config(hub_stack, stack_dir=stack_dir)
    hub = infra_config.load(_FileConfig(project, hub_values), hub_stack)  # type: ignore[arg-type]
    if not isinstance(hub, infra_config.HubConfig):
        return {}
    return {name: referenced_outputs(hub)}


@dataclass(frozen=True)
class CapturedStack:
    resources: list[CapturedResource]  # sorted by URN
    outputs: dict[str, Any]  # what `pulumi stack output --json` would print


def capture_stack(
    stack: str,
    config: Mapping[str, Any] | None = None,
    *,
    stack_dir: Path = REPO_ROOT,
    program: Callable[[], None] | None = None,
    references: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[CapturedResource]:
    """Every resource the program declares for the stack, sorted by URN."""
    return capture(
        stack, config, stack_dir=stack_dir, program=program, references=references
    ).resources


def capture(
    stack: str,
    config: Mapping[str, Any] | None = None,
    *,
    stack_dir: Path = REPO_ROOT,
    program: Callable[[], None] | None = None,
    references: Mapping[str, Mapping[str, Any]] | None = None,
) -> CapturedStack:
    """Every resource the program declares for the stack and its exported outputs.

    `references`: outputs of stacks the program reads with pulumi.StackReference, by fully
    qualified name, replacing what the referenced stack's own file gives."""
    project, values = stack_config(stack, config, stack_dir=stack_dir)
    secret_keys = [k for k, v in values.items() if isinstance(v, Mapping) and set(v) == {"secure"}]
    runtime_config = {
        k: ("[secret]" if k in secret_keys else _as_runtime_value(v)) for k, v in values.items()
    }
    if program is None:
        from infra.program import main

        program = main

    mock_outputs.PROJECT_NUMBERS.clear()
    mock_outputs.PROJECT_NUMBERS.update(_project_numbers(project, values))
    mock_outputs.STACK_OUTPUTS.clear()
    mock_outputs.STACK_OUTPUTS.update(_referenced_outputs(project, values, stack_dir))
    mock_outputs.STACK_OUTPUTS.update({k: dict(v) for k, v in (references or {}).items()})
    # Fresh runtime state: no root stack, no pending outputs, this stack's config.
    settings.ROOT.set(None)
    settings.SETTINGS.outputs.clear()
    set_all_config(runtime_config, secret_keys)
    monitor = _RecordingMonitor(_Mocks())
    pulumi.runtime.set_mocks(_Mocks(), project=project, stack=stack, preview=False, monitor=monitor)
    outputs: dict[str, Any] = {}
    declare: Callable[[], None] = program

    def run() -> None:
        declare()
        # The root stack's exports, resolved the way the engine would store them.
        exported = getattr(settings.get_root_resource(), "outputs", {})
        pulumi.Output.from_input(exported).apply(lambda values: outputs.update(_plain(values)))

    try:
        _sync_await(run_pulumi_func(run))
    finally:
        settings.ROOT.set(None)
        set_all_config({}, [])
    return CapturedStack(sorted(monitor.captured, key=lambda r: r.urn), outputs)
