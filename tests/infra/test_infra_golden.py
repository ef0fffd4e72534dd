"""The rendered manifest and posture of each stack equal the golden copies reviewers diff.

When the declared infrastructure changes on purpose, refresh them and commit the diff:

    .venv/bin/python -m infra.render --update-golden
"""

from __future__ import annotations

import difflib
import json

import pytest

from infra.capture import CapturedResource
from infra.render import GOLDEN_DIR, GOLDEN_STACKS, Rendered, render, without_verdicts

REFRESH = "refresh with `.venv/bin/python -m infra.render --update-golden` and review the diff"


def _diff(expected: str, actual: str, name: str) -> str:
    lines = difflib.unified_diff(
        expected.splitlines(keepends=True),
        actual.splitlines(keepends=True),
        fromfile=f"golden/{name}",
        tofile=f"rendered/{name}",
        n=2,
    )
    text = "".join(lines)
    return text if len(text) < 6000 else text[:6000] + "\n... (diff truncated)\n"


@pytest.fixture(scope="module")
def rendered(captured: dict[str, list[CapturedResource]]) -> dict[str, Rendered]:
    return {stack: render(stack, resources=captured[stack]) for stack in GOLDEN_STACKS}


@pytest.mark.parametrize("stack", GOLDEN_STACKS)
def test_manifest_matches_golden(rendered: dict[str, Rendered], stack: str) -> None:
    name = f"{stack}.manifest.json"
    golden = (GOLDEN_DIR / name).read_text()
    actual = rendered[stack].manifest
    assert actual == golden, f"{name} changed; {REFRESH}\n{_diff(golden, actual, name)}"


@pytest.mark.parametrize("stack", GOLDEN_STACKS)
def test_posture_matches_golden(rendered: dict[str, Rendered], stack: str) -> None:
    # The verdict table belongs to the policy pack and changes with it: compared below
    # by meaning (every policy passes), not byte for byte.
    name = f"{stack}.posture.md"
    golden = without_verdicts((GOLDEN_DIR / name).read_text())
    actual = without_verdicts(rendered[stack].posture)
    assert actual == golden, f"{name} changed; {REFRESH}\n{_diff(golden, actual, name)}"


@pytest.mark.parametrize("stack", GOLDEN_STACKS)
def test_every_policy_passes_on_the_committed_stacks(
    rendered: dict[str, Rendered], stack: str
) -> None:
    posture = rendered[stack].posture
    verdicts = posture.split("## Policy verdicts", 1)[1]
    assert "| PASS |" in verdicts
    assert "FAIL" not in verdicts, verdicts


def test_render_is_stable_and_sorted(rendered: dict[str, Rendered]) -> None:
    again = render("us")
    assert again == rendered["us"]
    urns = [r["urn"] for r in json.loads(again.manifest)["resources"]]
    assert urns == sorted(urns)


def test_a_changed_resource_shows_as_a_readable_diff(rendered: dict[str, Rendered]) -> None:
    from infra.capture import capture_stack
    from infra.render import manifest_json

    moved = manifest_json("us", capture_stack("us", {"batch": {"provisioningModel": "STANDARD"}}))
    diff = _diff(rendered["us"].manifest, moved, "us.manifest.json")
    assert '-          "provisioningModel": "SPOT"' in diff
    assert '+          "provisioningModel": "STANDARD"' in diff
