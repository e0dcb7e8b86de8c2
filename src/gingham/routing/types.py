"""Small, pure input types for routing between hosts.

The node agent converts model resources (Node, IPPool, BGPConfiguration,
BGPPeer) and the IPAM block listing into these, so the route calculation and
the BIRD renderer depend on nothing but the standard library.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Literal

from gingham.errors import ValidationError

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
VxlanMode = Literal["Never", "Always", "CrossSubnet"]
VXLAN_MODES: tuple[str, ...] = ("Never", "Always", "CrossSubnet")

DEFAULT_AS_NUMBER = 64512
VXLAN_DEVICE = "vxlan.gingham"
VXLAN_VNI = 4096
VXLAN_PORT = 4789
VXLAN_OVERHEAD_V4 = 50
VXLAN_OVERHEAD_V6 = 70


def tunnel_handle(host: str) -> str:
    """IPAM handle under which the agent allocates a host's VXLAN tunnel address."""
    return f"vxlan-tunnel-addr-{host}"


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
class BlockInfo:
    """An IPAM block: its affine host (None when unclaimed) and addresses other hosts borrowed."""

    cidr: IPNetwork
    host: str | None
    borrowed: tuple[tuple[IPAddress, str], ...] = ()

    def __post_init__(self) -> None:
        for addr, _host in self.borrowed:
            if addr not in self.cidr:
                raise ValidationError(f"borrowed {addr} is not in {self.cidr}", "block.borrowed")


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
    ``peer_ip``."""

    name: str
    peer_ip: IPAddress | None = None
    as_number: int | None = None
    node: str | None = None
    node_selector: str | None = None
    peer_selector: str | None = None
    keep_original_next_hop: bool = False
    password: str | None = None


@dataclass(frozen=True)
class BGPSettings:
    enabled: bool = False
    as_number: int = DEFAULT_AS_NUMBER
    node_to_node_mesh: bool = True
    listen_port: int = 179
    # Short timers keep tests fast; production keeps BIRD's defaults (None).
    hold_time: int | None = None
    keepalive_time: int | None = None
    connect_retry_time: int | None = None
    peers: tuple[PeerInfo, ...] = ()
