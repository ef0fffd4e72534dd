"""A small compliant node, declared with the real pulumi_gcp classes, for policy unit tests.

It covers resource kinds the real stacks may not declare (an instance, an ingress deny
rule, a dataset access list, a Batch job) so every policy has something to pass and to
break. Run it through infra.capture.capture_stack(program=reference_node) so the props are
exactly what the pulumi-gcp SDK sends (camelCase) with the effective protect option.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_gcp as gcp

from infra import config as stack_config
from workloads.contracts.batch import BatchTarget, TaskRequest, job_spec, spec_json

COMPUTE_SA = "batch@{project}.iam.gserviceaccount.com"


class _BatchJobProvider(pulumi.dynamic.ResourceProvider):
    def create(self, props: Any) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(id_=str(props["jobId"]), outs=props)


class BatchJob(pulumi.dynamic.Resource):
    """Type token pulumi-python:dynamic:Resource, inputs project, location, jobId, jobJson."""


def batch_job_json(project: str, region: str, template: str, sa_email: str) -> str:
    """A real Batch job spec (workloads.contracts.batch) as a dynamic resource's jobJson."""
    target = BatchTarget[str](
        project=project,
        region=region,
        instance_template=template,
        service_account=sa_email,
        input_bucket=f"{project}-raw",
        staging_bucket=f"{project}-staging",
        image_uri=f"{region}-docker.pkg.dev/{project}/images/sovereign-tasks:latest",
        bigquery_kms_key=f"projects/{project}/locations/{region}/keyRings/r/cryptoKeys/bigquery",
    )
    return spec_json(job_spec(target, TaskRequest("vcf", ("vcf/sample-1.vcf.gz",))))


def reference_node() -> None:
    cfg = stack_config.load()
    assert isinstance(cfg, stack_config.NodeConfig)
    project, region = cfg.project, cfg.region
    protected = pulumi.ResourceOptions(protect=True)
    ring = gcp.kms.KeyRing("ring", project=project, location=region, name="ring", opts=protected)
    key = gcp.kms.CryptoKey(
        "key",
        name="key",
        key_ring=ring.id,
        rotation_period="7776000s",
        deletion_policy="PREVENT",
        opts=protected,
    )
    gcp.kms.CryptoKeyIAMMember(
        "key-agent",
        crypto_key_id=key.id,
        role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
        member=f"serviceAccount:bq-{cfg.project_number}@bigquery-encryption.iam.gserviceaccount.com",
    )
    gcp.projects.Service("svc-bigquery", project=project, service="bigquery.googleapis.com")
    gcp.projects.Service("svc-crm", project=project, service="cloudresourcemanager.googleapis.com")
    dataset = gcp.bigquery.Dataset(
        "dataset",
        project=project,
        dataset_id="hospital_data",
        location=region,
        default_encryption_configuration={"kms_key_name": key.id},
        accesses=[{"role": "OWNER", "special_group": "projectOwners"}],
    )
    gcp.bigquery.Table(
        "table",
        project=project,
        dataset_id=dataset.dataset_id,
        table_id="patients",
        encryption_configuration={"kms_key_name": key.id},
        deletion_protection=True,
    )
    gcp.storage.Bucket(
        "bucket",
        project=project,
        name=f"{project}-raw",
        location=region.upper(),
        encryption={"default_kms_key_name": key.id},
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        versioning={"enabled": True},
    )
    gcp.artifactregistry.Repository(
        "repo",
        project=project,
        location=region,
        repository_id="images",
        format="DOCKER",
        kms_key_name=key.id,
    )
    gcp.pubsub.Topic(
        "topic",
        project=project,
        name="events",
        kms_key_name=key.id,
        message_storage_policy={"allowed_persistence_regions": [region]},
    )
    network = gcp.compute.Network("vpc", project=project, name="vpc", auto_create_subnetworks=False)
    subnet = gcp.compute.Subnetwork(
        "subnet",
        project=project,
        name="subnet",
        network=network.id,
        region=region,
        ip_cidr_range="10.10.0.0/24",
        private_ip_google_access=True,
        log_config={"aggregation_interval": "INTERVAL_5_SEC", "flow_sampling": 0.5},
    )
    gcp.compute.Firewall(
        "deny-ingress",
        project=project,
        name="deny-ingress",
        network=network.id,
        direction="INGRESS",
        source_ranges=["0.0.0.0/0"],
        denies=[{"protocol": "all"}],
    )
    sa_email = COMPUTE_SA.format(project=project)
    account = gcp.serviceaccount.Account("batch-sa", project=project, account_id="batch")
    vm_shape: dict[str, Any] = {
        "machine_type": cfg.batch.machine_type,
        "confidential_instance_config": {"confidential_instance_type": "SEV"},
        "shielded_instance_config": {
            "enable_secure_boot": True,
            "enable_vtpm": True,
            "enable_integrity_monitoring": True,
        },
        "network_interfaces": [{"subnetwork": subnet.id}],
        "service_account": {"email": account.email, "scopes": ["cloud-platform"]},
        "scheduling": {"on_host_maintenance": "TERMINATE"},
    }
    template = gcp.compute.InstanceTemplate(
        "template",
        project=project,
        name="confidential-batch",
        disks=[
            {
                "source_image": "cos",
                "boot": True,
                "disk_encryption_key": {"kms_key_self_link": key.id},
            }
        ],
        **vm_shape,
    )
    gcp.compute.Instance(
        "vm",
        project=project,
        name="vm",
        zone=f"{region}-a",
        boot_disk={"initialize_params": {"image": "cos"}, "kms_key_self_link": key.id},
        **vm_shape,
    )
    BatchJob(
        _BatchJobProvider(),
        "vcf-job",
        {
            "project": project,
            "location": region,
            "jobId": "vcf-1",
            "jobJson": template.self_link.apply(
                lambda link: batch_job_json(project, region, link, sa_email)
            ),
        },
    )
    perimeter = {
        "resources": [f"projects/{cfg.project_number}"],
        "restricted_services": [
            "artifactregistry.googleapis.com",
            "batch.googleapis.com",
            "bigquery.googleapis.com",
            "cloudkms.googleapis.com",
            "compute.googleapis.com",
            "iam.googleapis.com",
            "pubsub.googleapis.com",
            "storage.googleapis.com",
        ],
        "egress_policies": [
            {
                "egress_from": {
                    "identities": [
                        f"serviceAccount:federation-worker@{project}.iam.gserviceaccount.com"
                    ]
                },
                "egress_to": {
                    "resources": [f"projects/{cfg.hub_project_number}"],
                    "operations": [
                        {
                            "service_name": "pubsub.googleapis.com",
                            "method_selectors": [{"method": "google.pubsub.v1.Publisher.Publish"}],
                        }
                    ],
                },
            }
        ],
    }
    gcp.accesscontextmanager.ServicePerimeter(
        "perimeter",
        parent=f"accessPolicies/{cfg.access_policy}",
        name=f"accessPolicies/{cfg.access_policy}/servicePerimeters/ref",
        title="ref",
        status=perimeter,
    )
    rules: dict[str, Any] = {
        "gcp.resourceLocations": {"values": {"allowed_values": list(cfg.allowed_locations)}},
        "compute.restrictNonConfidentialComputing": {
            "values": {"denied_values": ["compute.googleapis.com"]}
        },
        "iam.disableServiceAccountKeyCreation": {"enforce": "TRUE"},
    }
    for constraint, rule in rules.items():
        gcp.orgpolicy.Policy(
            f"org-{constraint}",
            parent=f"projects/{project}",
            name=f"projects/{project}/policies/{constraint}",
            spec={"rules": [rule]},
        )
