"""The value helpers the rest of the project uses."""

from __future__ import annotations

import pytest

from gingham.model import (
    check_cidr,
    check_port,
    check_protocol,
    ip_version_of,
    port_range,
    protocol_number,
)
from gingham.model.meta import camel


@pytest.mark.parametrize(("value", "version"), [
    ("198.18.0.0/16", 4), ("198.18.0.1", 4), ("2001:db8::/32", 6), ("2001:db8::1", 6),
])
def test_ip_version_of(value: str, version: int) -> None:
    assert ip_version_of(value) == version


def test_ip_version_of_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="invalid"):
        ip_version_of("nope")


@pytest.mark.parametrize(("value", "expected"), [
    ("198.18.3.7/16", "198.18.0.0/16"),
    ("198.18.3.7", "198.18.3.7/32"),
    ("2001:DB8:0::1/64", "2001:db8::/64"),
    (" 192.0.2.0/24 ", "192.0.2.0/24"),
])
def test_cidr_normalised(value: str, expected: str) -> None:
    assert check_cidr(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (80, (80, 80)), ("80", (80, 80)), ("1000:2000", (1000, 2000)), ("0:65535", (0, 65535)),
    ("http", "http"), ("7:7", (7, 7)),
])
def test_port_range(value: int | str, expected: tuple[int, int] | str) -> None:
    assert port_range(value) == expected


@pytest.mark.parametrize("value", [-1, 65536, "65536", "1:", ":2", "5:4", "a b", "", True, 1.5])
def test_bad_ports(value: object) -> None:
    with pytest.raises(ValueError):
        check_port(value)


@pytest.mark.parametrize(("value", "number", "canonical"), [
    ("TCP", 6, "TCP"), ("tcp", 6, "TCP"), ("udp", 17, "UDP"), ("icmp", 1, "ICMP"),
    ("ICMPv6", 58, "ICMPv6"), ("icmpv6", 58, "ICMPv6"), ("SCTP", 132, "SCTP"),
    ("udplite", 136, "UDPLite"), (47, 47, 47), ("6", 6, 6),
])
def test_protocols(value: int | str, number: int, canonical: int | str) -> None:
    assert protocol_number(value) == number
    assert check_protocol(value) == canonical


@pytest.mark.parametrize("value", [0, 256, "gre", "", False, None])
def test_bad_protocols(value: object) -> None:
    with pytest.raises(ValueError):
        check_protocol(value)


@pytest.mark.parametrize(("name", "alias"), [
    ("not_icmp", "notICMP"), ("peer_ip", "peerIP"), ("ip_nats", "ipNATs"),
    ("vxlan_vni", "vxlanVNI"), ("ipv4_vxlan_tunnel_addr", "ipv4VXLANTunnelAddr"),
    ("vxlan_tunnel_mac_addr_v6", "vxlanTunnelMACAddrV6"), ("reserved_cidrs", "reservedCIDRs"),
    ("route_reflector_cluster_id", "routeReflectorClusterID"), ("pre_dnat", "preDNAT"),
    ("service_cluster_ips", "serviceClusterIPs"), ("container_id", "containerID"),
    ("expected_ips", "expectedIPs"), ("disable_bgp_export", "disableBGPExport"),
    ("ip_version", "ipVersion"), ("nat_outgoing", "natOutgoing"), ("vxlan_mtu", "vxlanMTU"),
    ("labels_to_apply", "labelsToApply"), ("except_", "except"),
])
def test_calico_spelling_of_fields(name: str, alias: str) -> None:
    assert camel(name) == alias
