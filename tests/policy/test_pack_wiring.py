"""The CrossGuard wiring: pulumi_policy objects, and the pack process the Pulumi engine runs.

The end-to-end test starts the pack exactly as Pulumi's analyzer shim does
(`python -m pulumi.policy <engine> <pack dir>`), with pulumi_gcp, infra, workloads and
google.cloud made unimportable, then speaks the engine's gRPC protocol to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from infra.policy.config import config_for_stack
from infra.policy.sovereign_policies import POLICIES
from infra.policy.sovereign_policies import props as p
from infra.policy.sovereign_policies.pack import PACK_NAME, pulumi_policies
from tests.policy.mutations import captured

PACK_DIR = Path(__file__).resolve().parents[2] / "infra" / "policy"
US_LOCATIONS = ["in:us-central1-locations"]
OPEN_BUCKET = {
    "name": "raw",
    "location": "ASIA-SOUTHEAST1",
    "uniformBucketLevelAccess": True,
    "publicAccessPrevention": "enforced",
    "versioning": {"enabled": True},
}


def _opts(protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _policy(name: str) -> Any:
    [policy] = [q for q in pulumi_policies(lambda: lambda _key: None) if q.name == name]
    return policy


def _reports(policy: Any, args: Any) -> list[tuple[str, str | None]]:
    calls: list[tuple[str, str | None]] = []
    policy.validate(args, lambda message, urn=None: calls.append((message, urn)))
    return calls


def _args(
    type_: str,
    props: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    protect: bool = False,
) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        type_,
        unknown_checking_proxy(dict(props)),
        f"urn:x::{type_}::r",
        "r",
        _opts(protect),
        None,
        config,
    )


def test_one_pulumi_policy_per_policy_all_mandatory_with_severity_and_schema() -> None:
    built = pulumi_policies()
    assert [q.name for q in built] == [q.name for q in POLICIES]
    for ours, theirs in zip(POLICIES, built, strict=True):
        assert theirs.enforcement_level == EnforcementLevel.MANDATORY
        assert theirs.severity is not None and theirs.severity.value == ours.severity.value
        assert isinstance(
            theirs, ResourceValidationPolicy if ours.kind == "resource" else StackValidationPolicy
        )
        keys = set(theirs.config_schema.properties) if theirs.config_schema else set()
        assert keys == set(ours.config_keys)
        assert all(c in theirs.description for c in ours.checkov)


def test_resource_policy_reports_through_report_violation() -> None:
    reports = _reports(_policy("encryption-cmek"), _args(p.BUCKET, OPEN_BUCKET))
    assert len(reports) == 1 and "'r'" in reports[0][0] and "default_kms_key_name" in reports[0][0]
    assert _reports(_policy("storage-versioning"), _args(p.BUCKET, OPEN_BUCKET)) == []


def test_location_policy_reads_pack_config_then_the_stack_config() -> None:
    policy = _policy("sovereignty-resource-location")
    [(message, _)] = _reports(
        policy, _args(p.BUCKET, OPEN_BUCKET, {"allowedLocations": US_LOCATIONS})
    )
    assert "ASIA-SOUTHEAST1" in message and "outside" in message
    assert (
        _reports(policy, _args(p.BUCKET, OPEN_BUCKET, {"allowedLocations": ["asia-southeast1"]}))
        == []
    )
    # no pack config: the stack's own config (what the engine passes to packs) is used
    stack_config = {"allowedLocations": US_LOCATIONS}
    [fallback] = [q for q in pulumi_policies(lambda: stack_config.get) if q.name == policy.name]
    assert "outside" in _reports(fallback, _args(p.BUCKET, OPEN_BUCKET))[0][0]
    # neither: fail closed, saying how to configure
    assert "not configured" in _reports(policy, _args(p.BUCKET, OPEN_BUCKET))[0][0]


def test_protect_option_is_read_from_the_resource_options() -> None:
    key = {"rotationPeriod": "7776000s", "deletionPolicy": "PREVENT"}
    policy = _policy("encryption-key-protected")
    assert _reports(policy, _args(p.KMS_CRYPTO_KEY, key, protect=True)) == []
    assert "protect=True" in _reports(policy, _args(p.KMS_CRYPTO_KEY, key, protect=False))[0][0]


def test_preview_unknowns_skip_value_checks_but_not_presence_checks() -> None:
    bucket = {
        **OPEN_BUCKET,
        "location": UNKNOWN_STRING_VALUE,
        "encryption": {"defaultKmsKeyName": UNKNOWN_STRING_VALUE},
    }
    assert _reports(_policy("encryption-cmek"), _args(p.BUCKET, bucket)) == []  # a key is set
    with pytest.raises(UnknownValueError):  # the engine reports "can't run during preview"
        _reports(
            _policy("sovereignty-resource-location"),
            _args(p.BUCKET, bucket, {"allowedLocations": US_LOCATIONS}),
        )


def _stack_args(stack: str, config: Mapping[str, Any]) -> StackValidationArgs:
    resources, _ = captured(stack)
    return StackValidationArgs(
        [
            PolicyResource(
                r.type,
                unknown_checking_proxy(dict(r.props)),
                r.urn,
                r.name,
                _opts(r.protect),
                None,
                None,
                [],
                {},
            )
            for r in resources
        ],
        config,
    )


def test_stack_policy_reports_on_the_captured_stack_with_urns() -> None:
    policy = _policy("sovereignty-location-org-policy")
    assert (
        _reports(policy, _stack_args("us", {"allowedLocations": US_LOCATIONS, "role": "node"}))
        == []
    )
    [(message, urn)] = _reports(
        policy,
        _stack_args("us", {"allowedLocations": ["in:europe-west2-locations"], "role": "node"}),
    )
    assert urn is not None and urn.endswith("gcp.resourceLocations") and "europe-west2" in message
    egress = _policy("sovereignty-perimeter-egress")
    assert (
        "egress policy 0 sends data to"
        in _reports(egress, _stack_args("us", {"hubProjectNumber": "1"}))[0][0]
    )
    assert _reports(egress, _stack_args("us", {"hubProjectNumber": "1", "role": "hub"})) == []


# --- the pack as the engine runs it -------------------------------------------------------

_BOOT = """
import runpy, sys
FORBIDDEN = ('pulumi_gcp', 'infra', 'workloads')
class Forbidden:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in FORBIDDEN or name.startswith('google.cloud'):
            raise ImportError('the policy pack must not import ' + name)
sys.meta_path.insert(0, Forbidden())
sys.argv = ['pulumi.policy', *sys.argv[1:]]
runpy.run_module('pulumi.policy', run_name='__main__')
"""


@pytest.fixture(scope="module")
def analyzer() -> Iterator[Any]:
    # Every key the pack reads, as the engine would pass them from the stack's config
    # (the derived ones, e.g. federationIdentity, come from `python -m infra.policy.config`).
    stack_config = {
        f"sovereign-genomics:{k}": v if isinstance(v, str) else json.dumps(v)
        for k, v in config_for_stack("us").to_mapping().items()
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        PULUMI_CONFIG=json.dumps(stack_config),
        PULUMI_PROJECT="sovereign-genomics",
        PULUMI_STACK="us",
        PULUMI_DRY_RUN="true",
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _BOOT, "127.0.0.1:1", str(PACK_DIR)],
        cwd=PACK_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), proc.stderr.read().decode() if proc.stderr else line
        channel = grpc.insecure_channel(f"127.0.0.1:{int(line)}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(json.loads(json.dumps(props)), struct_pb2.Struct())


def _analyze(stub: Any, type_: str, props: Mapping[str, Any]) -> list[Any]:
    request = analyzer_pb2.AnalyzeRequest(
        type=type_, name="raw", urn=f"urn:pulumi:us::p::{type_}::raw", properties=_struct(props)
    )
    return list(stub.Analyze(request).diagnostics)


def test_pack_process_describes_every_policy_as_mandatory(analyzer: Any) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == PACK_NAME
    assert [q.name for q in info.policies] == [q.name for q in POLICIES]
    assert {q.enforcementLevel for q in info.policies} == {analyzer_pb2.MANDATORY}


def test_pack_process_flags_a_resource_with_stack_config_then_pack_config(analyzer: Any) -> None:
    found = {d.policyName for d in _analyze(analyzer, p.BUCKET, OPEN_BUCKET)}
    assert found == {"encryption-cmek", "sovereignty-resource-location"}
    analyzer.Configure(
        analyzer_pb2.ConfigureAnalyzerRequest(
            policyConfig={
                "sovereignty-resource-location": analyzer_pb2.PolicyConfig(
                    enforcementLevel=analyzer_pb2.MANDATORY,
                    properties=_struct({"allowedLocations": ["in:asia-southeast1-locations"]}),
                )
            }
        )
    )
    try:
        assert {d.policyName for d in _analyze(analyzer, p.BUCKET, OPEN_BUCKET)} == {
            "encryption-cmek"
        }
    finally:
        analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest())


def test_pack_process_passes_the_captured_us_stack_and_flags_a_mutation(analyzer: Any) -> None:
    resources, _ = captured("us")

    def request(drop_constraint: str | None) -> Any:
        return analyzer_pb2.AnalyzeStackRequest(
            resources=[
                analyzer_pb2.AnalyzerResource(
                    type=r.type,
                    name=r.name,
                    urn=r.urn,
                    properties=_struct(r.props),
                    options=analyzer_pb2.AnalyzerResourceOptions(protect=r.protect),
                )
                for r in resources
                if not (drop_constraint and p.org_policy_constraint(r) == drop_constraint)
            ]
        )

    assert list(analyzer.AnalyzeStack(request(None)).diagnostics) == []
    [diag] = analyzer.AnalyzeStack(request("iam.disableServiceAccountKeyCreation")).diagnostics
    assert diag.policyName == "identity-key-creation-org-policy" and "fix:" in diag.message
    assert diag.enforcementLevel == analyzer_pb2.MANDATORY


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_pack_requirements_pin_the_versions_the_tests_run() -> None:
    pack = _pins(PACK_DIR / "requirements.txt")
    project = _pins(PACK_DIR.parents[1] / "requirements.txt")
    assert {"pulumi", "pulumi-policy", "protobuf", "grpcio"} <= set(pack)
    assert {name: project.get(name) for name in pack} == pack
