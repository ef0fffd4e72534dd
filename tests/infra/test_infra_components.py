"""Components one at a time, each declared alone under mocks."""

from __future__ import annotations

from infra_testkit import of_type, one

from infra.capture import CapturedResource, capture_stack
from infra.keys import Keys
from infra.network import RESTRICTED_VIP_RANGE, Network
from infra.org_policies import OrgPolicies


def test_keys_component_alone_grants_each_key_only_to_its_agent() -> None:
    def program() -> None:
        Keys(
            "k",
            project="p-project",
            region="europe-west2",
            ring_name="ring",
            purposes=("pubsub", "storage"),
            agents={
                "pubsub": "serviceAccount:service-123456@gcp-sa-pubsub.iam.gserviceaccount.com",
                "storage": (
                    "serviceAccount:service-123456@gs-project-accounts.iam.gserviceaccount.com"
                ),
            },
        )

    resources = capture_stack("us", program=program)
    component = one(resources, "sovereign:common:Keys")
    keys = of_type(resources, ":CryptoKey")
    assert {k.inputs["name"] for k in keys} == {"pubsub-key", "storage-key"}
    assert all(k.parent == component.urn and k.protect for k in keys)
    members = {g.inputs["member"] for g in of_type(resources, ":CryptoKeyIAMMember")}
    assert members == {
        "serviceAccount:service-123456@gcp-sa-pubsub.iam.gserviceaccount.com",
        "serviceAccount:service-123456@gs-project-accounts.iam.gserviceaccount.com",
    }
    assert one(resources, ":KeyRing").inputs["location"] == "europe-west2"


def test_network_has_no_internet_route_and_only_https_to_the_restricted_vip() -> None:
    def program() -> None:
        Network("n", project="p-project", region="us-east4")

    resources = capture_stack("us", program=program)
    assert {r.inputs["region"] for r in of_type(resources, ":Subnetwork")} == {"us-east4"}
    vpc = one(resources, "compute/network:Network").inputs
    assert vpc["autoCreateSubnetworks"] is False
    assert vpc["deleteDefaultRoutesOnCreate"] is True
    (route,) = [r.inputs for r in of_type(resources, ":Route")]
    assert route["destRange"] == RESTRICTED_VIP_RANGE == "199.36.153.4/30"
    subnet = one(resources, ":Subnetwork").inputs
    assert subnet["privateIpGoogleAccess"] is True
    assert subnet["logConfig"]["flowSampling"] == 1.0
    firewalls = {f.inputs["name"]: f.inputs for f in of_type(resources, ":Firewall")}
    allow = [f for f in firewalls.values() if "allows" in f]
    assert len(allow) == 1
    assert allow[0]["direction"] == "EGRESS"
    assert allow[0]["destinationRanges"] == [RESTRICTED_VIP_RANGE]
    assert allow[0]["allows"] == [{"protocol": "tcp", "ports": ["443"]}]
    deny_egress = [f for f in firewalls.values() if f["direction"] == "EGRESS" and "denies" in f]
    assert deny_egress[0]["destinationRanges"] == ["0.0.0.0/0"]
    assert deny_egress[0]["priority"] > allow[0]["priority"]
    records = {
        (r.inputs["name"], r.inputs["type"]): r.inputs["rrdatas"]
        for r in of_type(resources, ":RecordSet")
    }
    assert records[("*.googleapis.com.", "CNAME")] == ["restricted.googleapis.com."]
    assert records[("restricted.googleapis.com.", "A")] == [
        "199.36.153.4",
        "199.36.153.5",
        "199.36.153.6",
        "199.36.153.7",
    ]
    zones = of_type(resources, ":ManagedZone")
    assert all(z.inputs["visibility"] == "private" for z in zones)


def test_org_policies_cover_every_guard_rail() -> None:
    def program() -> None:
        import pulumi_gcp as gcp

        OrgPolicies(
            "o",
            project="p-project",
            allowed_locations=["in:europe-west2-locations"],
            cmek_services=["bigquery.googleapis.com"],
            key_projects=["p-project", "p-keys"],
            member_domains=["C0100abcd"],
            provider=gcp.Provider("cp", billing_project="quota", user_project_override=True),
        )

    resources = capture_stack("us", program=program)
    policies = {r.inputs["name"].rsplit("/", 1)[1]: r.inputs for r in of_type(resources, ":Policy")}
    for constraint in (
        "compute.disableSerialPortAccess",
        "compute.requireOsLogin",
        "compute.requireShieldedVm",
        "compute.skipDefaultNetworkCreation",
        "iam.automaticIamGrantsForDefaultServiceAccounts",
        "iam.disableServiceAccountKeyCreation",
        "iam.disableServiceAccountKeyUpload",
        "storage.publicAccessPrevention",
        "storage.secureHttpTransport",
        "storage.uniformBucketLevelAccess",
    ):
        assert policies[constraint]["spec"]["rules"] == [{"enforce": "TRUE"}], constraint
    for constraint in ("compute.vmCanIpForward", "compute.restrictVpcPeering"):
        assert policies[constraint]["spec"]["rules"] == [{"denyAll": "TRUE"}], constraint
    assert policies["iam.allowedPolicyMemberDomains"]["spec"]["rules"] == [
        {"values": {"allowedValues": ["C0100abcd"]}}
    ]
    assert policies["gcp.restrictCmekCryptoKeyProjects"]["spec"]["rules"] == [
        {"values": {"allowedValues": ["under:projects/p-project", "under:projects/p-keys"]}}
    ]
    assert policies["compute.restrictNonConfidentialComputing"]["spec"]["rules"] == [
        {"values": {"deniedValues": ["compute.googleapis.com"]}}
    ]
    assert policies["gcp.restrictNonCmekServices"]["spec"]["rules"] == [
        {"values": {"deniedValues": ["bigquery.googleapis.com"]}}
    ]
    assert policies["gcp.resourceLocations"]["spec"]["rules"] == [
        {"values": {"allowedValues": ["in:europe-west2-locations"]}}
    ]
    assert all(p["parent"] == "projects/p-project" for p in policies.values())


def test_dry_run_perimeter_carries_the_same_fence_as_the_enforced_one(
    captured: dict[str, list[CapturedResource]],
) -> None:
    enforced = one(captured["us"], ":ServicePerimeter").inputs
    dry = one(capture_stack("us", {"perimeterMode": "dryrun"}), ":ServicePerimeter").inputs
    assert dry["useExplicitDryRunSpec"] is True and enforced["useExplicitDryRunSpec"] is False
    assert "status" not in dry and "spec" not in enforced
    assert dry["spec"] == enforced["status"]


def test_standard_provisioning_restarts_and_spot_deletes() -> None:
    standard = capture_stack("us", {"batch": {"provisioningModel": "STANDARD"}})
    scheduling = one(standard, ":InstanceTemplate").inputs["scheduling"]
    assert scheduling == {
        "onHostMaintenance": "TERMINATE",
        "provisioningModel": "STANDARD",
        "preemptible": False,
        "automaticRestart": True,
    }


def test_components_register_under_their_type_tokens(
    captured: dict[str, list[CapturedResource]],
) -> None:
    tokens = {r.type for r in captured["us"] if r.type.startswith("sovereign:")}
    assert tokens == {
        "sovereign:common:Apis",
        "sovereign:common:Keys",
        "sovereign:common:OrgPolicies",
        "sovereign:common:ServiceAgents",
        "sovereign:common:AuditLogs",
        "sovereign:node:SigningKey",
        "sovereign:node:Buckets",
        "sovereign:node:ConfidentialBatch",
        "sovereign:node:FederationWorker",
        "sovereign:node:Identities",
        "sovereign:node:Network",
        "sovereign:node:Perimeter",
        "sovereign:node:Registry",
        "sovereign:node:Warehouse",
    }
