"""Network: no way in from the internet, private access to Google APIs, flows logged."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .cidr import inside, reaches_public
from .model import Finding, Policy, PolicyConfig, Resource, Severity
from .props import (
    DNS_RECORD_SET,
    FIREWALL,
    NETWORK,
    NETWORK_PEERING,
    ROUTE,
    SUBNETWORK,
    VM_TYPES,
    get,
    is_set,
    is_true,
    items,
    known,
)

# restricted.googleapis.com: the only public range a node may reach (VPC-SC aware).
RESTRICTED_VIP = "199.36.153.4/30"
INTERNET_GATEWAY = "default-internet-gateway"


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
    tags = items(props.get("sourceTags"), "sourceTags") + items(
        props.get("sourceServiceAccounts"), "sourceServiceAccounts"
    )
    if not sources and not tags:
        yield (
            "allows ingress with no source ranges, tags or service accounts, which GCP reads "
            "as 0.0.0.0/0 (the whole internet); fix: remove the rule or set source_ranges "
            "to internal ranges only"
        )
    public = [s for s in sources if reaches_public(s)]
    if public:
        yield (
            f"allows ingress from {', '.join(public)}, which reaches public (internet) "
            "address space; fix: remove the rule or restrict source_ranges to internal "
            "(RFC 1918) ranges"
        )


def _priority(firewall: Resource) -> int:
    value = known(firewall.props.get("priority"), "priority")
    return int(value) if value is not None else 1000  # GCP's default priority


def _egress_rules(resources: Sequence[Resource]) -> list[Resource]:
    return [
        r
        for r in resources
        if r.type == FIREWALL
        and (known(r.props.get("direction"), "direction") or "INGRESS") == "EGRESS"
        and known(r.props.get("disabled"), "disabled") is not True
    ]


def _denies_all(rule: Resource) -> bool:
    denies = items(rule.props.get("denies"), "denies")
    ranges = [str(r) for r in items(rule.props.get("destinationRanges"), "destinationRanges")]
    everything = not ranges or any(r in ("0.0.0.0/0",) for r in ranges)
    targeted = items(rule.props.get("targetTags"), "targetTags") or items(
        rule.props.get("targetServiceAccounts"), "targetServiceAccounts"
    )
    return everything and not targeted and any(str(get(d, "protocol")) == "all" for d in denies)


def _effective_egress(resources: Sequence[Resource], _config: PolicyConfig) -> Iterator[Finding]:
    """Firewalls, routes, peerings and DNS judged together: what can leave the VPC?"""
    networks = [r for r in resources if r.type == NETWORK]
    if not networks:
        return
    for net in networks:
        if (
            known(net.props.get("deleteDefaultRoutesOnCreate"), "deleteDefaultRoutesOnCreate")
            is not True
        ):
            yield Finding(
                "keeps its default 0.0.0.0/0 route to the internet gateway; fix: set "
                "delete_default_routes_on_create=True (only the restricted VIP route stays)",
                net,
            )
    egress = _egress_rules(resources)
    deny_all = [r for r in egress if _denies_all(r)]
    if not deny_all:
        yield Finding(
            "the VPC has no enabled deny-all egress firewall rule, so GCP's implied allow-all "
            "egress lets every VM talk to the internet; fix: declare an EGRESS rule denying "
            "protocol all to 0.0.0.0/0 (priority 65534)"
        )
    deny_priority = min((_priority(r) for r in deny_all), default=65535)
    for rule in egress:
        if not items(rule.props.get("allows"), "allows") or _priority(rule) >= deny_priority:
            continue
        ranges = [str(r) for r in items(rule.props.get("destinationRanges"), "destinationRanges")]
        leaks = [
            r
            for r in ranges or ["0.0.0.0/0"]
            if reaches_public(r) and not inside(r, RESTRICTED_VIP)
        ]
        if leaks:
            yield Finding(
                f"allows egress to {', '.join(leaks)} at priority {_priority(rule)}, before "
                f"the deny-all (priority {deny_priority}), so VMs reach the internet; fix: allow "
                f"only {RESTRICTED_VIP} (restricted.googleapis.com) on tcp:443",
                rule,
            )
        for allow in items(rule.props.get("allows"), "allows"):
            ports = [str(p) for p in items(get(allow, "ports"), "ports")]
            if str(get(allow, "protocol")) != "tcp" or ports != ["443"]:
                yield Finding(
                    f"allows egress protocol {get(allow, 'protocol')} ports {ports or 'all'}; "
                    "fix: allow only tcp 443 to the restricted VIP",
                    rule,
                )
    for route in (r for r in resources if r.type == ROUTE):
        dest = str(known(route.props.get("destRange"), "destRange") or "")
        hops = {k: route.props.get(k) for k in route.props if str(k).startswith("nextHop")}
        to_gateway = str(hops.get("nextHopGateway", "")).endswith(INTERNET_GATEWAY)
        if reaches_public(dest) and not inside(dest, RESTRICTED_VIP):
            via = "the internet gateway" if to_gateway else "a next hop"
            yield Finding(
                f"routes {dest} (public address space) via {via}; fix: route only "
                f"{RESTRICTED_VIP} to the default internet gateway",
                route,
            )
    for peering in (r for r in resources if r.type == NETWORK_PEERING):
        yield Finding(
            "peers the node VPC with another network, a path around the perimeter and the "
            "egress firewall; fix: remove the peering",
            peering,
        )
    for record in (r for r in resources if r.type == DNS_RECORD_SET):
        if known(record.props.get("type"), "type") not in ("A", "AAAA"):
            continue
        addresses = [str(a) for a in items(record.props.get("rrdatas"), "rrdatas")]
        outside = [a for a in addresses if not inside(a, RESTRICTED_VIP)]
        if outside:
            yield Finding(
                f"resolves Google API names to {', '.join(outside)}, outside the restricted "
                f"VIP {RESTRICTED_VIP} (private.googleapis.com and public addresses bypass "
                "VPC Service Controls); fix: use the four restricted VIP addresses",
                record,
            )


def _no_ip_forwarding(resource: Resource, _config: PolicyConfig) -> Iterator[str]:
    if resource.type in VM_TYPES and is_true(resource.props.get("canIpForward"), "canIpForward"):
        yield (
            "forwards IP packets (can_ip_forward), so the VM can route traffic for others "
            "around the firewall; fix: remove can_ip_forward"
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
            "No enabled firewall rule allows ingress from any range that reaches public "
            "address space (CIDR arithmetic, not the literal 0.0.0.0/0; no source = "
            "anywhere), on any port (Checkov checks single ports such as 22 and 3389)."
        ),
        severity=Severity.CRITICAL,
        checkov=("CKV_GCP_2", "CKV_GCP_3"),
        config_keys=(),
        resource_check=_no_open_ingress,
    ),
    Policy(
        name="network-effective-egress",
        pillar="Network",
        description=(
            "Firewalls, routes, peerings and DNS judged together: the VPC has no default "
            "internet route, an enabled deny-all egress rule, no allow rule ahead of it to "
            "anything public but the restricted VIP (tcp 443), no route to public ranges, no "
            "peering, and Google API names resolve only to the restricted VIP."
        ),
        severity=Severity.CRITICAL,
        checkov=(),
        config_keys=(),
        stack_check=_effective_egress,
    ),
    Policy(
        name="network-no-ip-forwarding",
        pillar="Network",
        description="No instance template or instance forwards IP packets (canIpForward).",
        severity=Severity.HIGH,
        checkov=("CKV_GCP_36",),
        config_keys=(),
        resource_check=_no_ip_forwarding,
    ),
]
