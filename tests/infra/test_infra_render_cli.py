"""`python -m infra.render`: files written, errors as one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.render import main


def test_render_writes_manifest_and_posture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--stack", "hub", "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "hub.manifest.json").read_text())
    assert manifest["stack"] == "hub"
    assert any(r["type"] == "gcp:pubsub/topic:Topic" for r in manifest["resources"])
    assert (tmp_path / "hub.posture.md").read_text().startswith("# Posture of stack `hub`")
    assert str(tmp_path / "hub.manifest.json") in capsys.readouterr().out


def test_unknown_stack_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--stack", "nowhere", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Pulumi.nowhere.yaml not found" in err
    assert "fix: use one of eu, hub, sg, us" in err
    assert "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_no_stack_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2


def test_secrets_never_render_in_clear_and_unknowns_render_stably() -> None:
    import pulumi
    import pulumi_gcp as gcp
    from pulumi.runtime import rpc

    from infra.capture import capture_stack
    from infra.render import _stable, manifest_json

    def program() -> None:
        gcp.storage.Bucket(
            "b",
            name="b",
            location="us-central1",
            labels={"owner": pulumi.Output.secret("dr-who")},
        )

    text = manifest_json("us", capture_stack("us", program=program))
    assert '"labels": "<secret>"' in text
    assert "dr-who" not in text
    assert _stable({"a": [rpc.UNKNOWN]}) == {"a": ["<unknown>"]}
