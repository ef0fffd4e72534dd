"""CIDR arithmetic: does a range reach public address space?"""

from __future__ import annotations

import ipaddress

# Address space that never routes on the internet: RFC 1918, shared (CGNAT), link-local,
# loopback, IPv6 unique-local and link-local. Anything else is public.
INTERNAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def network(cidr: str) -> Network | None:
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        return None


def reaches_public(cidr: str) -> bool:
    """True if any address of the range is public (an unparseable range counts as public)."""
    net = network(cidr)
    if net is None:
        return True
    return not any(
        net.version == internal.version and net.subnet_of(internal)  # type: ignore[arg-type]
        for internal in INTERNAL
    )


def inside(cidr: str, allowed: str) -> bool:
    net, outer = network(cidr), network(allowed)
    return (
        net is not None
        and outer is not None
        and net.version == outer.version
        and net.subnet_of(outer)  # type: ignore[arg-type]
    )
