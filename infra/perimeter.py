"""VPC Service Controls: a perimeter around the node project, dry-run or enforced by config.

Every data API the node uses is restricted. The one egress rule lets the node's federation
worker identity call Pub/Sub (publish, pull, acknowledge) in the hub project and nothing
else. VPC-SC names projects, not topics: which topics and subscription the identity may
touch inside the hub is narrowed by the hub stack's IAM (infra/hub.py).
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


def perimeter_name(access_policy: str, node: str) -> str:
    return f"accessPolicies/{access_policy}/servicePerimeters/sovereign_node_{node}"


class Perimeter(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access_policy: str,
        node: str,
        project_number: str,
        restricted_services: Sequence[str],
        federation_identity: pulumi.Input[str],
        hub_project_number: str,
        mode: PerimeterMode,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:node:Perimeter", name, None, opts)
        # One description of the fence, used as the enforced status or the dry-run spec:
        # going from dry-run to enforced moves it and changes nothing else.
        config: gcp.accesscontextmanager.ServicePerimeterStatusArgsDict = {
            "resources": [f"projects/{project_number}"],
            "restricted_services": sorted(restricted_services),
            "vpc_accessible_services": {
                "enable_restriction": True,
                "allowed_services": ["RESTRICTED-SERVICES"],
            },
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
                }
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
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"perimeter": self.perimeter.name, "mode": mode})
