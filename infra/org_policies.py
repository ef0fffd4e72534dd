"""Organization policies (v2) set on the project: the guard rails Google enforces itself.

Even a principal with broad rights in the project cannot create a resource outside the
jurisdiction, a VM with an external IP or without confidential computing, or unencrypted
data in a CMEK-required service.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

BOOLEAN_CONSTRAINTS: tuple[str, ...] = (
    "compute.disableSerialPortAccess",
    "compute.requireOsLogin",
    "compute.requireShieldedVm",
    "compute.skipDefaultNetworkCreation",
    "iam.disableServiceAccountKeyCreation",
    "storage.publicAccessPrevention",
    "storage.uniformBucketLevelAccess",
)


def _list_rule(
    allowed: Sequence[str] = (), denied: Sequence[str] = ()
) -> gcp.orgpolicy.PolicySpecRuleArgs:
    return gcp.orgpolicy.PolicySpecRuleArgs(
        values=gcp.orgpolicy.PolicySpecRuleValuesArgs(
            allowed_values=list(allowed) or None, denied_values=list(denied) or None
        )
    )


class OrgPolicies(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        project: str,
        allowed_locations: Sequence[str],
        cmek_services: Sequence[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:common:OrgPolicies", name, None, opts)
        rules: dict[str, gcp.orgpolicy.PolicySpecRuleArgs] = {
            "gcp.resourceLocations": _list_rule(allowed=allowed_locations),
            "compute.vmExternalIpAccess": gcp.orgpolicy.PolicySpecRuleArgs(deny_all="TRUE"),
            "compute.restrictNonConfidentialComputing": _list_rule(
                denied=["compute.googleapis.com"]
            ),
            "gcp.restrictNonCmekServices": _list_rule(denied=sorted(cmek_services)),
            # Keys for this project's data must come from this project's keyrings.
            "gcp.restrictCmekCryptoKeyProjects": _list_rule(allowed=[f"under:projects/{project}"]),
        }
        for constraint in BOOLEAN_CONSTRAINTS:
            rules[constraint] = gcp.orgpolicy.PolicySpecRuleArgs(enforce="TRUE")
        self.policies: dict[str, gcp.orgpolicy.Policy] = {
            constraint: gcp.orgpolicy.Policy(
                f"{name}-{constraint}",
                parent=f"projects/{project}",
                name=f"projects/{project}/policies/{constraint}",
                spec=gcp.orgpolicy.PolicySpecArgs(rules=[rule]),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for constraint, rule in sorted(rules.items())
        }
        self.register_outputs({"constraints": sorted(self.policies)})
