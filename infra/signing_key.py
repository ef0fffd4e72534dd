"""The node's federation signing key (issue #10): Cloud KMS, Ed25519, one identity may use it.

Every federation message a node sends is signed with this key; the hub and the other
nodes verify with its public key. Only the node's attested worker image (the principalSet
of its digest, infra/federation_worker.py) may sign with it or read its public key
(roles/cloudkms.signerVerifier and roles/cloudkms.publicKeyViewer on
the key itself, nothing on the ring or project).

Protection level SOFTWARE: the Cloud KMS algorithm tables we could check list
EC_SIGN_ED25519 for software keys and gave no evidence of HSM support, and a key's
protection level cannot be changed after creation (a wrong guess would fail `pulumi up`).
Asymmetric keys do not rotate automatically; a new version is created by hand and
published to the verifiers.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from workloads.contracts.federation import SIGNING_ALGORITHM, SIGNING_KEY_NAME

SIGNING_PROTECTION_LEVEL = "SOFTWARE"
SIGNER_ROLES: tuple[str, ...] = ("roles/cloudkms.publicKeyViewer", "roles/cloudkms.signerVerifier")


class SigningKey(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        key_ring: pulumi.Input[str],
        # IAM member that signs: the node's attested worker image (principalSet), the hub's
        # coordinator account; None: nobody yet (the worker is not deployed).
        signer: pulumi.Input[str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:node:SigningKey", name, None, opts)
        self.key = gcp.kms.CryptoKey(
            f"{name}-key",
            name=SIGNING_KEY_NAME,
            key_ring=key_ring,
            purpose="ASYMMETRIC_SIGN",
            version_template=gcp.kms.CryptoKeyVersionTemplateArgs(
                algorithm=SIGNING_ALGORITHM, protection_level=SIGNING_PROTECTION_LEVEL
            ),
            destroy_scheduled_duration="2592000s",
            deletion_policy="PREVENT",
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        for role in SIGNER_ROLES if signer is not None else ():
            gcp.kms.CryptoKeyIAMMember(
                f"{name}-{role.rsplit('.', 1)[-1]}",
                crypto_key_id=self.key.id,
                role=role,
                member=signer,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"key": self.key.id})
