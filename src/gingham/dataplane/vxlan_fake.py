"""FakeVxlanDriver: the VXLAN device of one namespace in memory, with the methods of
:class:`~gingham.dataplane.vxlan.VxlanDriver`.

Checked against the kernel (tests/integration/routing/test_drivers.py runs the
same calls on both): a device whose VNI, port or local address changes is
deleted and created again; one with other outer UDP checksum settings is kept
(``udp_csum``: a device made by an older gingham, or by hand, with checksums on;
tests set it on the device they plant); a new device starts without neighbours, FDB
entries or addresses; peers need the device; neighbours are keyed by tunnel
address, FDB entries by (MAC, underlay address).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gingham.calc.inputs import IPAddress
from gingham.calc.messages import VxlanPeerUpdate
from gingham.calc.routing_types import VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI
from gingham.dataplane.netlink_fake import FakeRouteTable
from gingham.dataplane.vxlan import CHECKSUM_INFO, PeerDiff
from gingham.errors import DataplaneError


@dataclass
class _Device:
    local: IPAddress
    vni: int
    port: int
    mac: str = ""
    mtu: int = 1500
    up: bool = False
    udp_csum: bool = False  # what the real driver makes: CHECKSUM_INFO
    addresses: set[IPAddress] = field(default_factory=set)
    neighbours: dict[str, str] = field(default_factory=dict)
    fdb: set[tuple[str, str]] = field(default_factory=set)


class FakeVxlanDriver:
    """``links``: the namespace's route table, when routes through the device are tested
    too: the device is one of its links, and deleting the device takes its routes."""

    def __init__(self, device: str = VXLAN_DEVICE, links: FakeRouteTable | None = None) -> None:
        self.device = device
        self.links = links
        self._dev: _Device | None = None
        self.created = 0  # how often the device was (re)created: for tests that count work

    def device_info(self) -> dict[str, Any] | None:
        d = self._dev
        if d is None:
            return None
        local = "local" if d.local.version == 4 else "local6"
        return {
            "ifname": self.device,
            "address": d.mac,
            "mtu": d.mtu,
            "flags": ["UP"] if d.up else [],
            "linkinfo": {"info_kind": "vxlan",
                         "info_data": {"id": d.vni, "port": d.port, local: str(d.local),
                                       "learning": False, **CHECKSUM_INFO,
                                       "udp_csum": d.udp_csum}},
        }

    def addresses(self) -> set[IPAddress]:
        return set(self._dev.addresses) if self._dev is not None else set()

    def ensure_device(self, local: IPAddress, mac: str, mtu: int,
                      tunnel_addrs: Iterable[IPAddress] = (), vni: int = VXLAN_VNI,
                      port: int = VXLAN_PORT) -> bool:
        d = self._dev
        recreate = d is None or (d.local, d.vni, d.port) != (local, vni, port)
        if recreate:
            if d is not None:
                self.remove_device()
            d = self._dev = _Device(local, vni, port)
            self.created += 1
            if self.links is not None:
                self.links.add_link(self.device)
        assert d is not None
        d.mac, d.mtu, d.up = mac, mtu, True
        d.addresses = set(tunnel_addrs)
        return recreate

    def remove_device(self) -> None:
        if self._dev is not None and self.links is not None:
            self.links.remove_link(self.device)
        self._dev = None

    def _device(self) -> _Device:
        if self._dev is None:
            raise DataplaneError(f'Cannot find device "{self.device}"')
        return self._dev

    def neighbours(self) -> dict[str, str]:
        return dict(self._device().neighbours)

    def fdb(self) -> set[tuple[str, str]]:
        return set(self._device().fdb)

    def add_peers(self, peers: Iterable[VxlanPeerUpdate]) -> tuple[VxlanPeerUpdate, ...]:
        peers = tuple(peers)
        if not peers:
            return ()
        d = self._device()
        added = []
        for p in peers:
            entry = (p.mac, str(p.underlay))
            if entry not in d.fdb or d.neighbours.get(str(p.tunnel_addr)) != p.mac:
                added.append(p)
            # `fdb replace` moves the MAC to its new underlay address
            d.fdb = {e for e in d.fdb if e[0] != p.mac} | {entry}
            d.neighbours[str(p.tunnel_addr)] = p.mac
        return tuple(added)

    def remove_stale_peers(self, peers: Iterable[VxlanPeerUpdate]) -> PeerDiff:
        peers = tuple(peers)
        d = self._device()
        want_neigh = {str(p.tunnel_addr): p.mac for p in peers}
        want_fdb = {(p.mac, str(p.underlay)) for p in peers}
        stale_neigh = sorted(a for a, m in d.neighbours.items() if want_neigh.get(a) != m)
        stale_fdb = sorted(e for e in d.fdb if e not in want_fdb)
        for a in stale_neigh:
            del d.neighbours[a]
        d.fdb -= set(stale_fdb)
        return PeerDiff((), tuple(stale_neigh), tuple(stale_fdb))
