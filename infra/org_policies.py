"""Organization policies (v2) set on the project: the guard rails Google enforces itself.

Even a principal with broad rights in the project cannot create a resource outside the
jurisdiction, a VM with an external IP or without confidential computing, unencrypted data
in a CMEK-required service, a grant to an outside domain, a key upload, a peering, or a
VM booting from an untrusted image. The set follows Google's hardened blueprints (FAST's
org policies) where it fits a sovereign node; `expected_constraints()` is the whole list.

They are declared first, before any API is enabled (B4): an org policy only constrains
what is created after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_gcp as gcp

BOOLEAN_CONSTRAINTS: tuple[str, ...] = (
    "compute.disableNestedVirtualization",
    "compute.disableSerialPortAccess",
    "compute.disableVpcExternalIpv6",
    "compute.requireOsLogin",
    "compute.requireShieldedVm",
    "compute.skipDefaultNetworkCreation",
    "iam.automaticIamGrantsForDefaultServiceAccounts",
    "iam.disableCrossProjectServiceAccountUsage",
    "iam.disableServiceAccountKeyCreation",
    "iam.disableServiceAccountKeyUpload",
    "storage.publicAccessPrevention",
    "storage.secureHttpTransport",
    "storage.uniformBucketLevelAccess",
)
DENY_ALL_CONSTRAINTS: tuple[str, ...] = (
    "compute.restrictVpcPeering",
    "compute.vmCanIpForward",
    "compute.vmExternalIpAccess",
)
# Batch's published COS image and Google's hardened Confidential Space image (the federation
# worker's) live here; nothing else may boot a VM in the project.
TRUSTED_IMAGE_PROJECTS: tuple[str, ...] = (
    "projects/batch-custom-image",
    "projects/confidential-space-images",
)
DENIED_TLS_VERSIONS: tuple[str, ...] = ("TLS_VERSION_1", "TLS_VERSION_1_1")


def _list_rule(
    allowed: Sequence[str] = (), denied: Sequence[str] = ()
) -> gcp.orgpolicy.PolicySpecRuleArgs:
    return gcp.orgpolicy.PolicySpecRuleArgs(
        values=gcp.orgpolicy.PolicySpecRuleValuesArgs(
            allowed_values=list(allowed) or None, denied_values=list(denied) or None
        )
    )


def expected_rules(
    *,
    allowed_locations: Sequence[str],
    cmek_services: Sequence[str],
    key_projects: Sequence[str],
    member_domains: Sequence[str],
) -> Mapping[str, gcp.orgpolicy.PolicySpecRuleArgs]:
    rules: dict[str, gcp.orgpolicy.PolicySpecRuleArgs] = {
        "gcp.resourceLocations": _list_rule(allowed=allowed_locations),
        "compute.restrictNonConfidentialComputing": _list_rule(denied=["compute.googleapis.com"]),
        "gcp.restrictNonCmekServices": _list_rule(denied=sorted(cmek_services)),
        # Keys for this project's data come from its own (or its key project's) keyrings.
        "gcp.restrictCmekCryptoKeyProjects": _list_rule(
            allowed=[f"under:projects/{p}" for p in key_projects]
        ),
        "iam.allowedPolicyMemberDomains": _list_rule(allowed=sorted(member_domains)),
        "compute.trustedImageProjects": _list_rule(allowed=TRUSTED_IMAGE_PROJECTS),
        "gcp.restrictTLSVersion": _list_rule(denied=DENIED_TLS_VERSIONS),
    }
    for constraint in DENY_ALL_CONSTRAINTS:
        rules[constraint] = gcp.orgpolicy.PolicySpecRuleArgs(deny_all="TRUE")
    for constraint in BOOLEAN_CONSTRAINTS:
        rules[constraint] = gcp.orgpolicy.PolicySpecRuleArgs(enforce="TRUE")
    return rules


class OrgPolicies(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        project: str,
        allowed_locations: Sequence[str],
        cmek_services: Sequence[str],
        key_projects: Sequence[str],
        member_domains: Sequence[str],
        provider: pulumi.ProviderResource,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:common:OrgPolicies", name, None, opts)
        rules = expected_rules(
            allowed_locations=allowed_locations,
            cmek_services=cmek_services,
            key_projects=key_projects,
            member_domains=member_domains,
        )
        self.policies: dict[str, gcp.orgpolicy.Policy] = {
            constraint: gcp.orgpolicy.Policy(
                f"{name}-{constraint}",
                parent=f"projects/{project}",
                name=f"projects/{project}/policies/{constraint}",
                spec=gcp.orgpolicy.PolicySpecArgs(rules=[rule]),
                # Billed to the quota project (B6): the Org Policy API needs one.
                opts=pulumi.ResourceOptions(parent=self, provider=provider),
            )
            for constraint, rule in sorted(rules.items())
        }
        self.register_outputs({"constraints": sorted(self.policies)})
