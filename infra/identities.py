"""The node's own identities and every role they hold, in one place for a reviewer.

- the batch runner: the service account of the Confidential Batch VMs (reads raw input,
  writes staging and results, writes the dataset, pulls images, writes logs);
- the federation worker: reads the dataset to compute local aggregates and talks to the
  hub's Pub/Sub (granted in the hub stack, allowed out by the perimeter's egress rule).

No basic roles, no project-wide storage or BigQuery data roles: data roles sit on the
bucket, dataset or repository they concern.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from workloads.contracts.federation import FEDERATION_WORKER_ACCOUNT_ID

BATCH_RUNNER_ACCOUNT_ID = "batch-runner"

# Project-level roles: these have no narrower resource to sit on.
BATCH_PROJECT_ROLES: tuple[str, ...] = (
    "roles/batch.agentReporter",
    "roles/bigquery.jobUser",
    "roles/logging.logWriter",
)
FEDERATION_PROJECT_ROLES: tuple[str, ...] = ("roles/bigquery.jobUser", "roles/logging.logWriter")


@dataclass(frozen=True)
class NodeResources:
    """What the identities are granted on."""

    raw_input_bucket: gcp.storage.Bucket
    staging_bucket: gcp.storage.Bucket
    results_bucket: gcp.storage.Bucket
    datasets: Mapping[str, gcp.bigquery.Dataset]  # one per domain
    repository: gcp.artifactregistry.Repository


class Identities(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        project: str,
        region: str,
        on: NodeResources,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:node:Identities", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.batch_runner = gcp.serviceaccount.Account(
            f"{name}-batch-runner",
            project=project,
            account_id=BATCH_RUNNER_ACCOUNT_ID,
            display_name="Confidential Batch runner (VCF processing)",
            opts=child,
        )
        self.federation_worker = gcp.serviceaccount.Account(
            f"{name}-federation-worker",
            project=project,
            account_id=FEDERATION_WORKER_ACCOUNT_ID,
            display_name="Federation worker (publishes masked aggregates to the hub)",
            opts=child,
        )
        batch, fed = self.batch_runner.member, self.federation_worker.member

        def bucket_role(label: str, bucket: gcp.storage.Bucket, role: str) -> None:
            gcp.storage.BucketIAMMember(
                f"{name}-{label}", bucket=bucket.name, role=role, member=batch, opts=child
            )

        bucket_role("batch-raw-input-viewer", on.raw_input_bucket, "roles/storage.objectViewer")
        bucket_role("batch-staging-admin", on.staging_bucket, "roles/storage.objectAdmin")
        bucket_role("batch-results-admin", on.results_bucket, "roles/storage.objectAdmin")
        for domain, dataset in on.datasets.items():
            for label, member, role in (
                ("batch-editor", batch, "roles/bigquery.dataEditor"),
                ("federation-viewer", fed, "roles/bigquery.dataViewer"),
            ):
                gcp.bigquery.DatasetIamMember(
                    f"{name}-{domain}-{label}",
                    project=project,
                    dataset_id=dataset.dataset_id,
                    role=role,
                    member=member,
                    opts=child,
                )
        gcp.artifactregistry.RepositoryIamMember(
            f"{name}-batch-image-reader",
            project=project,
            location=region,
            repository=on.repository.name,
            role="roles/artifactregistry.reader",
            member=batch,
            opts=child,
        )
        for who, member, roles in (
            ("batch", batch, BATCH_PROJECT_ROLES),
            ("federation", fed, FEDERATION_PROJECT_ROLES),
        ):
            for role in roles:
                gcp.projects.IAMMember(
                    f"{name}-{who}-{role.removeprefix('roles/').replace('.', '-')}",
                    project=project,
                    role=role,
                    member=member,
                    opts=child,
                )
        self.register_outputs(
            {
                "batch_runner": self.batch_runner.email,
                "federation_worker": self.federation_worker.email,
            }
        )
