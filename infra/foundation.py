"""What every project of the federation gets first, node or hub, in the order a real
`pulumi up` needs (docs/infra.md, "Order of creation"):

1. org policies, through the control-plane provider billed to the quota project (B4, B6):
   they constrain only what is created after them, so they come before any API is on;
2. the APIs;
3. the service agents that encrypt with the keys (B5);
4. the keys (in the project, or in its separate key project) and their agent grants;
5. audit logs: Data Access logs for the data services, a regional CMEK log bucket and sink.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.apis import Apis
from infra.audit_logs import AuditLogs
from infra.config import CommonConfig
from infra.control_plane import control_plane_provider
from infra.keys import KeyPurpose, Keys
from infra.org_policies import OrgPolicies
from infra.service_agents import ServiceAgents


@dataclass(frozen=True)
class Foundation:
    apis: Apis
    keys: Keys
    org_policies: OrgPolicies
    control_plane: gcp.Provider
    agents: ServiceAgents
    audit_logs: AuditLogs

    @property
    def components(self) -> list[pulumi.Resource]:
        """Everything declared here (what a fence declared last must wait for)."""
        return [self.org_policies, self.apis, self.agents, self.keys, self.audit_logs]

    def encrypted_with(self, purpose: KeyPurpose) -> pulumi.ResourceOptions:
        """Options for a resource under `purpose`'s key: after the APIs and the key's grants."""
        return pulumi.ResourceOptions(depends_on=[self.apis, *self.keys.usable(purpose)])


def declare_foundation(
    cfg: CommonConfig,
    *,
    services: Sequence[str],
    cmek_services: Sequence[str],
    audited_services: Sequence[str],
    ring_name: str,
    key_purposes: Sequence[KeyPurpose],
) -> Foundation:
    provider = control_plane_provider(cfg)
    key_project = cfg.key_project.project if cfg.key_project else cfg.project
    org_policies = OrgPolicies(
        "org-policies",
        project=cfg.project,
        allowed_locations=cfg.allowed_locations,
        cmek_services=cmek_services,
        key_projects=sorted({cfg.project, key_project}),
        member_domains=cfg.allowed_member_domains,
        provider=provider,
    )
    apis = Apis(
        "apis",
        project=cfg.project,
        services=services,
        opts=pulumi.ResourceOptions(depends_on=[org_policies]),
    )
    purposes: tuple[KeyPurpose, ...] = (*key_purposes, "logging")
    agents = ServiceAgents(
        "service-agents",
        project=cfg.project,
        project_number=cfg.project_number,
        purposes=purposes,
        apis=apis,
    )
    keys = Keys(
        "keys",
        project=key_project,
        region=cfg.region,
        ring_name=ring_name,
        purposes=purposes,
        agents=agents.members,
        opts=pulumi.ResourceOptions(depends_on=[apis]),
    )
    audit_logs = AuditLogs(
        "audit-logs",
        project=cfg.project,
        region=cfg.region,
        audited_services=audited_services,
        kms_key=keys.key_id("logging"),
        opts=pulumi.ResourceOptions(depends_on=[apis, *keys.usable("logging")]),
    )
    return Foundation(apis, keys, org_policies, provider, agents, audit_logs)
