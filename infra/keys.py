"""Customer-managed encryption keys: one keyring in the region, one key per purpose.

Each key rotates at most every 90 days, is protected against deletion, and only the one
Google service agent that encrypts with it gets roles/cloudkms.cryptoKeyEncrypterDecrypter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import pulumi
import pulumi_gcp as gcp

KeyPurpose = Literal[
    "bigquery", "storage", "artifactregistry", "compute", "pubsub", "logging", "run"
]

ROTATION_PERIOD = "7776000s"  # 90 days: the longest rotation the policy pack accepts
ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"

# The service agent that encrypts each purpose's data, from the project number.
SERVICE_AGENTS: dict[KeyPurpose, str] = {
    "bigquery": "bq-{number}@bigquery-encryption.iam.gserviceaccount.com",
    "storage": "service-{number}@gs-project-accounts.iam.gserviceaccount.com",
    "artifactregistry": "service-{number}@gcp-sa-artifactregistry.iam.gserviceaccount.com",
    "compute": "service-{number}@compute-system.iam.gserviceaccount.com",
    "pubsub": "service-{number}@gcp-sa-pubsub.iam.gserviceaccount.com",
    # Cloud Logging's CMEK agent for log buckets (gcloud logging settings describe).
    "logging": "service-{number}@gcp-sa-logging.iam.gserviceaccount.com",
    # Cloud Run's agent encrypts the hub coordinator's copy of its image (Cloud Run CMEK).
    "run": "service-{number}@serverless-robot-prod.iam.gserviceaccount.com",
}


def service_agent(purpose: KeyPurpose, project_number: str) -> str:
    return SERVICE_AGENTS[purpose].format(number=project_number)


class Keys(pulumi.ComponentResource):
    """`keys[purpose].id` is the key name a resource's CMEK setting takes.

    `project` is where the keyring lives: the node's project, or its separate key project.
    `agents[purpose]` is the IAM member of the service agent that encrypts with the key
    (from ServiceAgents, so the grant waits for the agent to exist).
    """

    def key_id(self, purpose: KeyPurpose) -> pulumi.Output[str]:
        return self.keys[purpose].id

    def usable(self, purpose: KeyPurpose) -> list[pulumi.Resource]:
        """What a resource encrypted for `purpose` must depend on: the key and its grant."""
        return [self.keys[purpose], self.grants[purpose]]

    def __init__(
        self,
        name: str,
        *,
        project: str,
        region: str,
        ring_name: str,
        purposes: Sequence[KeyPurpose],
        agents: Mapping[KeyPurpose, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:common:Keys", name, None, opts)
        # Keyrings and keys cannot really be deleted in Cloud KMS, and losing a key loses
        # the data under it: protect both so that `pulumi destroy` stops before them.
        protected = pulumi.ResourceOptions(parent=self, protect=True)
        self.key_ring = gcp.kms.KeyRing(
            f"{name}-ring", project=project, location=region, name=ring_name, opts=protected
        )
        self.keys: dict[KeyPurpose, gcp.kms.CryptoKey] = {}
        # A resource encrypted with a key must wait for its agent's grant, or creation fails.
        self.grants: dict[KeyPurpose, gcp.kms.CryptoKeyIAMMember] = {}
        for purpose in purposes:
            key = gcp.kms.CryptoKey(
                f"{name}-{purpose}",
                name=f"{purpose}-key",
                key_ring=self.key_ring.id,
                purpose="ENCRYPT_DECRYPT",
                rotation_period=ROTATION_PERIOD,
                version_template=gcp.kms.CryptoKeyVersionTemplateArgs(
                    algorithm="GOOGLE_SYMMETRIC_ENCRYPTION", protection_level="HSM"
                ),
                destroy_scheduled_duration="2592000s",  # 30 days to undo a version destroy
                deletion_policy="PREVENT",
                opts=protected,
            )
            self.grants[purpose] = gcp.kms.CryptoKeyIAMMember(
                f"{name}-{purpose}-agent",
                crypto_key_id=key.id,
                role=ENCRYPTER_DECRYPTER,
                member=agents[purpose],
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.keys[purpose] = key
        self.register_outputs(
            {"key_ring": self.key_ring.id, "keys": {p: k.id for p, k in self.keys.items()}}
        )
