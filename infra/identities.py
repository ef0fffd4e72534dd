"""The node's own identities and every role they hold, in one place for a reviewer.

- the batch runner: the service account of the Confidential Batch VMs (reads raw input,
  writes staging and results, writes the dataset, pulls images, writes logs);
- the federation worker: the service account of its Confidential Space VM, holding only
  what Confidential Space needs (obtain the attestation token, write logs, pull the image)
  and, in the hub stack, its Pub/Sub; the node's data is read by the attested image's
  principalSet (infra/federation_worker.py), never by this account.

No basic roles, no project-wide storage or BigQuery data roles: data roles sit on the
bucket, dataset or repository they concern.
"""

from __future__ import annotations

import json
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
FEDERATION_PROJECT_ROLES: tuple[str, ...] = (
    "roles/confidentialcomputing.workloadUser",
    "roles/logging.logWriter",
)


def dataset_policy(*, writer: str, reader: str | None) -> str:
    """The IAM policy (JSON) of a patient-data dataset: one writer, at most one reader (the
    attested worker image, when deployed), nobody else."""
    bindings = [{"role": "roles/bigquery.dataEditor", "members": [writer]}]
    if reader is not None:
        bindings.append({"role": "roles/bigquery.dataViewer", "members": [reader]})
    return json.dumps({"bindings": bindings}, sort_keys=True)


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
        data_reader: str | None,  # the attested worker's principalSet; None: not deployed
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
        # Each dataset's whole access list, authoritative: BigQuery's defaults (every
        # project owner, editor and viewer reads the data) are replaced by exactly these
        # two identities. Admins act through project-level BigQuery roles, on record in
        # the Data Access audit logs.
        for domain, dataset in on.datasets.items():
            gcp.bigquery.DatasetIamPolicy(
                f"{name}-{domain}-dataset-access",
                project=project,
                dataset_id=dataset.dataset_id,
                policy_data=pulumi.Output.from_input(batch).apply(
                    lambda writer: dataset_policy(writer=writer, reader=data_reader)
                ),
                opts=child,
            )
        for who, member in (("batch", batch), ("federation", fed)):
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-{who}-image-reader",
                project=project,
                location=region,
                repository=on.repository.name,
                role="roles/artifactregistry.reader",
                member=member,
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
