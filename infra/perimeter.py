"""VPC Service Controls: a perimeter around the node project, dry-run or enforced by config.

Every data service usable from the node is restricted, and the VPC can reach only
restricted services. What crosses the fence, and nothing else:
- in: the declared deployer (`deployer`), through an access level naming it and an ingress
  rule (B2: without it the first enforced `up` locks the deployer out of every later one);
- out: the federation worker calling Pub/Sub (publish, pull, ack) in the hub project, and
  the Batch and Compute service agents reading Batch's boot image from its image project
  (B3). VPC-SC names projects, not topics: which topics the worker may touch inside the hub
  is narrowed by the hub stack's IAM (infra/federation_hub.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from infra.config import PerimeterMode

# The Pub/Sub methods a federation worker needs on the hub: publish uploads, pull rounds.
FEDERATION_PUBSUB_METHODS: tuple[str, ...] = (
    "google.pubsub.v1.Publisher.Publish",
    "google.pubsub.v1.Subscriber.Acknowledge",
    "google.pubsub.v1.Subscriber.ModifyAckDeadline",
    "google.pubsub.v1.Subscriber.Pull",
    "google.pubsub.v1.Subscriber.StreamingPull",
)
# Who reads the boot image when Batch creates a VM from the template.
IMAGE_READERS: tuple[str, ...] = (
    "service-{number}@gcp-sa-cloudbatch.iam.gserviceaccount.com",
    "service-{number}@compute-system.iam.gserviceaccount.com",
)


def perimeter_name(access_policy: str, node: str) -> str:
    return f"accessPolicies/{access_policy}/servicePerimeters/sovereign_node_{node}"


def access_level_name(access_policy: str, node: str) -> str:
    return f"accessPolicies/{access_policy}/accessLevels/sovereign_deployer_{node}"


class Perimeter(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access_policy: str,
        node: str,
        project_numbers: Sequence[str],
        restricted_services: Sequence[str],
        federation_identity: pulumi.Input[str],
        hub_project_number: str,
        batch_image_project_number: str,
        # confidential-space-images, when the worker is deployed (its VM boots from there)
        worker_image_project_number: str | None,
        agent_project_number: str,
        deployer: str,
        mode: PerimeterMode,
        provider: pulumi.ProviderResource,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:node:Perimeter", name, None, opts)
        # Access Context Manager bills the quota project (B6): the control-plane provider.
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        self.access_level = gcp.accesscontextmanager.AccessLevel(
            f"{name}-deployer",
            parent=f"accessPolicies/{access_policy}",
            name=access_level_name(access_policy, node),
            title=f"deployer of sovereign node {node}",
            basic=gcp.accesscontextmanager.AccessLevelBasicArgs(
                conditions=[
                    gcp.accesscontextmanager.AccessLevelBasicConditionArgs(members=[deployer])
                ]
            ),
            opts=child,
        )
        image_readers = [
            f"serviceAccount:{who.format(number=agent_project_number)}" for who in IMAGE_READERS
        ]
        # One description of the fence, used as the enforced status or the dry-run spec:
        # going from dry-run to enforced moves it and changes nothing else.
        config: gcp.accesscontextmanager.ServicePerimeterStatusArgsDict = {
            "resources": [f"projects/{n}" for n in project_numbers],
            "restricted_services": sorted(restricted_services),
            "vpc_accessible_services": {
                "enable_restriction": True,
                "allowed_services": ["RESTRICTED-SERVICES"],
            },
            "ingress_policies": [
                {
                    "title": "deployer runs pulumi up",
                    "ingress_from": {
                        "identities": [deployer],
                        "sources": [{"access_level": self.access_level.name}],
                    },
                    "ingress_to": {
                        "resources": ["*"],
                        "operations": [{"service_name": "*"}],
                    },
                }
            ],
            "egress_policies": [
                {
                    "title": "federation worker to the hub's Pub/Sub",
                    "egress_from": {
                        "identities": [
                            pulumi.Output.from_input(federation_identity).apply(
                                lambda email: f"serviceAccount:{email}"
                            )
                        ]
                    },
                    "egress_to": {
                        "resources": [f"projects/{hub_project_number}"],
                        "operations": [
                            {
                                "service_name": "pubsub.googleapis.com",
                                "method_selectors": [
                                    {"method": m} for m in FEDERATION_PUBSUB_METHODS
                                ],
                            }
                        ],
                    },
                },
                {
                    "title": "Batch VMs boot from Batch's image project"
                    + (
                        " and the worker from Confidential Space's"
                        if worker_image_project_number
                        else ""
                    ),
                    "egress_from": {"identities": image_readers},
                    "egress_to": {
                        "resources": [
                            f"projects/{n}"
                            for n in (batch_image_project_number, worker_image_project_number)
                            if n
                        ],
                        "operations": [
                            {
                                "service_name": "compute.googleapis.com",
                                "method_selectors": [{"method": "*"}],
                            }
                        ],
                    },
                },
            ],
        }
        self.perimeter = gcp.accesscontextmanager.ServicePerimeter(
            f"{name}-perimeter",
            parent=f"accessPolicies/{access_policy}",
            name=perimeter_name(access_policy, node),
            title=f"sovereign node {node}",
            perimeter_type="PERIMETER_TYPE_REGULAR",
            status=config if mode == "enforced" else None,
            spec=config if mode == "dryrun" else None,
            use_explicit_dry_run_spec=mode == "dryrun",
            opts=pulumi.ResourceOptions(
                parent=self, provider=provider, depends_on=[self.access_level]
            ),
        )
        self.register_outputs({"perimeter": self.perimeter.name, "mode": mode})
