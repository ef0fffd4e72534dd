"""The whole node stack, us and eu, under mocks: the sovereignty properties, one by one."""

from __future__ import annotations

import json

import pytest
from infra_testkit import of_type, one, stack_file, walk

from infra.capture import CapturedResource, capture_stack
from infra.services import CONTROL_PLANE_APIS
from workloads.contracts.catalogue import ALL_TABLES, DOMAINS, domain_of
from workloads.contracts.federation import SIGNING_ALGORITHM, SIGNING_KEY_NAME

# Tables BigQuery stores no bytes of: the catalogue's views and external Parquet tables.
KEYLESS_TABLES = {v.name for d in DOMAINS for v in d.views} | {
    t.name for t in ALL_TABLES if t.external is not None
}

NODES = ("us", "eu", "sg")
MAX_ROTATION_S = 90 * 24 * 3600

# Where each data-bearing resource type names its customer-managed key.
CMEK_PATHS = {
    ":Bucket": ["encryption.defaultKmsKeyName"],
    ":Dataset": ["defaultEncryptionConfiguration.kmsKeyName"],
    ":Table": ["encryptionConfiguration.kmsKeyName"],
    ":Repository": ["kmsKeyName"],
    ":InstanceTemplate": ["disks[0].diskEncryptionKey.kmsKeySelfLink"],
}
KEY_PURPOSE_OF = {
    ":Bucket": "storage",
    ":Dataset": "bigquery",
    ":Table": "bigquery",
    ":Repository": "artifactregistry",
    ":InstanceTemplate": "compute",
}


def leaf(inputs: dict[str, object], path: str) -> object:
    return dict(walk(inputs)).get(path)


@pytest.mark.parametrize("node", NODES)
def test_every_data_bearing_resource_uses_the_nodes_key_for_its_purpose(
    captured: dict[str, list[CapturedResource]], node: str
) -> None:
    cfg = stack_file(node)
    ring = f"projects/{cfg['project']}/locations/{cfg['region']}/keyRings/sovereign-{node}"
    resources = captured[node]
    checked = 0
    for suffix, paths in CMEK_PATHS.items():
        found = of_type(resources, suffix)
        assert found, f"no {suffix} declared"
        for r in found:
            if suffix == ":Table" and r.inputs["tableId"] in KEYLESS_TABLES:
                continue  # a view stores nothing; an external table's bytes are the bucket's
            for path in paths:
                want = f"{ring}/cryptoKeys/{KEY_PURPOSE_OF[suffix]}-key"
                assert leaf(r.inputs, path) == want, f"{r.name}: {path}"
                checked += 1
    assert checked >= 3 + 1 + len(ALL_TABLES) - len(KEYLESS_TABLES) + 1 + 1


@pytest.mark.parametrize("node", NODES)
def test_every_location_is_the_nodes_region(
    captured: dict[str, list[CapturedResource]], node: str
) -> None:
    cfg = stack_file(node)
    seen = set()
    for r in captured[node]:
        for path, value in walk(r.inputs):
            if path.split(".")[-1] in ("location", "region"):
                seen.add(value)
                assert value == cfg["region"], f"{r.name}: {path}={value}"
    assert seen == {cfg["region"]}
    assert f"in:{cfg['region']}-locations" in cfg["allowedLocations"]
    policy = next(r for r in captured[node] if r.name.endswith("gcp.resourceLocations"))
    assert (
        leaf(policy.inputs, "spec.rules[0].values.allowedValues[0]") == cfg["allowedLocations"][0]
    )


@pytest.mark.parametrize("node", NODES)
def test_no_external_ip_and_confidential_compute_on_every_template(
    captured: dict[str, list[CapturedResource]], node: str
) -> None:
    templates = of_type(captured[node], ":InstanceTemplate")
    assert len(templates) == 1
    for t in templates:
        i = t.inputs
        assert all("accessConfigs" not in nic for nic in i["networkInterfaces"])
        assert i["confidentialInstanceConfig"] == {"confidentialInstanceType": "SEV"}
        assert i["machineType"].startswith("n2d-")
        assert i["scheduling"]["onHostMaintenance"] == "TERMINATE"
        assert i["shieldedInstanceConfig"] == {
            "enableSecureBoot": True,
            "enableVtpm": True,
            "enableIntegrityMonitoring": True,
        }
        assert "region" not in i, "Batch needs a global template"
    assert not [r for r in captured[node] if r.type == "gcp:compute/instance:Instance"]
    ip_policy = next(r for r in captured[node] if r.name.endswith("vmExternalIpAccess"))
    assert ip_policy.inputs["spec"]["rules"] == [{"denyAll": "TRUE"}]


@pytest.mark.parametrize("node", NODES)
def test_keys_rotate_within_90_days_and_are_protected(
    captured: dict[str, list[CapturedResource]], node: str
) -> None:
    keys = of_type(captured[node], ":CryptoKey")
    assert {k.inputs["name"] for k in keys} == {
        "bigquery-key",
        "storage-key",
        "artifactregistry-key",
        "compute-key",
        "logging-key",
        SIGNING_KEY_NAME,
    }
    for key in keys:
        assert key.protect, key.name
        assert key.inputs["deletionPolicy"] == "PREVENT"
        if key.inputs["purpose"] == "ENCRYPT_DECRYPT":
            assert int(key.inputs["rotationPeriod"].rstrip("s")) <= MAX_ROTATION_S
            assert key.inputs["versionTemplate"]["protectionLevel"] == "HSM"


@pytest.mark.parametrize("node", NODES)
def test_the_signing_key_is_ed25519_and_only_the_worker_may_use_it(
    captured: dict[str, list[CapturedResource]], node: str
) -> None:
    """Issue #10: the federation signing key, usable only by the node's attested worker
    image (issue 16): with no worker deployed (no digest in the stack file), by nobody."""
    cfg = stack_file(node)
    (key,) = [
        k for k in of_type(captured[node], ":CryptoKey") if k.inputs["name"] == SIGNING_KEY_NAME
    ]
    assert key.inputs["purpose"] == "ASYMMETRIC_SIGN"
    assert key.inputs["versionTemplate"]["algorithm"] == SIGNING_ALGORITHM
    ring = f"projects/{cfg['project']}/locations/{cfg['region']}/keyRings/sovereign-{node}"
    key_id = f"{ring}/cryptoKeys/{SIGNING_KEY_NAME}"
    grants = [
        g.inputs
        for g in of_type(captured[node], ":CryptoKeyIAMMember")
        if g.inputs["cryptoKeyId"] == key_id
    ]
    assert "workerImageDigest" not in str(cfg)
    assert grants == []
    assert one(captured[node], ":KeyRing").protect


def _intended_members(cfg: dict[str, object]) -> dict[str, str]:
    project, number = cfg["project"], cfg["projectNumber"]
    return {
        "batch": f"serviceAccount:batch-runner@{project}.iam.gserviceaccount.com",
        "federation": f"serviceAccount:federation-worker@{project}.iam.gserviceaccount.com",
        "bigquery": f"serviceAccount:bq-{number}@bigquery-encryption.iam.gserviceaccount.com",
        "storage": f"serviceAccount:service-{number}@gs-project-accounts.iam.gserviceaccount.com",
        "artifactregistry": (
            f"serviceAccount:service-{number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
        ),
        "compute": f"serviceAccount:service-{number}@compute-system.iam.gserviceaccount.com",
        "logging": f"serviceAccount:service-{number}@gcp-sa-logging.iam.gserviceaccount.com",
    }


@pytest.mark.parametrize("node", NODES)
def test_iam_members_are_only_the_intended_identities(
    captured: dict[str, list[CapturedResource]], node: str
) -> None:
    intended = _intended_members(stack_file(node))
    grants = [r for r in captured[node] if r.type.lower().endswith("iammember")]
    assert len(grants) >= 10
    for g in grants:
        role, member = g.inputs["role"], g.inputs["member"]
        assert member in intended.values(), f"{g.name}: unexpected member {member}"
        assert role not in ("roles/owner", "roles/editor", "roles/viewer"), g.name
        assert not member.startswith(("allUsers", "allAuthenticatedUsers")), g.name
    # Each key's encrypter/decrypter goes to that purpose's service agent, and only there.
    for g in of_type(captured[node], ":CryptoKeyIAMMember"):
        if g.inputs["cryptoKeyId"].endswith(SIGNING_KEY_NAME):
            continue  # the signing key: test above
        purpose = g.inputs["cryptoKeyId"].rsplit("/", 1)[1].removesuffix("-key")
        assert g.inputs["member"] == intended[purpose]
        assert g.inputs["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    # Data roles sit on the bucket/dataset/repo, never on the project.
    project_roles = {g.inputs["role"] for g in of_type(captured[node], "iAMMember:IAMMember")}
    assert project_roles == {
        "roles/batch.agentReporter",
        "roles/bigquery.jobUser",
        "roles/confidentialcomputing.workloadUser",
        "roles/logging.logWriter",
    }


API_OF_TYPE_PREFIX = {
    "gcp:artifactregistry/": "artifactregistry.googleapis.com",
    "gcp:bigquery/": "bigquery.googleapis.com",
    "gcp:compute/": "compute.googleapis.com",
    "gcp:dns/": "dns.googleapis.com",
    "gcp:kms/": "cloudkms.googleapis.com",
    "gcp:serviceaccount/": "iam.googleapis.com",
    "gcp:storage/": "storage.googleapis.com",
    "gcp:pubsub/": "pubsub.googleapis.com",
}


@pytest.mark.parametrize("node", NODES)
def test_every_api_the_node_uses_is_enabled_and_inside_the_perimeter(
    captured: dict[str, list[CapturedResource]], node: str
) -> None:
    resources = captured[node]
    perimeter = one(resources, ":ServicePerimeter")
    restricted = set(perimeter.inputs["status"]["restrictedServices"])
    enabled = {r.inputs["service"] for r in of_type(resources, "service:Service")}
    used = {
        api
        for r in resources
        for prefix, api in API_OF_TYPE_PREFIX.items()
        if r.type.startswith(prefix)
    }
    used |= {"batch.googleapis.com", "logging.googleapis.com", "pubsub.googleapis.com"}
    assert used <= restricted, used - restricted
    assert used <= enabled, used - enabled
    # Every enabled data API is restricted, and more: every data service usable from the
    # node, enabled or not, so enabling one later does not open a hole.
    assert enabled - set(CONTROL_PLANE_APIS) <= restricted
    assert {"aiplatform.googleapis.com", "healthcare.googleapis.com"} <= restricted
    assert perimeter.inputs["status"]["resources"] == [
        f"projects/{stack_file(node)['projectNumber']}"
    ]


@pytest.mark.parametrize("node", NODES)
def test_the_only_egress_is_the_federation_identity_to_the_hubs_pubsub(
    captured: dict[str, list[CapturedResource]], node: str
) -> None:
    cfg = stack_file(node)
    status = one(captured[node], ":ServicePerimeter").inputs["status"]
    egress, image = status["egressPolicies"]
    # The second way out: Batch's and Compute's agents reading the boot image (B3).
    assert image["egressTo"]["resources"] == [f"projects/{cfg['batchImageProjectNumber']}"]
    assert [o["serviceName"] for o in image["egressTo"]["operations"]] == ["compute.googleapis.com"]
    assert all(
        i.startswith(f"serviceAccount:service-{cfg['projectNumber']}@")
        for i in image["egressFrom"]["identities"]
    )
    assert egress["egressFrom"] == {
        "identities": [f"serviceAccount:federation-worker@{cfg['project']}.iam.gserviceaccount.com"]
    }
    assert egress["egressTo"]["resources"] == [f"projects/{cfg['hubProjectNumber']}"]
    (operation,) = egress["egressTo"]["operations"]
    assert operation["serviceName"] == "pubsub.googleapis.com"
    methods = {m["method"] for m in operation["methodSelectors"]}
    assert "google.pubsub.v1.Publisher.Publish" in methods
    assert "google.pubsub.v1.Subscriber.Pull" in methods
    assert all(m.startswith("google.pubsub.v1.") for m in methods)
    (ingress,) = status["ingressPolicies"]
    assert ingress["ingressFrom"]["identities"] == [cfg["deployer"]]


@pytest.mark.parametrize("node", NODES)
def test_tables_are_exactly_all_tables_with_their_schemas(
    captured: dict[str, list[CapturedResource]], node: str
) -> None:
    tables = {t.inputs["tableId"]: t.inputs for t in of_type(captured[node], ":Table")}
    views = {v.name for d in DOMAINS for v in d.views}
    assert set(tables) == {t.name for t in ALL_TABLES} | views
    for table in ALL_TABLES:
        declared = tables[table.name]
        hive_keys = table.external.hive_partition_keys if table.external else ()
        schema = [c for c in json.loads(table.bigquery_json()) if c["name"] not in hive_keys]
        assert json.loads(declared["schema"]) == schema
        assert declared["datasetId"] == domain_of(table).dataset
        assert declared["deletionProtection"] is True
        assert declared.get("clusterings", []) == list(table.clustering)
        if table.partitioning is not None:
            assert (
                declared.get("timePartitioning", {}).get("field") == table.partitioning.column
                or declared.get("rangePartitioning", {}).get("field") == table.partitioning.column
            )


@pytest.mark.parametrize("node", NODES)
def test_buckets_are_private_versioned_and_kept(
    captured: dict[str, list[CapturedResource]], node: str
) -> None:
    project = stack_file(node)["project"]
    buckets = of_type(captured[node], ":Bucket")
    assert {b.inputs["name"] for b in buckets} == {
        f"{project}-raw-input",
        f"{project}-staging",
        f"{project}-results",
    }
    for b in buckets:
        assert b.inputs["uniformBucketLevelAccess"] is True
        assert b.inputs["publicAccessPrevention"] == "enforced"
        assert b.inputs["versioning"] == {"enabled": True}
        assert b.inputs["forceDestroy"] is False


@pytest.mark.parametrize("node", NODES)
def test_every_cloud_resource_sits_under_a_sovereign_component(
    captured: dict[str, list[CapturedResource]], node: str
) -> None:
    by_urn = {r.urn: r for r in captured[node]}
    for r in captured[node]:
        if r.type.startswith("gcp:"):
            assert r.parent is not None and by_urn[r.parent].type.startswith("sovereign:"), r.urn
        elif r.type.startswith("sovereign:"):
            assert r.parent is not None and by_urn[r.parent].type == "pulumi:pulumi:Stack"


def test_us_and_eu_differ_only_in_their_per_node_facts(
    captured: dict[str, list[CapturedResource]],
) -> None:
    us, eu = stack_file("us"), stack_file("eu")
    swaps = [
        ("sovereign-genomics-us", "sovereign-genomics-eu"),
        (us["projectNumber"], eu["projectNumber"]),
        (us["project"], eu["project"]),
        (us["region"], eu["region"]),
        ("sovereign-us", "sovereign-eu"),
        ("node us", "node eu"),
        ("sovereign_node_us", "sovereign_node_eu"),
        ("confidential-batch-us", "confidential-batch-eu"),
        ("sovereign_deployer_us", "sovereign_deployer_eu"),
        ("deployer of sovereign node us", "deployer of sovereign node eu"),
    ]

    def normalised(resources: list[CapturedResource], direction: int) -> str:
        text = json.dumps(
            [(r.type, r.name, r.inputs, r.protect) for r in resources], sort_keys=True
        )
        for pair in swaps:
            text = text.replace(pair[direction], "<fact>")
        return text

    assert normalised(captured["us"], 0) == normalised(captured["eu"], 1)


def test_a_separate_key_project_holds_the_keys_and_is_fenced_too() -> None:
    from dataclasses import replace

    from infra.policy.config import config_for_stack
    from infra.policy.sovereign_policies import evaluate
    from infra.policy.sovereign_policies.model import resource_from

    key_project = {"project": "fed-keys-us", "number": "100000000101"}
    resources = capture_stack("us", {"keyProject": key_project})
    assert {r.inputs["project"] for r in of_type(resources, ":KeyRing")} == {"fed-keys-us"}
    fence = one(resources, ":ServicePerimeter").inputs["status"]["resources"]
    assert fence == ["projects/100000000001", "projects/100000000101"]
    cmek_projects = next(r for r in resources if r.name.endswith("restrictCmekCryptoKeyProjects"))
    assert cmek_projects.inputs["spec"]["rules"][0]["values"]["allowedValues"] == [
        "under:projects/fed-keys-us",
        "under:projects/fed-node-us",
    ]
    config = replace(
        config_for_stack("us"), key_project="fed-keys-us", key_project_number="100000000101"
    )
    assert evaluate([resource_from(r) for r in resources], config) == []
    # The same stack judged without the key project in config: every CMEK user is flagged.
    flagged = {
        v.policy for v in evaluate([resource_from(r) for r in resources], config_for_stack("us"))
    }
    assert "encryption-key-placement" in flagged
