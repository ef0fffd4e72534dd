"""Artifact Registry: a regional Docker repository for the stack's own images, CMEK (the node's
task and worker images; the hub's coordinator image)."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

REPOSITORY_ID = "workloads"


class Registry(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        project: str,
        region: str,
        kms_key: pulumi.Input[str],
        description: str = "Images the node's Confidential Batch jobs and federation worker run",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:node:Registry", name, None, opts)
        self.repository = gcp.artifactregistry.Repository(
            f"{name}-docker",
            project=project,
            location=region,
            repository_id=REPOSITORY_ID,
            format="DOCKER",
            description=description,
            kms_key_name=kms_key,
            docker_config=gcp.artifactregistry.RepositoryDockerConfigArgs(immutable_tags=True),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = f"{region}-docker.pkg.dev/{project}/{REPOSITORY_ID}"
        self.register_outputs({"url": self.url})
