"""Network: no way in from the internet, private access to Google APIs, flows logged."""

from __future__ import annotations

from collections.abc import Iterator

from .model import Policy, PolicyConfig, Resource, Severity
from .props import FIREWALL, NETWORK, SUBNETWORK, VM_TYPES, get, is_set, items, known

_ANYWHERE = ("0.0.0.0/0", "::/0")


def _no_external_ip(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if resource.type not in VM_TYPES:
        return
    interfaces = items(resource.props.get("networkInterfaces"), "networkInterfaces")
    for i, nic in enumerate(interfaces):
        for key in ("accessConfigs", "ipv6AccessConfigs"):
            if is_set(get(nic, key)):
                yield (
                    f"networkInterfaces[{i}].{key} gives the VM an external IP; fix: remove "
                    f"{key} (the node reaches Google APIs through Private Google Access)"
                )


def _private_google_access(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if (
        resource.type == SUBNETWORK
        and known(resource.props.get("privateIpGoogleAccess"), "privateIpGoogleAccess") is not True
    ):
        yield (
            "Private Google Access is off, so VMs without external IPs cannot reach Google "
            "APIs privately; fix: set private_ip_google_access=True"
        )


def _flow_logs(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if resource.type == SUBNETWORK and not is_set(resource.props.get("logConfig")):
        yield (
            "VPC flow logs are off (no logConfig), so traffic leaves no trace; fix: set "
            "log_config (e.g. aggregation_interval INTERVAL_5_SEC, flow_sampling 0.5)"
        )


def _no_default_network(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if resource.type != NETWORK:
        return
    auto = known(resource.props.get("autoCreateSubnetworks"), "autoCreateSubnetworks")
    if auto is not False:  # the provider's default is True: an auto-mode network
        yield (
            "is an auto-mode network (autoCreateSubnetworks is not false), which creates a "
            "subnet in every region, outside the jurisdiction; fix: set "
            "auto_create_subnetworks=False and declare the one regional subnet"
        )


def _no_open_ingress(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if resource.type != FIREWALL:
        return
    props = resource.props
    direction = known(props.get("direction"), "direction") or "INGRESS"
    if direction != "INGRESS" or known(props.get("disabled"), "disabled") is True:
        return
    if not items(props.get("allows"), "allows"):
        return  # a deny rule from anywhere is what we want
    sources = [str(s) for s in items(props.get("sourceRanges"), "sourceRanges")]
    open_to = [s for s in sources if s in _ANYWHERE]
    if open_to:
        yield (
            f"allows ingress from {', '.join(open_to)} (the whole internet); fix: remove the "
            "rule or restrict source_ranges to known internal ranges"
        )


POLICIES = [
    Policy(
        name="network-no-external-ip",
        pillar="Network",
        description=(
            "No instance template or instance has an access config (external IPv4 or IPv6 "
            "address): nothing is reachable from, or talks directly to, the internet."
        ),
        severity=Severity.CRITICAL,
        checkov=("CKV_GCP_40",),
        config_keys=(),
        resource_check=_no_external_ip,
    ),
    Policy(
        name="network-subnet-private-google-access",
        pillar="Network",
        description="Every subnet has Private Google Access, so VMs reach Google APIs privately.",
        severity=Severity.MEDIUM,
        checkov=("CKV_GCP_74",),
        config_keys=(),
        resource_check=_private_google_access,
    ),
    Policy(
        name="network-subnet-flow-logs",
        pillar="Network",
        description="Every subnet records VPC flow logs (a logConfig block).",
        severity=Severity.MEDIUM,
        checkov=("CKV_GCP_26",),
        config_keys=(),
        resource_check=_flow_logs,
    ),
    Policy(
        name="network-no-default-network",
        pillar="Network",
        description=(
            "No auto-mode (default-style) VPC network: every network sets "
            "autoCreateSubnetworks false."
        ),
        severity=Severity.HIGH,
        checkov=("CKV_GCP_27",),
        config_keys=(),
        resource_check=_no_default_network,
    ),
    Policy(
        name="network-no-open-ingress",
        pillar="Network",
        description=(
            "No enabled firewall rule allows ingress from 0.0.0.0/0 or ::/0, on any port "
            "(Checkov checks single ports such as 22 and 3389; this checks them all)."
        ),
        severity=Severity.CRITICAL,
        checkov=("CKV_GCP_2", "CKV_GCP_3"),
        config_keys=(),
        resource_check=_no_open_ingress,
    ),
]
