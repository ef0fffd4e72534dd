"""Cloud Storage: the node's regional buckets (raw input, staging, results), all CMEK."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

BUCKET_PURPOSES: tuple[str, ...] = ("raw-input", "staging", "results")


class Buckets(pulumi.ComponentResource):
    """`buckets[purpose]`, named `<project>-<purpose>` (bucket names are global)."""

    def __init__(
        self,
        name: str,
        *,
        project: str,
        region: str,
        kms_key: pulumi.Input[str],
        purposes: Sequence[str] = BUCKET_PURPOSES,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:node:Buckets", name, None, opts)
        self.buckets: dict[str, gcp.storage.Bucket] = {
            purpose: gcp.storage.Bucket(
                f"{name}-{purpose}",
                project=project,
                name=f"{project}-{purpose}",
                location=region,
                storage_class="STANDARD",
                encryption=gcp.storage.BucketEncryptionArgs(default_kms_key_name=kms_key),
                uniform_bucket_level_access=True,
                public_access_prevention="enforced",
                versioning=gcp.storage.BucketVersioningArgs(enabled=True),
                force_destroy=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for purpose in purposes
        }
        self.register_outputs({p: b.name for p, b in self.buckets.items()})
