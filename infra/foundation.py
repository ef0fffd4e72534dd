"""What every project of the federation gets first, node or hub: its APIs, its org
policies and its keys. The roles differ only in which services and key purposes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra.apis import Apis
from infra.config import CommonConfig
from infra.keys import KeyPurpose, Keys
from infra.org_policies import OrgPolicies


@dataclass(frozen=True)
class Foundation:
    apis: Apis
    keys: Keys

    def encrypted_with(self, purpose: KeyPurpose) -> pulumi.ResourceOptions:
        """Options for a resource under `purpose`'s key: after the APIs and the key's grants."""
        return pulumi.ResourceOptions(depends_on=[self.apis, *self.keys.usable(purpose)])


def declare_foundation(
    cfg: CommonConfig,
    *,
    services: Sequence[str],
    cmek_services: Sequence[str],
    ring_name: str,
    key_purposes: Sequence[KeyPurpose],
) -> Foundation:
    apis = Apis("apis", project=cfg.project, services=services)
    after_apis = pulumi.ResourceOptions(depends_on=[apis])
    OrgPolicies(
        "org-policies",
        project=cfg.project,
        allowed_locations=cfg.allowed_locations,
        cmek_services=cmek_services,
        opts=after_apis,
    )
    keys = Keys(
        "keys",
        project=cfg.project,
        project_number=cfg.project_number,
        region=cfg.region,
        ring_name=ring_name,
        purposes=key_purposes,
        opts=after_apis,
    )
    return Foundation(apis, keys)
