"""Audit logs that stay in the jurisdiction, under the node's key.

- Data Access audit logs (DATA_READ, DATA_WRITE, ADMIN_READ) for every data service the
  project uses: who read which table or object is on record.
- A regional log bucket under the project's `logging` key, and a project sink that routes
  every log entry to it; an exclusion stops the `_Default` sink from also copying them to
  the global `_Default` bucket. (The `_Required` bucket, with Admin Activity and System
  Event logs, is Google's and cannot be moved per project: docs/infra.md says how the
  organization pins its location.)
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

LOG_BUCKET_ID = "sovereign-logs"
LOG_RETENTION_DAYS = 400  # over a year: HIPAA/GDPR reviews look back at least that far
AUDIT_LOG_TYPES: tuple[str, ...] = ("ADMIN_READ", "DATA_READ", "DATA_WRITE")


class AuditLogs(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        project: str,
        region: str,
        audited_services: Sequence[str],
        kms_key: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:common:AuditLogs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for service in sorted(audited_services):
            gcp.projects.IAMAuditConfig(
                f"{name}-{service.split('.')[0]}",
                project=project,
                service=service,
                audit_log_configs=[
                    gcp.projects.IAMAuditConfigAuditLogConfigArgs(log_type=t)
                    for t in AUDIT_LOG_TYPES
                ],
                opts=child,
            )
        self.bucket = gcp.logging.ProjectBucketConfig(
            f"{name}-bucket",
            project=project,
            location=region,
            bucket_id=LOG_BUCKET_ID,
            retention_days=LOG_RETENTION_DAYS,
            cmek_settings=gcp.logging.ProjectBucketConfigCmekSettingsArgs(kms_key_name=kms_key),
            description="Every log entry of the project, kept in its region under its key",
            opts=child,
        )
        destination = (
            f"logging.googleapis.com/projects/{project}/locations/{region}/buckets/{LOG_BUCKET_ID}"
        )
        self.sink = gcp.logging.ProjectSink(
            f"{name}-sink",
            project=project,
            name=f"{LOG_BUCKET_ID}-sink",
            destination=destination,
            unique_writer_identity=True,
            description="All logs to the regional CMEK bucket",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.bucket]),
        )
        # Project exclusions apply to the _Default sink: nothing is copied to the global
        # _Default bucket any more (the sink above already keeps everything in region).
        gcp.logging.ProjectExclusion(
            f"{name}-default-sink-off",
            project=project,
            name="exclude-all-from-default-sink",
            description="Logs stay in the regional bucket, not the global _Default bucket",
            filter='logName:"/logs/"',
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.sink]),
        )
        self.register_outputs({"bucket": self.bucket.id, "sink": self.sink.name})
