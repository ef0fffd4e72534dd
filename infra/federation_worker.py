"""The node's federation worker on Confidential Space, and the one dataset it writes.

Google's Confidential Space is the reference for exactly this: a Confidential VM (AMD SEV)
boots Google's hardened `confidential-space` image (project `confidential-space-images`;
not its debug family, which lets an operator in), whose launcher runs the one container
named by the `tee-image-reference` metadata key and obtains, every hour, an OIDC
attestation token from `https://confidentialcomputing.googleapis.com/` that states the
image digest, the software (`swname`), the image's support attributes and the VM's project
and service account. A workload identity pool in the node's project trusts that issuer only
for tokens whose claims match (the provider's attribute condition); the node's signing key,
its datasets' read access and the ledger's write access are granted to the pool's
principalSet of that image digest, never to a service account another VM could wear.

Restart on failure, twice over: `tee-restart-policy=Always` restarts the container when it
exits, and a regional managed instance group of size 1 recreates the VM when it stops or
its zone fails (a MIG repairs an instance that is not RUNNING without any health check; a
health-check autohealer would need an HTTP endpoint in the worker and an ingress firewall
hole for Google's probers, which the node's network denies).

The VM's own service account (`federation-worker`) gets only what Confidential Space needs
(roles/confidentialcomputing.workloadUser to obtain the token, roles/logging.logWriter for
the launcher's and the container's logs, artifactregistry.reader on the node's repository to
pull the image) plus, in the hub stack, its own subscription and the upload topic. That is
the one deviation from "nothing but Confidential Space": VPC-SC egress rules and the hub's
Pub/Sub IAM name service accounts, and a Pub/Sub message is worthless without the attested
signature the hub verifies against the pinned roster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import ConfigError, WorkerDeployment
from workloads.contracts.federation_service import (
    ATTESTATION_POOL_ID,
    ATTESTATION_PROVIDER_ID,
    LEDGER_DATASET,
    WorkerSettings,
    attestation_audience,
    attested_principal_set,
)

# Google's hardened production image (the debug family is `confidential-space-debug`).
CONFIDENTIAL_SPACE_IMAGE = (
    "projects/confidential-space-images/global/images/family/confidential-space"
)
ATTESTATION_ISSUER = "https://confidentialcomputing.googleapis.com/"
STS_AUDIENCE = "https://sts.googleapis.com"
BOOT_DISK_GB = 30  # the hardened image's minimum is small; the worker keeps nothing on disk
# Roles of the attested image (principalSet) on the project: BigQuery jobs in the node.
ATTESTED_PROJECT_ROLES: tuple[str, ...] = ("roles/bigquery.jobUser",)
LEDGER_WRITER_ROLE = "roles/bigquery.dataEditor"


def attribute_condition(*, digest: str, project: str, service_account: str) -> str:
    """The attestation policy (CEL) of the provider, after Google's Confidential Space docs:
    the production image (support attribute STABLE, not debug), this image digest, a VM of
    this node project running as the worker's service account."""
    return " && ".join(
        (
            "assertion.swname == 'CONFIDENTIAL_SPACE'",
            "'STABLE' in assertion.submods.confidential_space.support_attributes",
            "assertion.dbgstat == 'disabled-since-boot'",
            f"assertion.submods.container.image_digest == '{digest}'",
            f"assertion.submods.gce.project_id == '{project}'",
            f"'{service_account}' in assertion.google_service_accounts",
        )
    )


# google.subject identifies one VM running one image; attribute.image_digest is what the
# grants' principalSet names.
ATTRIBUTE_MAPPING: dict[str, str] = {
    "google.subject": (
        '"gcpcs::" + assertion.submods.container.image_digest + "::" + '
        'assertion.submods.gce.project_number + "::" + assertion.submods.gce.instance_id'
    ),
    "attribute.image_digest": "assertion.submods.container.image_digest",
}


def ledger_policy(writer: str | None) -> str:
    """The ledger dataset's whole access list: the attested worker writes, nobody else."""
    bindings = [{"role": LEDGER_WRITER_ROLE, "members": [writer]}] if writer else []
    return json.dumps({"bindings": bindings}, sort_keys=True)


@dataclass(frozen=True)
class WorkerInputs:
    """What the worker is wired to (built by infra/node.py)."""

    project: str
    project_number: str
    region: str
    node: str
    hub_project: str
    repository_url: str
    subnet: pulumi.Input[str]
    service_account_email: pulumi.Input[str]
    compute_key: pulumi.Input[str]
    bigquery_key: pulumi.Input[str]
    signing_key: pulumi.Input[str]  # the key id; the worker signs with version 1
    datasets: Mapping[str, pulumi.Input[str]]  # domain -> dataset id


class FederationWorker(pulumi.ComponentResource):
    """`ledger` always (the guard's state outlives any deployment); the pool, provider,
    template and instance group only when `deployment.image_digest` is set."""

    def __init__(
        self,
        name: str,
        *,
        deployment: WorkerDeployment,
        on: WorkerInputs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:node:FederationWorker", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        digest = deployment.image_digest
        self.principal = attested_principal_set(on.project_number, digest) if digest else None
        self.ledger = gcp.bigquery.Dataset(
            f"{name}-ledger",
            project=on.project,
            dataset_id=LEDGER_DATASET,
            location=on.region,
            description=(
                "The federation guard's state (privacy odometer, release log): written only "
                "by the attested worker image. Never leaves the node."
            ),
            default_encryption_configuration=gcp.bigquery.DatasetDefaultEncryptionConfigurationArgs(
                kms_key_name=on.bigquery_key
            ),
            delete_contents_on_destroy=False,
            opts=child,
        )
        ledger_access = gcp.bigquery.DatasetIamPolicy(
            f"{name}-ledger-access",
            project=on.project,
            dataset_id=self.ledger.dataset_id,
            policy_data=ledger_policy(self.principal),
            opts=child,
        )
        self.pool: gcp.iam.WorkloadIdentityPool | None = None
        self.provider: gcp.iam.WorkloadIdentityPoolProvider | None = None
        self.template: gcp.compute.RegionInstanceTemplate | None = None
        self.group: gcp.compute.RegionInstanceGroupManager | None = None
        image = deployment.image(on.repository_url)
        if image is None or self.principal is None or digest is None:
            self.register_outputs({"ledger": self.ledger.dataset_id})
            return
        self.pool = gcp.iam.WorkloadIdentityPool(
            f"{name}-pool",
            project=on.project,
            workload_identity_pool_id=ATTESTATION_POOL_ID,
            display_name="Attested federation worker",
            description="Confidential Space tokens of the node's worker image only",
            opts=child,
        )
        self.provider = gcp.iam.WorkloadIdentityPoolProvider(
            f"{name}-provider",
            project=on.project,
            workload_identity_pool_id=self.pool.workload_identity_pool_id,
            workload_identity_pool_provider_id=ATTESTATION_PROVIDER_ID,
            display_name="Confidential Space attestation",
            oidc=gcp.iam.WorkloadIdentityPoolProviderOidcArgs(
                issuer_uri=ATTESTATION_ISSUER, allowed_audiences=[STS_AUDIENCE]
            ),
            attribute_mapping=ATTRIBUTE_MAPPING,
            attribute_condition=pulumi.Output.from_input(on.service_account_email).apply(
                lambda email: attribute_condition(
                    digest=digest, project=on.project, service_account=email
                )
            ),
            opts=child,
        )
        grants: list[pulumi.Resource] = [ledger_access, self.provider]
        for role in ATTESTED_PROJECT_ROLES:
            grant = gcp.projects.IAMMember(
                f"{name}-attested-{role.removeprefix('roles/').replace('.', '-')}",
                project=on.project,
                role=role,
                member=self.principal,
                opts=child,
            )
            grants.append(grant)
        settings = pulumi.Output.all(
            on.signing_key,
            on.bigquery_key,
            pulumi.Output.all(*on.datasets.values()),
            self.ledger.dataset_id,
            _hub_roster(deployment.hub_stack),
        ).apply(
            lambda v: WorkerSettings(
                node=on.node,
                node_project=on.project,
                region=on.region,
                hub_project=on.hub_project,
                signing_key=f"{v[0]}/cryptoKeyVersions/1",
                datasets=json.dumps(
                    {d: f"{on.project}.{i}" for d, i in zip(on.datasets, v[2], strict=True)},
                    sort_keys=True,
                ),
                ledger_dataset=f"{on.project}.{v[3]}",
                bigquery_kms_key=v[1],
                roster=v[4],
                policy=deployment.policy_toml,
                identity_provider=attestation_audience(on.project_number),
            ).environment()
        )
        metadata = settings.apply(
            lambda env: {
                "tee-image-reference": image,
                "tee-restart-policy": "Always",
                # Cloud Logging only (the node's regional CMEK log bucket through its sink),
                # not the serial console, which stays disabled. The worker logs progress and
                # error types, never rows. The image must allow it: the launch policy label
                # tee.launch_policy.log_redirect=always.
                "tee-container-log-redirect": "cloud_logging",
                **{f"tee-env-{k}": val for k, val in sorted(env.items())},
                "block-project-ssh-keys": "TRUE",
                "enable-oslogin": "TRUE",
                "serial-port-enable": "FALSE",
            }
        )
        self.template = gcp.compute.RegionInstanceTemplate(
            f"{name}-template",
            project=on.project,
            region=on.region,
            # A metadata change (new digest, roster) creates the new template first.
            name_prefix=f"federation-worker-{on.node}-",
            description="Federation worker on Confidential Space (AMD SEV, hardened image)",
            machine_type=deployment.machine_type,
            confidential_instance_config=gcp.compute.RegionInstanceTemplateConfidentialInstanceConfigArgs(
                confidential_instance_type="SEV"
            ),
            shielded_instance_config=gcp.compute.RegionInstanceTemplateShieldedInstanceConfigArgs(
                enable_secure_boot=True, enable_vtpm=True, enable_integrity_monitoring=True
            ),
            disks=[
                gcp.compute.RegionInstanceTemplateDiskArgs(
                    boot=True,
                    auto_delete=True,
                    source_image=CONFIDENTIAL_SPACE_IMAGE,
                    disk_size_gb=BOOT_DISK_GB,
                    disk_type="pd-balanced",
                    disk_encryption_key=gcp.compute.RegionInstanceTemplateDiskDiskEncryptionKeyArgs(
                        kms_key_self_link=on.compute_key
                    ),
                )
            ],
            # No access_configs: no external IP. Google APIs through the restricted VIP.
            network_interfaces=[
                gcp.compute.RegionInstanceTemplateNetworkInterfaceArgs(subnetwork=on.subnet)
            ],
            scheduling=gcp.compute.RegionInstanceTemplateSchedulingArgs(
                on_host_maintenance="TERMINATE",  # SEV VMs cannot live-migrate
                provisioning_model="STANDARD",
                automatic_restart=True,
            ),
            service_account=gcp.compute.RegionInstanceTemplateServiceAccountArgs(
                email=on.service_account_email, scopes=["cloud-platform"]
            ),
            metadata=metadata,
            opts=child,
        )
        self.group = gcp.compute.RegionInstanceGroupManager(
            f"{name}-group",
            project=on.project,
            region=on.region,
            name=f"federation-worker-{on.node}",
            base_instance_name=f"federation-worker-{on.node}",
            versions=[
                gcp.compute.RegionInstanceGroupManagerVersionArgs(
                    instance_template=self.template.self_link, name="worker"
                )
            ],
            target_size=1,
            # Replace, never run two workers of one node at once (one signer per node).
            update_policy=gcp.compute.RegionInstanceGroupManagerUpdatePolicyArgs(
                type="PROACTIVE",
                minimal_action="REPLACE",
                max_surge_fixed=0,
                max_unavailable_fixed=3,  # regional MIGs count per zone: at least 3 when surge is 0
            ),
            wait_for_instances=False,
            # The VM attests as soon as it boots: its provider and grants come first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=grants),
        )
        self.register_outputs(
            {
                "ledger": self.ledger.dataset_id,
                "principal": self.principal,
                "group": self.group.name,
            }
        )


def _hub_roster(hub_stack: str) -> pulumi.Output[str]:
    """The roster the hub stack renders (its `roster` output), read at node `up` time: the
    hub cannot change a running worker's roster; the node operator's next `up` (whose
    preview shows the new tee-env-SOVEREIGN_ROSTER) does."""
    hub = pulumi.StackReference(f"hub-{hub_stack.replace('/', '-')}", stack_name=hub_stack)

    def pinned(roster: object) -> str:
        if not isinstance(roster, str) or not roster:
            raise ConfigError(
                f"the hub stack {hub_stack} exports no roster, so the worker cannot pin its "
                "peers; fix: pin hubSigningKey and every nodes[].signingKey in the hub's "
                "stack file and `pulumi up` the hub first, or set hubStack (docs/infra.md)"
            )
        return roster

    return hub.get_output("roster").apply(pinned)
