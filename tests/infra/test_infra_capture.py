"""capture_stack: the one way tests, the renderer and the policy pack read the program."""

from __future__ import annotations

import pytest

from infra.capture import CapturedResource, StackFileError, capture_stack
from infra.config import ConfigError


def test_captures_components_and_resources_with_parents(
    captured: dict[str, list[CapturedResource]],
) -> None:
    resources = captured["us"]
    by_urn = {r.urn: r for r in resources}
    types = {r.type for r in resources}
    assert "pulumi:pulumi:Stack" in types
    assert "sovereign:common:Keys" in types
    assert "gcp:kms/cryptoKey:CryptoKey" in types
    roots = [r for r in resources if r.parent is None]
    assert [r.type for r in roots] == ["pulumi:pulumi:Stack"]
    for r in resources:
        assert r.parent is None or r.parent in by_urn, f"{r.urn} has an unknown parent"
    keys = [r for r in resources if r.type == "gcp:kms/cryptoKey:CryptoKey"]
    assert all(by_urn[k.parent].type == "sovereign:common:Keys" for k in keys if k.parent)


def test_inputs_are_camel_case_and_protect_is_captured(
    captured: dict[str, list[CapturedResource]],
) -> None:
    resources = captured["us"]
    key = next(r for r in resources if r.type == "gcp:kms/cryptoKey:CryptoKey")
    assert key.inputs["rotationPeriod"] == "7776000s"
    assert key.protect is True
    service = next(r for r in resources if r.type == "gcp:projects/service:Service")
    assert service.protect is False


def test_repeated_captures_in_one_process_are_identical_and_isolated(
    captured: dict[str, list[CapturedResource]],
) -> None:
    first = captured["us"]
    eu = capture_stack("eu")
    again = capture_stack("us")
    assert first == again
    assert all(":us::" in r.urn for r in first)
    assert all(":eu::" in r.urn for r in eu)
    assert {r.inputs.get("location") for r in eu} - {None} == {"europe-west2"}


def test_overrides_apply_and_none_removes_a_key() -> None:
    moved = capture_stack(
        "us", {"region": "us-east4", "allowedLocations": ["in:us-east4-locations"]}
    )
    assert {r.inputs.get("location") for r in moved} - {None} == {"us-east4"}
    with pytest.raises(ConfigError, match="sovereign-genomics:project is missing"):
        capture_stack("us", {"project": None})


def test_unknown_stack_file_is_a_clear_error() -> None:
    with pytest.raises(StackFileError, match=r"Pulumi\.nowhere\.yaml not found"):
        capture_stack("nowhere")


def test_a_failed_capture_leaves_the_next_one_working() -> None:
    with pytest.raises(ConfigError):
        capture_stack("us", {"perimeterMode": "sideways"})
    assert capture_stack("us") == capture_stack("us", {"perimeterMode": "enforced"})


def test_the_pulumi_entry_point_runs_the_same_program(
    captured: dict[str, list[CapturedResource]],
) -> None:
    # `pulumi up` runs the `main: infra/` folder as a script; do the same under mocks.
    import runpy

    from infra.capture import REPO_ROOT

    def entry_point() -> None:
        runpy.run_path(str(REPO_ROOT / "infra"))

    via_entry = capture_stack("us", program=entry_point)

    assert via_entry == captured["us"]


def test_a_program_failing_midway_leaves_the_next_capture_clean(
    captured: dict[str, list[CapturedResource]],
) -> None:
    import pulumi_gcp as gcp

    def half_a_program() -> None:
        gcp.storage.Bucket("orphan", name="orphan", location="us-central1")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        capture_stack("us", program=half_a_program)
    after = capture_stack("us")
    assert after == captured["us"]
    assert not [r for r in after if r.name == "orphan"]


def test_the_entry_point_without_the_project_installed_says_how_to_fix_it() -> None:
    """Pulumi runs infra/ from infra/; the program imports `infra` as an installed package
    (scripts/setup.sh: pip install -e .). Not installed: one line naming the fix."""
    import subprocess
    import sys

    from infra.capture import REPO_ROOT

    script = (
        "import runpy, sys\n"
        f"sys.path[:] = [p for p in sys.path if p.rstrip('/') != {str(REPO_ROOT)!r}]\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('infra', 'workloads'):\n"
        "            raise ModuleNotFoundError(name, name=name.split('.')[0])\n"
        "sys.meta_path.insert(0, Refuse())\n"
        f"runpy.run_path({str(REPO_ROOT / 'infra')!r}, run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT / "infra",
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: the package 'infra' is not installed in the virtualenv Pulumi runs (.venv); "
        "fix: run scripts/setup.sh, or `.venv/bin/pip install -e .` in the project"
    ]
