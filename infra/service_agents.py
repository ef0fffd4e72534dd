"""The Google service agents that encrypt with the project's keys, created by the program.

A key grant to a service agent that does not exist yet fails (B5). Each agent is created
(or read, which creates it) here, and the key grants take their member from it, so Pulumi
orders them: API enabled -> agent -> grant -> encrypted resource.

- Artifact Registry, Pub/Sub, Cloud Run: `gcp.projects.ServiceIdentity` (generateServiceIdentity).
- BigQuery: `bigquery.get_default_service_account` (creates bq-N@bigquery-encryption).
- Cloud Storage: `storage.get_project_service_account` (creates service-N@gs-project-accounts).
- Compute (compute-system) and Cloud Logging: exist once their API is on; the grant
  waits for the API.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from infra.apis import Apis
from infra.keys import KeyPurpose, service_agent

_IDENTITY_SERVICES: dict[KeyPurpose, str] = {
    "artifactregistry": "artifactregistry.googleapis.com",
    "pubsub": "pubsub.googleapis.com",
    "run": "run.googleapis.com",
}


class ServiceAgents(pulumi.ComponentResource):
    """`members[purpose]`: the agent's IAM member; `ready[purpose]`: what a grant waits for."""

    def __init__(
        self,
        name: str,
        *,
        project: str,
        project_number: str,
        purposes: Sequence[KeyPurpose],
        apis: Apis,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:common:ServiceAgents", name, None, opts)
        after_apis = pulumi.ResourceOptions(parent=self, depends_on=[apis])
        self.members: dict[KeyPurpose, pulumi.Output[str]] = {}
        self.identities: dict[KeyPurpose, gcp.projects.ServiceIdentity] = {}
        for purpose in purposes:
            if purpose in _IDENTITY_SERVICES:
                identity = gcp.projects.ServiceIdentity(
                    f"{name}-{purpose}",
                    project=project,
                    service=_IDENTITY_SERVICES[purpose],
                    opts=after_apis,
                )
                self.identities[purpose] = identity
                self.members[purpose] = identity.member
            elif purpose == "bigquery":
                bq = gcp.bigquery.get_default_service_account_output(
                    project=project, opts=pulumi.InvokeOutputOptions(depends_on=[apis])
                )
                self.members[purpose] = bq.member
            elif purpose == "storage":
                gcs = gcp.storage.get_project_service_account_output(
                    project=project, opts=pulumi.InvokeOutputOptions(depends_on=[apis])
                )
                self.members[purpose] = gcs.member
            else:
                # compute-system and logging exist once the API is enabled.
                self.members[purpose] = pulumi.Output.from_input(
                    f"serviceAccount:{service_agent(purpose, project_number)}"
                )
        self.register_outputs({"members": self.members})
