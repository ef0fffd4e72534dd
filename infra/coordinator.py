"""The hub's coordinator: a Cloud Run job, its signing key, its image registry, and the
results bucket that keeps every release (the audit trail).

- The job (Cloud Run v2, the hub's region) runs the `federation-coordinator` image by
  digest from the hub's own Artifact Registry, as its own service account
  (COORDINATOR_ACCOUNT_ID), with CoordinatorSettings as its environment and the hub's `run`
  key as its CMEK. The hub holds no patient data, so no Confidential VM is needed here.
- The researchers' group (`researchersGroup`) may execute it with argument overrides (the
  run's spec): roles/run.jobsExecutorWithOverrides on the job, nothing more. Not
  roles/run.developer, which could also change the job's image, identity or settings.
- The results bucket (regional, CMEK, uniform access, public access prevention, versioned,
  with a retention policy): the coordinator may only create objects (objectCreator: no
  read, no delete, hence no overwrite), the researchers' group may only read them. Every
  released result lands with its run metadata and cannot be removed or replaced for
  RESULTS_RETENTION_S, by anyone (the policy can be locked for good: docs/infra.md).
- The coordinator's signing key (the same shape as a node's: EC_SIGN_ED25519) signs hub
  steps; its public key is pinned as `hubSigningKey` in the roster.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_gcp as gcp

from infra.config import CoordinatorDeployment
from infra.registry import Registry
from infra.signing_key import SigningKey
from workloads.contracts.federation_service import (
    COORDINATOR_IMAGE_NAME,
    RESULTS_BUCKET_PURPOSE,
    SPECS_BUCKET_PURPOSE,
    CoordinatorSettings,
    image_by_digest,
)

RESULTS_RETENTION_S = 10 * 365 * 24 * 3600  # 10 years: research records outlive projects
EXECUTOR_ROLE = "roles/run.jobsExecutorWithOverrides"
JOB_NAME = "federation-coordinator"
JOB_TIMEOUT = "3600s"  # one federated run; a longer one is resumed by a new execution


def results_bucket_name(project: str) -> str:
    return f"{project}-{RESULTS_BUCKET_PURPOSE}"


def specs_bucket_name(project: str) -> str:
    return f"{project}-{SPECS_BUCKET_PURPOSE}"


class Coordinator(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        project: str,
        region: str,
        deployment: CoordinatorDeployment,
        account: gcp.serviceaccount.Account,
        key_ring: pulumi.Input[str],
        keys: Mapping[str, pulumi.Input[str]],  # purpose -> key id: storage, artifactregistry, run
        depends_on: Mapping[str, list[pulumi.Resource]],  # purpose -> key and its grant
        roster: str | None,  # the pinned roster (JSON); None: not complete yet
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:hub:Coordinator", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        coordinator = account.member
        researchers = f"group:{deployment.researchers_group}"

        def after(purpose: str) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=depends_on[purpose])

        self.registry = Registry(
            f"{name}-registry",
            project=project,
            region=region,
            kms_key=keys["artifactregistry"],
            description="The hub's coordinator image (run by digest)",
            opts=after("artifactregistry"),
        )
        self.signing = SigningKey(
            f"{name}-signing", key_ring=key_ring, signer=coordinator, opts=child
        )
        self.results = gcp.storage.Bucket(
            f"{name}-results",
            project=project,
            name=results_bucket_name(project),
            location=region,
            storage_class="STANDARD",
            encryption=gcp.storage.BucketEncryptionArgs(default_kms_key_name=keys["storage"]),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning=gcp.storage.BucketVersioningArgs(enabled=True),
            retention_policy=gcp.storage.BucketRetentionPolicyArgs(
                retention_period=str(RESULTS_RETENTION_S), is_locked=False
            ),
            force_destroy=False,
            opts=after("storage"),
        )
        # The specs researchers run (`--spec gs://...`): they create them (never replace
        # them: the audit record's spec path keeps meaning what it meant), the coordinator
        # reads them.
        self.specs = gcp.storage.Bucket(
            f"{name}-specs",
            project=project,
            name=specs_bucket_name(project),
            location=region,
            storage_class="STANDARD",
            encryption=gcp.storage.BucketEncryptionArgs(default_kms_key_name=keys["storage"]),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning=gcp.storage.BucketVersioningArgs(enabled=True),
            force_destroy=False,
            opts=after("storage"),
        )
        for label, bucket, role, member in (
            (
                "coordinator-creates-results",
                self.results,
                "roles/storage.objectCreator",
                coordinator,
            ),
            ("researchers-read-results", self.results, "roles/storage.objectViewer", researchers),
            ("researchers-create-specs", self.specs, "roles/storage.objectCreator", researchers),
            ("researchers-read-specs", self.specs, "roles/storage.objectViewer", researchers),
            ("coordinator-reads-specs", self.specs, "roles/storage.objectViewer", coordinator),
        ):
            gcp.storage.BucketIAMMember(
                f"{name}-{label}",
                bucket=bucket.name,
                role=role,
                member=member,
                opts=child,
            )
        self.job: gcp.cloudrunv2.Job | None = None
        if deployment.image_digest is None or roster is None:
            self.register_outputs({"results_bucket": self.results.name})
            return
        image = image_by_digest(self.registry.url, COORDINATOR_IMAGE_NAME, deployment.image_digest)
        environment = pulumi.Output.all(self.signing.key.id, self.results.name).apply(
            lambda v: CoordinatorSettings(
                hub_project=project,
                region=region,
                signing_key=f"{v[0]}/cryptoKeyVersions/1",
                roster=roster,
                results_bucket=v[1],
            ).environment()
        )
        self.job = gcp.cloudrunv2.Job(
            f"{name}-job",
            project=project,
            location=region,
            name=JOB_NAME,
            deletion_protection=False,  # the job holds nothing; the bucket keeps the results
            template=gcp.cloudrunv2.JobTemplateArgs(
                task_count=1,
                parallelism=1,
                template=gcp.cloudrunv2.JobTemplateTemplateArgs(
                    service_account=account.email,
                    encryption_key=keys["run"],
                    execution_environment="EXECUTION_ENVIRONMENT_GEN2",
                    max_retries=0,  # a failed run is re-run by a person, never silently
                    timeout=JOB_TIMEOUT,
                    containers=[
                        gcp.cloudrunv2.JobTemplateTemplateContainerArgs(
                            image=image,
                            envs=environment.apply(
                                lambda env: [
                                    gcp.cloudrunv2.JobTemplateTemplateContainerEnvArgs(
                                        name=k, value=v
                                    )
                                    for k, v in sorted(env.items())
                                ]
                            ),
                        )
                    ],
                ),
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[
                    *depends_on["run"],
                    self.registry,
                    self.signing,
                    self.results,
                    self.specs,
                ],
            ),
        )
        gcp.cloudrunv2.JobIamMember(
            f"{name}-researchers-execute",
            project=project,
            location=region,
            name=self.job.name,
            role=EXECUTOR_ROLE,
            member=researchers,
            opts=child,
        )
        self.register_outputs({"results_bucket": self.results.name, "job": self.job.name})
