"""Issue 16: the worker on Confidential Space (node) and the coordinator job (hub)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from infra_testkit import DIGEST, HUB_ON, HUB_ROSTER, PINNED_KEYS, WORKER_ON, of_type, one

from infra.capture import REPO_ROOT, CapturedStack, capture, capture_stack
from infra.config import ConfigError
from infra.render import posture_markdown
from workloads.contracts import catalogue
from workloads.contracts.federation_service import (
    LEDGER_DATASET,
    WorkerSettings,
    attested_principal_set,
    roster_json,
)
from workloads.federation.roster import Roster

KEYS = PINNED_KEYS


@pytest.fixture(scope="module")
def worker() -> CapturedStack:
    return capture("us", WORKER_ON, references=HUB_ROSTER)


@pytest.fixture(scope="module")
def hub() -> CapturedStack:
    return capture("hub", HUB_ON)


def test_without_a_digest_nothing_runs_and_nobody_reads_or_signs() -> None:
    stack = capture("us")
    assert not of_type(stack.resources, ":RegionInstanceTemplate")
    assert not of_type(stack.resources, ":WorkloadIdentityPool")
    assert not [
        g for g in of_type(stack.resources, "IAMMember") if "principalSet" in g.inputs["member"]
    ]
    for policy in of_type(stack.resources, ":DatasetIamPolicy"):
        roles = {b["role"] for b in json.loads(policy.inputs["policyData"])["bindings"]}
        assert "roles/bigquery.dataViewer" not in roles  # no reader until the worker exists
    assert "not deployed**: set `workerImageDigest`" in posture_markdown(
        "us", stack.resources, {"sovereign-genomics:role": "node"}
    )


def test_the_worker_is_a_hardened_confidential_space_vm_without_external_ip(
    worker: CapturedStack,
) -> None:
    t = one(worker.resources, ":RegionInstanceTemplate").inputs
    assert t["confidentialInstanceConfig"] == {"confidentialInstanceType": "SEV"}
    assert t["machineType"].startswith("n2d-")
    (disk,) = t["disks"]
    assert disk["sourceImage"].endswith(
        "/confidential-space-images/global/images/family/confidential-space"
    )
    assert disk["diskEncryptionKey"]["kmsKeySelfLink"].endswith("/cryptoKeys/compute-key")
    (nic,) = t["networkInterfaces"]
    assert "accessConfigs" not in nic and nic["subnetwork"].endswith(
        "/subnetworks/network-us-central1"
    )
    assert t["serviceAccount"]["email"] == "federation-worker@fed-node-us.iam.gserviceaccount.com"
    meta = t["metadata"]
    assert meta["tee-image-reference"] == (
        f"us-central1-docker.pkg.dev/fed-node-us/workloads/federation-worker@{DIGEST}"
    )
    assert meta["tee-restart-policy"] == "Always"
    assert meta["tee-container-log-redirect"] == "cloud_logging"
    assert meta["serial-port-enable"] == "FALSE"
    # Every WorkerSettings variable, and the settings read back as the entrypoint reads them.
    env = {k.removeprefix("tee-env-"): v for k, v in meta.items() if k.startswith("tee-env-")}
    settings = WorkerSettings.from_environment(env)
    assert settings.node == "us" and settings.hub_project == "fed-hub"
    assert settings.ledger_dataset == f"fed-node-us.{LEDGER_DATASET}"
    assert settings.dataset_ids()["genomics"] == "fed-node-us.hospital_data"
    assert settings.signing_key.endswith("/cryptoKeys/federation-signing/cryptoKeyVersions/1")
    assert settings.roster == '{"roster": "pinned"}'  # the hub stack's output, as read
    assert settings.identity_provider.endswith(
        "/workloadIdentityPools/federation-attested/providers/confidential-space"
    )
    group = one(worker.resources, ":RegionInstanceGroupManager").inputs
    assert group["targetSize"] == 1 and group["region"] == "us-central1"


def test_data_and_key_go_to_the_attested_digest_only(worker: CapturedStack) -> None:
    principal = attested_principal_set("100000000001", DIGEST)
    provider = one(worker.resources, ":WorkloadIdentityPoolProvider").inputs
    assert provider["oidc"] == {
        "issuerUri": "https://confidentialcomputing.googleapis.com/",
        "allowedAudiences": ["https://sts.googleapis.com"],
    }
    condition = provider["attributeCondition"]
    for clause in (
        "assertion.swname == 'CONFIDENTIAL_SPACE'",
        "'STABLE' in assertion.submods.confidential_space.support_attributes",
        f"assertion.submods.container.image_digest == '{DIGEST}'",
        "assertion.submods.gce.project_id == 'fed-node-us'",
        "'federation-worker@fed-node-us.iam.gserviceaccount.com' in "
        "assertion.google_service_accounts",
    ):
        assert clause in condition
    grants = {
        (r.name, r.inputs.get("role"))
        for r in worker.resources
        if r.inputs.get("member") == principal
    }
    assert grants == {
        ("signing-publicKeyViewer", "roles/cloudkms.publicKeyViewer"),
        ("signing-signerVerifier", "roles/cloudkms.signerVerifier"),
        ("federation-worker-attested-bigquery-jobUser", "roles/bigquery.jobUser"),
    }
    readers, writers = set(), set()
    for policy in of_type(worker.resources, ":DatasetIamPolicy"):
        for b in json.loads(policy.inputs["policyData"])["bindings"]:
            if principal in b["members"]:
                (readers if b["role"] == "roles/bigquery.dataViewer" else writers).add(
                    (policy.inputs["datasetId"], b["role"])
                )
    assert {d for d, _ in readers} == {d.dataset for d in catalogue.DOMAINS}
    assert writers == {(LEDGER_DATASET, "roles/bigquery.dataEditor")}
    # The VM's own account: only what Confidential Space needs (and its image).
    vm = "serviceAccount:federation-worker@fed-node-us.iam.gserviceaccount.com"
    assert {r.inputs["role"] for r in worker.resources if r.inputs.get("member") == vm} == {
        "roles/confidentialcomputing.workloadUser",
        "roles/logging.logWriter",
        "roles/artifactregistry.reader",
    }


def test_the_perimeter_lets_the_worker_boot_image_in(worker: CapturedStack) -> None:
    rules = one(worker.resources, ":ServicePerimeter").inputs["status"]["egressPolicies"]
    images = next(
        r for r in rules if r["egressTo"]["operations"][0]["serviceName"].startswith("compute")
    )
    assert images["egressTo"]["resources"] == ["projects/100000000077", "projects/100000000088"]


def test_the_coordinator_job_runs_from_the_hubs_registry_as_itself(hub: CapturedStack) -> None:
    job = one(hub.resources, ":Job").inputs
    assert job["location"] == "europe-west1"
    t = job["template"]["template"]
    assert t["serviceAccount"] == "federation-coordinator@fed-hub.iam.gserviceaccount.com"
    assert t["encryptionKey"].endswith("/keyRings/sovereign-hub/cryptoKeys/run-key")
    (container,) = t["containers"]
    assert container["image"] == (
        f"europe-west1-docker.pkg.dev/fed-hub/workloads/federation-coordinator@{DIGEST}"
    )
    env = {e["name"]: e["value"] for e in container["envs"]}
    assert Roster.from_json(env["SOVEREIGN_ROSTER"], "env").node_keys == {
        n: KEYS[n] for n in ("us", "eu", "sg")
    }
    assert env["SOVEREIGN_RESULTS_BUCKET"] == "fed-hub-federation-results"
    (invoker,) = of_type(hub.resources, ":JobIamMember")
    assert (invoker.inputs["role"], invoker.inputs["member"]) == (
        "roles/run.jobsExecutorWithOverrides",
        "group:federation-researchers@example.org",
    )
    assert hub.outputs["roster"] == env["SOVEREIGN_ROSTER"]


def test_the_results_bucket_keeps_every_release(hub: CapturedStack) -> None:
    bucket = next(
        b for b in of_type(hub.resources, ":Bucket") if b.name == "coordinator-results"
    ).inputs
    assert bucket["location"] == "europe-west1"
    assert bucket["uniformBucketLevelAccess"] and bucket["publicAccessPrevention"] == "enforced"
    assert bucket["versioning"] == {"enabled": True}
    assert int(bucket["retentionPolicy"]["retentionPeriod"]) >= 365 * 24 * 3600
    assert bucket["encryption"]["defaultKmsKeyName"].endswith("/cryptoKeys/storage-key")
    grants = {
        (g.inputs["bucket"], g.inputs["role"], g.inputs["member"])
        for g in of_type(hub.resources, ":BucketIAMMember")
    }
    coordinator = "serviceAccount:federation-coordinator@fed-hub.iam.gserviceaccount.com"
    researchers = "group:federation-researchers@example.org"
    assert grants == {
        ("fed-hub-federation-results", "roles/storage.objectCreator", coordinator),
        ("fed-hub-federation-results", "roles/storage.objectViewer", researchers),
        ("fed-hub-federation-specs", "roles/storage.objectCreator", researchers),
        ("fed-hub-federation-specs", "roles/storage.objectViewer", researchers),
        ("fed-hub-federation-specs", "roles/storage.objectViewer", coordinator),
    }
    assert hub.outputs["specs_bucket"] == "fed-hub-federation-specs"


def test_no_job_until_the_roster_is_pinned() -> None:
    stack = capture("hub", {"coordinatorImageDigest": DIGEST})
    assert not of_type(stack.resources, ":Job") and "roster" not in stack.outputs


def test_the_contract_roster_is_the_federation_roster() -> None:
    text = roster_json(KEYS["hub"], {n: KEYS[n] for n in ("us", "sg")})
    roster = Roster.from_json(text, "contract")
    assert roster.to_json() == text


def test_a_new_node_is_a_stack_file_and_a_roster_entry(tmp_path: Path) -> None:
    """sg joins: its own stack file (with its digest) plus its name and key in the hub's
    roster; the program is untouched, and sg's worker reads the roster the hub renders."""
    for name in ("Pulumi.yaml", "Pulumi.us.yaml", "Pulumi.hub.yaml", "Pulumi.sg.yaml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    hub_file = yaml.safe_load((tmp_path / "Pulumi.hub.yaml").read_text())
    hub_file["config"]["sovereign-genomics:hubSigningKey"] = KEYS["hub"]
    hub_file["config"]["sovereign-genomics:nodes"] = HUB_ON["nodes"]
    (tmp_path / "Pulumi.hub.yaml").write_text(yaml.safe_dump(hub_file))
    sg = capture("sg", WORKER_ON, stack_dir=tmp_path)  # StackReference from Pulumi.hub.yaml
    meta = one(sg.resources, ":RegionInstanceTemplate").inputs["metadata"]
    roster = Roster.from_json(meta["tee-env-SOVEREIGN_ROSTER"], "sg worker")
    assert roster.key_of("sg") == KEYS["sg"] and roster.hub_key == KEYS["hub"]
    assert meta["tee-image-reference"].startswith(
        "asia-southeast1-docker.pkg.dev/fed-node-sg/workloads/federation-worker@"
    )


@pytest.mark.parametrize(
    ("stack", "override", "key", "problem"),
    [
        ("us", {"workerImageDigest": "latest"}, "workerImageDigest", "never a tag"),
        ("us", {"workerImageDigest": "sha256:" + "AB" * 32}, "workerImageDigest", "64 hex"),
        (
            "us",
            {"workerImageDigest": DIGEST},
            "confidentialSpaceImageProjectNumber",
            "is missing",
        ),
        (
            "us",
            {**WORKER_ON, "workerMachineType": "e2-standard-2"},
            "workerMachineType",
            "malformed",
        ),
        ("us", {"hubStack": "hub"}, "hubStack", "malformed"),
        ("us", {"federationPolicy": [1]}, "federationPolicy", "mapping"),
        ("hub", {"researchersGroup": None}, "researchersGroup", "is missing"),
        ("hub", {"coordinatorImageDigest": "v1"}, "coordinatorImageDigest", "never a tag"),
        ("hub", {"hubSigningKey": "00"}, "hubSigningKey", "Ed25519"),
        (
            "hub",
            {"nodes": [{"name": "us", "project": "fed-node-us", "signingKey": "zz" * 32}]},
            "nodes[0].signingKey",
            "Ed25519",
        ),
    ],
)
def test_bad_federation_config_names_the_key_and_the_fix(
    stack: str, override: dict[str, object], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        capture_stack(stack, override)
    message = str(err.value)
    assert f"sovereign-genomics:{key}" in message and problem in message, message
    assert "fix:" in message and "\n" not in message


def test_a_worker_without_a_pinned_roster_stops_with_the_fix() -> None:
    """The hub has not exported a roster yet (keys unpinned): the node's up stops."""
    with pytest.raises(Exception, match=r"exports no roster.*fix: pin hubSigningKey"):
        capture_stack("us", WORKER_ON)  # the committed hub file pins no key


def test_the_guard_policy_is_rendered_for_the_worker() -> None:
    stack = capture("us", {**WORKER_ON, "federationPolicy": {"min_k": 20}}, references=HUB_ROSTER)
    meta = one(stack.resources, ":RegionInstanceTemplate").inputs["metadata"]
    assert meta["tee-env-SOVEREIGN_POLICY"] == "min_k = 20\n"


def test_the_posture_shows_what_the_worker_runs_and_who_reads(worker: CapturedStack) -> None:
    values = {"sovereign-genomics:role": "node"}
    posture = posture_markdown("us", worker.resources, values)
    section = posture[posture.index("## Federation services") :]
    assert "external IP no" in section and "restart `Always`" in section
    principal = attested_principal_set("100000000001", DIGEST)
    assert f"data and key access only for `{principal}`" in section
    assert "assertion.swname == 'CONFIDENTIAL_SPACE'" in section


def test_the_worker_reads_its_data_as_the_attested_identity_the_stack_trusts(
    worker: CapturedStack,
) -> None:
    """The entrypoint's BigQuery and KMS clients use the pool's federated credentials whose
    audience is the provider this stack declares, from Confidential Space's token file."""
    from workloads.contracts.federation_service import ATTESTATION_TOKEN_PATH
    from workloads.federation.service import _attested_clients

    meta = one(worker.resources, ":RegionInstanceTemplate").inputs["metadata"]
    env = {k.removeprefix("tee-env-"): v for k, v in meta.items() if k.startswith("tee-env-")}
    bigquery_client, kms_client = _attested_clients(WorkerSettings.from_environment(env))
    provider = one(worker.resources, ":WorkloadIdentityPoolProvider").inputs
    audience = (
        f"//iam.googleapis.com/projects/100000000001/locations/global/workloadIdentityPools/"
        f"{provider['workloadIdentityPoolId']}/providers/{provider['workloadIdentityPoolProviderId']}"
    )
    for credentials in (bigquery_client._credentials, kms_client._transport._credentials):
        assert credentials._audience == audience
        assert credentials._credential_source_file == ATTESTATION_TOKEN_PATH
    assert bigquery_client.project == "fed-node-us"
