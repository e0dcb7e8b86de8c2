"""Small, pure types for routing between hosts, and the numbers routing shares.

The calculation graph converts model resources (Node, IPPool,
BGPConfiguration, BGPPeer) into these (``calc.routing``); the route plan
(``calc.routes``), the routing messages (``calc.messages``) and the BIRD
renderer (``gingham.routing.bird_config``) read them. IPAM blocks are read as
``gingham.ipam.info.BlockInfo`` (``calc.inputs.BlockView``): no type of their own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Literal

from gingham.calc.inputs import BlockView, IPAddress, IPNetwork

__all__ = [
    "BGP_PORT",
    "DEFAULT_AS_NUMBER",
    "VXLAN_DEVICE",
    "VXLAN_MODES",
    "VXLAN_OVERHEAD_V4",
    "VXLAN_OVERHEAD_V6",
    "VXLAN_PORT",
    "VXLAN_VNI",
    "BGPSettings",
    "HostInfo",
    "IPAddress",
    "IPNetwork",
    "PeerInfo",
    "PoolInfo",
    "PrefixAdvertisementInfo",
    "VxlanMode",
    "exported_prefixes",
    "vxlan_mac",
    "workload_mtu",
]
from gingham.errors import RoutingError, ValidationError
from gingham.model.network import DEFAULT_AS_NUMBER

VxlanMode = Literal["Never", "Always", "CrossSubnet"]
VXLAN_MODES: tuple[str, ...] = ("Never", "Always", "CrossSubnet")

VXLAN_DEVICE = "vxlan.gingham"
VXLAN_VNI = 4096
VXLAN_PORT = 4789
VXLAN_OVERHEAD_V4 = 50
VXLAN_OVERHEAD_V6 = 70
BGP_PORT = 179


def vxlan_mac(host: str) -> str:
    """A stable, locally administered unicast MAC derived from the host name.

    Derived rather than random so that every host computes every peer's MAC
    without having to publish it, and a restarted agent keeps its own.
    """
    digest = hashlib.sha256(f"gingham-vxlan.{host}".encode()).digest()
    first = (digest[0] & 0xFC) | 0x02  # locally administered, unicast
    octets = [first, *digest[1:6]]
    return ":".join(f"{o:02x}" for o in octets)


@dataclass(frozen=True)
class HostInfo:
    """One host as routing sees it. ``subnet_v4``/``subnet_v6`` are the underlay subnets."""

    name: str
    address_v4: IPv4Address | None = None
    subnet_v4: IPv4Network | None = None
    address_v6: IPv6Address | None = None
    subnet_v6: IPv6Network | None = None
    as_number: int | None = None
    rr_cluster_id: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=True)
    vxlan_tunnel_v4: IPv4Address | None = None
    vxlan_tunnel_v6: IPv6Address | None = None
    vxlan_mac: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValidationError("host name must not be empty", "host.name")
        if (
            self.address_v4 is not None
            and self.subnet_v4 is not None
            and self.address_v4 not in self.subnet_v4
        ):
            raise ValidationError(
                f"{self.address_v4} is not in {self.subnet_v4}", f"host {self.name}: subnet_v4"
            )
        if (
            self.address_v6 is not None
            and self.subnet_v6 is not None
            and self.address_v6 not in self.subnet_v6
        ):
            raise ValidationError(
                f"{self.address_v6} is not in {self.subnet_v6}", f"host {self.name}: subnet_v6"
            )

    def address(self, version: int) -> IPAddress | None:
        return self.address_v4 if version == 4 else self.address_v6

    def subnet(self, version: int) -> IPNetwork | None:
        return self.subnet_v4 if version == 4 else self.subnet_v6

    def tunnel(self, version: int) -> IPAddress | None:
        return self.vxlan_tunnel_v4 if version == 4 else self.vxlan_tunnel_v6

    @property
    def mac(self) -> str:
        return self.vxlan_mac or vxlan_mac(self.name)


@dataclass(frozen=True)
class PoolInfo:
    cidr: IPNetwork
    vxlan_mode: VxlanMode = "Never"
    nat_outgoing: bool = False
    disabled: bool = False

    def __post_init__(self) -> None:
        if self.vxlan_mode not in VXLAN_MODES:
            raise ValidationError(
                f"vxlanMode must be one of {', '.join(VXLAN_MODES)}, not {self.vxlan_mode!r}",
                f"pool {self.cidr}: vxlanMode",
            )


@dataclass(frozen=True)
class PeerInfo:
    """A BGPPeer resource. ``node`` and ``node_selector`` restrict which hosts peer
    (neither = global); ``peer_selector`` makes the peers the selected hosts instead of
    ``peer_ip`` (and ``port``). ``password_file`` names the file on the host that holds
    the session's password: the graph never reads it, the BGP manager does."""

    name: str
    peer_ip: IPAddress | None = None
    as_number: int | None = None
    node: str | None = None
    node_selector: str | None = None
    peer_selector: str | None = None
    keep_original_next_hop: bool = False
    password_file: str | None = None
    port: int = BGP_PORT


@dataclass(frozen=True)
class PrefixAdvertisementInfo:
    """Communities (values, ``aa:nn`` or ``aa:nn:mm``) for every advertised route inside
    ``cidr``."""

    cidr: IPNetwork
    communities: tuple[str, ...]


@dataclass(frozen=True)
class BGPSettings:
    """BGP as one host sees it: the cluster's settings (BGPConfiguration ``default``) with
    this host's ``node.<name>`` applied to ``log_severity`` and
    ``prefix_advertisements``; ``node_listen_ports`` holds every host's own port."""

    enabled: bool = False
    as_number: int = DEFAULT_AS_NUMBER
    node_to_node_mesh: bool = True
    listen_port: int = BGP_PORT
    # Short timers keep tests fast; production keeps BIRD's defaults (None).
    hold_time: int | None = None
    keepalive_time: int | None = None
    connect_retry_time: int | None = None
    peers: tuple[PeerInfo, ...] = ()
    log_severity: str = "Info"
    prefix_advertisements: tuple[PrefixAdvertisementInfo, ...] = ()
    service_cidrs: tuple[IPNetwork, ...] = ()
    mesh_password_file: str | None = None
    node_listen_ports: tuple[tuple[str, int], ...] = ()  # (host, port), sorted

    def port_of(self, host: str) -> int:
        """The port ``host``'s BIRD listens on: its own, else the cluster's."""
        for name, port in self.node_listen_ports:
            if name == host:
                return port
        return self.listen_port


def workload_mtu(underlay_mtu: int, encapsulated: bool, underlay_version: int = 4) -> int:
    """MTU for workload interfaces (and the VXLAN device): VXLAN costs 50 (IPv4) or 70 (IPv6)."""
    if underlay_mtu < 1280:
        raise RoutingError(f"underlay MTU {underlay_mtu} is below the IPv6 minimum of 1280")
    if not encapsulated:
        return underlay_mtu
    return underlay_mtu - (VXLAN_OVERHEAD_V4 if underlay_version == 4 else VXLAN_OVERHEAD_V6)


def exported_prefixes(me: str, blocks: Iterable[BlockView]) -> tuple[IPNetwork, ...]:
    """What host ``me`` announces over BGP: its blocks and the addresses it borrowed
    from other hosts' blocks."""
    out: set[IPNetwork] = set()
    for block in blocks:
        if block.host == me:
            out.add(block.cidr)
        for addr, borrower in block.borrowed:
            if borrower == me and block.host != me:
                out.add(ip_network(addr))
    return tuple(sorted(out, key=lambda n: (n.version, int(n.network_address), n.prefixlen)))
