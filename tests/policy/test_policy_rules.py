"""Edges of individual rules, on hand-built props in the camelCase pulumi-gcp sends."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from infra.capture import capture_stack
from infra.policy.config import config_for_stack
from infra.policy.sovereign_policies import PolicyConfig, Resource, evaluate, policy_named
from infra.policy.sovereign_policies import props as p
from infra.policy.sovereign_policies.locations import location_allowed
from infra.policy.sovereign_policies.model import UNKNOWN, NotKnownYet, Policy, Severity
from tests.policy.mutations import _drop_service, _perimeter, captured, edit

US = PolicyConfig(
    role="node", allowed_locations=("in:us-central1-locations",), hub_project_number="9"
)


def _messages(
    policy: str, type_: str, props: dict[str, Any], *, protect: bool = False
) -> list[str]:
    resource = Resource(
        type=type_, name="r", urn=f"urn:x::{type_}::r", props=props, protect=protect
    )
    return policy_named(policy).check_resource(resource, US)


@pytest.mark.parametrize(
    ("location", "allowed"),
    [
        ("us-central1", True),
        ("US-CENTRAL1", True),
        ("us-central1-a", True),
        ("regions/us-central1", True),
        ("zones/us-central1-f", True),
        ("us", False),  # multi-region: not inside one region's locations
        ("us-central2", False),
        ("global", False),
        ("europe-west2", False),
    ],
)
def test_location_inside_region_value_group(location: str, allowed: bool) -> None:
    assert location_allowed(location, ["in:us-central1-locations"]) is allowed


def test_bare_region_admits_its_zones_and_other_value_groups_admit_nothing() -> None:
    assert location_allowed("europe-west2-b", ["europe-west2"])
    assert not location_allowed("us-central1", ["in:us-locations"])  # not expanded: fail closed


@pytest.mark.parametrize(
    ("period", "ok"),
    [
        ("86400s", True),
        ("86399s", False),
        ("7776000s", True),
        ("7776001s", False),
        ("31536000s", False),
        ("90d", False),
        (None, False),
    ],
)
def test_rotation_between_one_and_ninety_days(period: str | None, ok: bool) -> None:
    props = {"rotationPeriod": period} if period else {}
    assert (_messages("encryption-key-rotation", p.KMS_CRYPTO_KEY, props) == []) is ok


def test_asymmetric_keys_are_not_asked_to_rotate() -> None:
    assert (
        _messages("encryption-key-rotation", p.KMS_CRYPTO_KEY, {"purpose": "ASYMMETRIC_SIGN"}) == []
    )


@pytest.mark.parametrize(
    ("firewall", "open_"),
    [
        ({"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "tcp", "ports": ["443"]}]}, True),
        ({"sourceRanges": ["::/0"], "allows": [{"protocol": "all"}], "direction": "INGRESS"}, True),
        ({"sourceRanges": ["0.0.0.0/0"], "denies": [{"protocol": "all"}]}, False),
        ({"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "all"}], "disabled": True}, False),
        (
            {
                "direction": "EGRESS",
                "destinationRanges": ["0.0.0.0/0"],
                "allows": [{"protocol": "all"}],
            },
            False,
        ),
        # IAP's range is Google's public address space: a way in all the same.
        (
            {"sourceRanges": ["35.235.240.0/20"], "allows": [{"protocol": "tcp", "ports": ["22"]}]},
            True,
        ),
        ({"sourceRanges": ["10.0.0.0/8"], "allows": [{"protocol": "tcp"}]}, False),
        ({"sourceRanges": ["0.0.0.0/1"], "allows": [{"protocol": "tcp"}]}, True),
        ({"sourceRanges": ["172.0.0.0/8"], "allows": [{"protocol": "tcp"}]}, True),
        ({"allows": [{"protocol": "tcp"}]}, True),
    ],
)
def test_open_ingress_for_enabled_allow_rules_reaching_public_space(
    firewall: dict[str, Any], open_: bool
) -> None:
    assert bool(_messages("network-no-open-ingress", p.FIREWALL, firewall)) is open_


def test_network_without_auto_create_flag_is_auto_mode() -> None:
    assert _messages("network-no-default-network", p.NETWORK, {})  # provider default: true
    assert (
        _messages("network-no-default-network", p.NETWORK, {"autoCreateSubnetworks": False}) == []
    )


@pytest.mark.parametrize(
    ("type_", "props", "policy"),
    [
        (
            "gcp:projects/iAMBinding:IAMBinding",
            {"role": "roles/owner", "members": ["group:a@x"]},
            "identity-no-basic-roles",
        ),
        (
            "gcp:storage/bucketIAMPolicy:BucketIAMPolicy",
            {
                "policyData": json.dumps(
                    {"bindings": [{"role": "roles/storage.objectViewer", "members": ["allUsers"]}]}
                )
            },
            "identity-no-public-principals",
        ),
        (
            p.BQ_DATASET,
            {"accesses": [{"role": "READER", "specialGroup": "allAuthenticatedUsers"}]},
            "identity-no-public-principals",
        ),
        (
            "gcp:bigquery/iamMember:IamMember",
            {"role": "roles/bigquery.dataViewer", "member": "allUsers"},
            "identity-no-public-principals",
        ),
    ],
)
def test_grants_are_read_from_every_iam_shape(
    type_: str, props: dict[str, Any], policy: str
) -> None:
    assert _messages(policy, type_, props)


def test_default_service_account_in_templates_and_batch_jobs() -> None:
    rule = "identity-no-default-service-account"
    assert _messages(rule, p.INSTANCE_TEMPLATE, {"serviceAccount": {"scopes": ["cloud-platform"]}})
    assert _messages(rule, p.INSTANCE_TEMPLATE, {}) == []  # no service account attached
    job = {
        "allocationPolicy": {"serviceAccount": {"email": "1-compute@developer.gserviceaccount.com"}}
    }
    assert _messages(rule, "pulumi-python:dynamic:Resource", {"jobJson": json.dumps(job)})


def test_a_named_dynamic_resource_subclass_is_still_checked_as_a_batch_job() -> None:
    job = {"allocationPolicy": {"instances": [{"policy": {"machineType": "n2d-standard-4"}}]}}
    assert _messages(
        "confidential-batch-job", "pulumi-python:dynamic/batch:Job", {"jobJson": json.dumps(job)}
    )


def test_unknown_values_pass_presence_checks_and_stop_value_checks() -> None:
    assert (
        _messages(
            "encryption-cmek",
            p.BQ_DATASET,
            {"defaultEncryptionConfiguration": {"kmsKeyName": UNKNOWN}},
        )
        == []
    )
    with pytest.raises(NotKnownYet):
        _messages("sovereignty-resource-location", p.BQ_DATASET, {"location": UNKNOWN})


def test_hub_role_skips_only_the_perimeter_rules() -> None:
    resources, _ = captured("us")
    bare = [r for r in resources if r.type not in (p.ORG_POLICY, p.SERVICE_PERIMETER)]
    org_rules = {
        "sovereignty-location-org-policy",
        "confidential-org-policy",
        "identity-key-creation-org-policy",
    }
    org_rules.add("governance-org-policies")
    perimeter_rules = {
        "sovereignty-perimeter-services",
        "sovereignty-perimeter-egress",
        "sovereignty-perimeter-scope",
    }
    config = captured("us")[1]
    assert {v.policy for v in evaluate(bare, config)} == org_rules | perimeter_rules
    as_hub = replace(config, role="hub")
    assert {v.policy for v in evaluate(bare, as_hub)} == org_rules
    assert PolicyConfig().is_node  # a stack that does not say gets the strict rules


def test_dry_run_perimeter_is_checked_in_its_spec() -> None:
    config = replace(captured("us")[1], perimeter_mode="dryrun")
    resources = [
        Resource(r.type, r.name, r.urn, r.inputs, r.protect)
        for r in capture_stack("us", {"perimeterMode": "dryrun"})
    ]
    # The same stack judged as "enforced" is a perimeter left in dry-run without saying so.
    assert {v.policy for v in evaluate(resources, replace(config, perimeter_mode=None))} == {
        "sovereignty-perimeter-scope"
    }
    [perimeter] = [r for r in resources if r.type == p.SERVICE_PERIMETER]
    assert perimeter.props.get("useExplicitDryRunSpec") is True and "spec" in perimeter.props
    assert evaluate(resources, config) == []
    mutated, _ = edit(p.SERVICE_PERIMETER, _perimeter(_drop_service("bigquery.googleapis.com")))(
        resources
    )
    assert {v.policy for v in evaluate(mutated, config)} == {"sovereignty-perimeter-services"}


def test_policy_config_falls_back_to_the_stack_config_per_key() -> None:
    stack = {"role": "node", "allowedLocations": ["europe-west2"], "hubProjectNumber": 42}
    config = PolicyConfig.from_mapping(
        {"allowedLocations": ["in:us-central1-locations"]}, stack.get
    )
    assert config == PolicyConfig("node", ("in:us-central1-locations",), "42")
    assert PolicyConfig.from_mapping(config_for_stack("us").to_mapping()) == config_for_stack("us")


def test_a_policy_has_exactly_one_kind_of_check() -> None:
    with pytest.raises(TypeError):
        Policy("x", "P", "d", Severity.LOW, (), ())
