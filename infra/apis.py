"""Enables the Google APIs a role uses, so that nothing depends on what a project had on."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp


class Apis(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        project: str,
        services: Sequence[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:common:Apis", name, None, opts)
        self.services: dict[str, gcp.projects.Service] = {
            service: gcp.projects.Service(
                f"{name}-{service.split('.')[0]}",
                project=project,
                service=service,
                # Turning an API off under a live workload breaks it: leave them on at destroy.
                disable_on_destroy=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for service in services
        }
        self.register_outputs({"services": list(self.services)})
