"""Checkov's verdict on every stack, from the Terraform plan JSON `infra.render` writes.

Checkov runs from its own virtualenv (`.checkov-venv`, pinned in infra/checkov/
requirements.txt, installed by scripts/run-tests.sh). Zero failed checks, except the
skips declared next to their resources (infra/checkov_skips.py), and every declared skip
must still be needed.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from infra_testkit import HUB_ON, HUB_ROSTER, WORKER_ON

from infra import terraform_plan
from infra.capture import REPO_ROOT, CapturedResource, capture_stack
from infra.checkov_skips import SKIPS, covers, skip_reason

CHECKOV = Path(os.environ.get("CHECKOV_BIN", REPO_ROOT / ".checkov-venv" / "bin" / "checkov"))
JOB = {"enabled": True, "shards": ["in/a.vcf.gz"], "imageTag": "1.0.0"}


def _checkov() -> Path:
    if not CHECKOV.exists():
        message = (
            f"Checkov not found at {CHECKOV}; fix: run scripts/run-tests.sh (it installs "
            "infra/checkov/requirements.txt into .checkov-venv) or set CHECKOV_BIN"
        )
        if os.environ.get("SOVEREIGN_REQUIRE_CHECKOV") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return CHECKOV


@pytest.fixture(scope="module")
def checkov_report(
    tmp_path_factory: pytest.TempPathFactory, captured: dict[str, list[CapturedResource]]
) -> dict[str, list[dict[str, object]]]:
    """Checkov's failed checks per stack (one Checkov run over every plan)."""
    binary = _checkov()
    folder = tmp_path_factory.mktemp("plans")
    stacks = {
        **captured,
        "us+batch": capture_stack("us", {"batchJob": JOB}),
        # The federation services deployed (issue 16): the worker and the coordinator.
        "us+worker": capture_stack("us", WORKER_ON, references=HUB_ROSTER),
        "hub+coordinator": capture_stack("hub", HUB_ON),
    }
    for stack, resources in stacks.items():
        (folder / f"{stack}.tfplan.json").write_text(
            json.dumps(terraform_plan.plan(stack, resources))
        )
    proc = subprocess.run(
        [
            str(binary),
            "-d",
            str(folder),
            "--framework",
            "terraform_plan",
            "-o",
            "json",
            "--quiet",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": ""},
        timeout=300,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed: dict[str, list[dict[str, object]]] = {stack: [] for stack in stacks}
    for r in reports:
        for check in r.get("results", {}).get("failed_checks", []):
            stack = Path(check["file_path"]).name.removesuffix(".tfplan.json")
            failed[stack].append(check)
        assert r.get("summary", {}).get("parsing_errors", 0) == 0
        assert r.get("summary", {}).get("passed", 0) > 50
    return failed


def test_checkov_fails_nothing_but_the_declared_skips(
    checkov_report: dict[str, list[dict[str, object]]],
) -> None:
    unexplained = [
        f"{stack}: {c['check_id']} {c['resource']} ({c['check_name']})"
        for stack, checks in checkov_report.items()
        for c in checks
        if skip_reason(str(c["resource"]), str(c["check_id"])) is None
    ]
    assert unexplained == [], "\n".join(unexplained)


def test_every_declared_skip_is_still_needed(
    checkov_report: dict[str, list[dict[str, object]]],
) -> None:
    seen = [(str(c["resource"]), str(c["check_id"]))
            for checks in checkov_report.values() for c in checks]
    unused = [key for key in SKIPS if not any(covers(key, *found) for found in seen)]
    assert unused == [], f"skips no longer needed (remove them): {unused}"
    assert all(len(reason) > 40 for reason in SKIPS.values())


def test_the_plan_maps_pulumi_types_to_terraform_types() -> None:
    assert terraform_plan.terraform_type("gcp:storage/bucket:Bucket") == "google_storage_bucket"
    assert (
        terraform_plan.terraform_type("gcp:projects/iAMMember:IAMMember")
        == "google_project_iam_member"
    )
    assert (
        terraform_plan.terraform_type("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
        == "google_kms_crypto_key_iam_member"
    )
    assert (
        terraform_plan.terraform_type("gcp:accesscontextmanager/servicePerimeter:ServicePerimeter")
        == "google_access_context_manager_service_perimeter"
    )
    assert terraform_plan.terraform_type("gcp:serviceaccount/account:Account") == (
        "google_service_account"
    )
    assert terraform_plan.terraform_type("sovereign:node:Network") is None


def test_checkov_catches_a_broken_bucket(
    tmp_path: Path, captured: dict[str, list[CapturedResource]]
) -> None:
    """The plan is not a pass-everything artefact: Checkov sees a fault Pulumi-side."""
    binary = _checkov()
    broken = [
        CapturedResource(
            r.type,
            r.name,
            r.urn,
            r.parent,
            {**r.inputs, "uniformBucketLevelAccess": False}
            if r.type == "gcp:storage/bucket:Bucket"
            else r.inputs,
            r.protect,
        )
        for r in captured["us"]
    ]
    (tmp_path / "us.tfplan.json").write_text(json.dumps(terraform_plan.plan("us", broken)))
    proc = subprocess.run(
        [
            str(binary),
            "-f",
            str(tmp_path / "us.tfplan.json"),
            "--framework",
            "terraform_plan",
            "-o",
            "json",
            "--quiet",
            "--skip-download",
            "-c",
            "CKV_GCP_29",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        timeout=300,
        check=False,
    )
    failed = json.loads(proc.stdout)["results"]["failed_checks"]
    assert {c["check_id"] for c in failed} == {"CKV_GCP_29"} and len(failed) == 3
