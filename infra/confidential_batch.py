"""The Confidential VM template Cloud Batch jobs must run on.

Cloud Batch has no confidential-computing field of its own: a job gets AMD SEV only by
naming a *global* instance template in the same project, whose service account must be
the job's. This template is that: N2D, SEV, shielded VM, no external IP, CMEK boot disk,
TERMINATE on host maintenance (SEV VMs cannot live-migrate), SPOT or STANDARD by config.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.config import BatchSettings

# Batch's own COS image (it carries the Batch agent) supports AMD SEV.
BATCH_IMAGE = "projects/batch-custom-image/global/images/family/batch-cos-stable-official"
BOOT_DISK_GB = 50


class ConfidentialBatch(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        project: str,
        node: str,
        settings: BatchSettings,
        subnet: pulumi.Input[str],
        service_account: pulumi.Input[str],
        kms_key: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:node:ConfidentialBatch", name, None, opts)
        spot = settings.provisioning_model == "SPOT"
        self.template = gcp.compute.InstanceTemplate(
            f"{name}-template",
            project=project,
            # A generated name (prefix + suffix): a change creates the new template before
            # deleting the old one, which the job may still use (B7).
            name_prefix=f"confidential-batch-{node}-",
            description="Confidential (AMD SEV) VM template for Cloud Batch jobs",
            machine_type=settings.machine_type,
            confidential_instance_config=gcp.compute.InstanceTemplateConfidentialInstanceConfigArgs(
                confidential_instance_type="SEV"
            ),
            shielded_instance_config=gcp.compute.InstanceTemplateShieldedInstanceConfigArgs(
                enable_secure_boot=True, enable_vtpm=True, enable_integrity_monitoring=True
            ),
            disks=[
                gcp.compute.InstanceTemplateDiskArgs(
                    boot=True,
                    auto_delete=True,
                    source_image=BATCH_IMAGE,
                    disk_size_gb=BOOT_DISK_GB,
                    disk_type="pd-balanced",
                    disk_encryption_key=gcp.compute.InstanceTemplateDiskDiskEncryptionKeyArgs(
                        kms_key_self_link=kms_key
                    ),
                )
            ],
            # No access_configs: the VMs get no external IP address.
            network_interfaces=[
                gcp.compute.InstanceTemplateNetworkInterfaceArgs(subnetwork=subnet)
            ],
            scheduling=gcp.compute.InstanceTemplateSchedulingArgs(
                on_host_maintenance="TERMINATE",
                provisioning_model=settings.provisioning_model,
                preemptible=spot,
                automatic_restart=not spot,
                instance_termination_action="DELETE" if spot else None,
            ),
            service_account=gcp.compute.InstanceTemplateServiceAccountArgs(
                email=service_account, scopes=["cloud-platform"]
            ),
            metadata={
                "block-project-ssh-keys": "TRUE",
                "enable-oslogin": "TRUE",
                "serial-port-enable": "FALSE",
            },
            # Templates are immutable: a change replaces it, create-before-delete.
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"template": self.template.self_link})
