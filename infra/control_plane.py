"""The provider for control-plane calls (Org Policy, Access Context Manager).

Both APIs bill the caller's quota project and refuse user credentials without one
(`SERVICE_DISABLED` / "requires a quota project"): these resources go through a provider
that names the deployer's quota project (`quotaProject`) and sends it as the user project.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.config import CommonConfig


def control_plane_provider(cfg: CommonConfig) -> gcp.Provider:
    return gcp.Provider(
        "control-plane",
        project=cfg.project,
        billing_project=cfg.quota_project,
        user_project_override=True,
        opts=pulumi.ResourceOptions(),
    )
