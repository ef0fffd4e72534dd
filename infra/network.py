"""The node's network: a private VPC whose only way out is the restricted Google APIs VIP.

No default internet route (deleted at creation), one route to restricted.googleapis.com's
range, a firewall that denies every egress except HTTPS to that range, and private DNS
zones that resolve googleapis.com and pkg.dev to it. No VM gets an external address.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

RESTRICTED_VIP_RANGE = "199.36.153.4/30"  # restricted.googleapis.com (VPC-SC aware)
RESTRICTED_VIP_ADDRESSES = ["199.36.153.4", "199.36.153.5", "199.36.153.6", "199.36.153.7"]
SUBNET_RANGE = "10.10.0.0/24"  # nodes never peer, so every node may use the same range


class Network(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        project: str,
        region: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("sovereign:node:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.vpc = gcp.compute.Network(
            f"{name}-vpc",
            project=project,
            name=f"{name}-vpc",
            auto_create_subnetworks=False,
            delete_default_routes_on_create=True,  # no 0.0.0.0/0 route to the internet
            routing_mode="REGIONAL",
            opts=child,
        )
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            project=project,
            name=f"{name}-{region}",
            region=region,
            network=self.vpc.id,
            ip_cidr_range=SUBNET_RANGE,
            private_ip_google_access=True,
            log_config=gcp.compute.SubnetworkLogConfigArgs(
                aggregation_interval="INTERVAL_5_SEC",
                flow_sampling=1.0,
                metadata="INCLUDE_ALL_METADATA",
            ),
            opts=child,
        )
        gcp.compute.Route(
            f"{name}-restricted-apis",
            project=project,
            name=f"{name}-restricted-apis",
            network=self.vpc.id,
            dest_range=RESTRICTED_VIP_RANGE,
            next_hop_gateway="default-internet-gateway",
            description="Private Google Access to restricted.googleapis.com only",
            opts=child,
        )
        log = gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA")
        gcp.compute.Firewall(
            f"{name}-deny-all-egress",
            project=project,
            name=f"{name}-deny-all-egress",
            network=self.vpc.id,
            direction="EGRESS",
            priority=65534,
            denies=[gcp.compute.FirewallDenyArgs(protocol="all")],
            destination_ranges=["0.0.0.0/0"],
            log_config=log,
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-allow-restricted-apis",
            project=project,
            name=f"{name}-allow-restricted-apis",
            network=self.vpc.id,
            direction="EGRESS",
            priority=1000,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=["443"])],
            destination_ranges=[RESTRICTED_VIP_RANGE],
            log_config=log,
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-deny-all-ingress",
            project=project,
            name=f"{name}-deny-all-ingress",
            network=self.vpc.id,
            direction="INGRESS",
            priority=65534,
            denies=[gcp.compute.FirewallDenyArgs(protocol="all")],
            source_ranges=["0.0.0.0/0"],
            log_config=log,
            opts=child,
        )
        visibility = gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
            networks=[
                gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=self.vpc.id)
            ]
        )
        # Every Google API name, and Artifact Registry's pkg.dev, resolves to the restricted VIP.
        for zone_name, domain in (("googleapis", "googleapis.com."), ("pkg-dev", "pkg.dev.")):
            zone = gcp.dns.ManagedZone(
                f"{name}-{zone_name}",
                project=project,
                name=f"{name}-{zone_name}",
                dns_name=domain,
                visibility="private",
                private_visibility_config=visibility,
                description=f"{domain} -> restricted Google APIs VIP",
                opts=child,
            )
            vip_name = "restricted.googleapis.com." if zone_name == "googleapis" else domain
            gcp.dns.RecordSet(
                f"{name}-{zone_name}-a",
                project=project,
                managed_zone=zone.name,
                name=vip_name,
                type="A",
                ttl=300,
                rrdatas=RESTRICTED_VIP_ADDRESSES,
                opts=child,
            )
            gcp.dns.RecordSet(
                f"{name}-{zone_name}-cname",
                project=project,
                managed_zone=zone.name,
                name=f"*.{domain}",
                type="CNAME",
                ttl=300,
                rrdatas=[vip_name],
                opts=child,
            )
        self.register_outputs({"network": self.vpc.self_link, "subnet": self.subnet.self_link})
