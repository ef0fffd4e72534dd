"""The sovereign node role: every per-node component, wired together, and the stack outputs."""

from __future__ import annotations

import pulumi

from infra.apis import Apis
from infra.config import NodeConfig
from infra.keys import Keys
from infra.services import NODE_APIS


def declare_node(cfg: NodeConfig) -> None:
    apis = Apis("apis", project=cfg.project, services=NODE_APIS)
    keys = Keys(
        "keys",
        project=cfg.project,
        project_number=cfg.project_number,
        region=cfg.region,
        ring_name=f"sovereign-{cfg.node}",
        purposes=("bigquery", "storage", "artifactregistry", "compute"),
        opts=pulumi.ResourceOptions(depends_on=[apis]),
    )
    pulumi.export("region", cfg.region)
    pulumi.export("keys", {purpose: key.id for purpose, key in keys.keys.items()})
