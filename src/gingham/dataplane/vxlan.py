"""VXLAN: the ``vxlan.gingham`` device, its tunnel addresses, and static peers.

One device carries both inner families (VNI 4096, UDP 4789, learning off, outer
UDP checksums as :data:`CHECKSUM_FLAGS` says): the kernel never floods or
learns, every remote endpoint is a permanent neighbour
entry (remote tunnel address -> remote MAC) plus an FDB entry (remote MAC ->
remote underlay address), as :class:`~gingham.calc.messages.VxlanPeerUpdate`
says. Routes ``via <tunnel address> dev vxlan.gingham onlink`` are the route
manager's job: :class:`Vxlan` adds the device and peers before them
(:meth:`Vxlan.apply_additions`) and removes stale peers and the device after
stale routes are gone (:meth:`Vxlan.apply_removals`).

Tunnel address: the agent's housekeeping allocates one from IPAM and publishes
it on the Node; the graph puts it in :class:`VxlanDeviceUpdate` and it sits on
the device as a /32 (/128). The device MAC is derived from the host name
(:func:`gingham.calc.routing_types.vxlan_mac`) so peers know it without asking.

:class:`VxlanDriver` does the I/O through ``ip``/``bridge`` with argument lists
(``-batch -`` for many changes at once); ``netns`` selects a named network
namespace (``ip -n``). It compares with the kernel before it writes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address, ip_interface
from typing import Any, Protocol

from gingham.calc.inputs import IPAddress
from gingham.calc.messages import (
    VxlanDeviceRemove,
    VxlanDeviceUpdate,
    VxlanPeerRemove,
    VxlanPeerUpdate,
)
from gingham.calc.routing_types import VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI
from gingham.errors import DataplaneError

Runner = Callable[[Sequence[str], str | None], str]

# Outer UDP checksums, said explicitly rather than left to the kernel's default (which
# is ``udpcsum``, on, for a device made without the flag on the 6.18 kernel gingham is
# developed on). IPv4: zero, as RFC 7348 section 5 says and Calico's vxlan.calico has;
# the inner packet carries its own checksum. With the checksum on, every encapsulated
# TCP super-packet is GSO type UDP_TUNNEL_CSUM, which a NIC that segments UDP tunnels
# but not with outer checksums (``ethtool -k``: tx-udp_tnl-segmentation on,
# tx-udp_tnl-csum-segmentation off) sends back to software segmentation. IPv6: the
# checksum stays (a zero one is only accepted by receivers that opted in, RFC 6935),
# and zero-checksum packets are not accepted. These cannot be changed on a live device
# (the kernel refuses): a device found with other values (made by an older gingham) is
# kept, since making it again would stop the traffic through it for a moment; the next
# time the device is made (a reboot, a VNI or port change) it gets them.
CHECKSUM_FLAGS: tuple[str, ...] = ("noudpcsum", "noudp6zerocsumtx", "noudp6zerocsumrx")
# what ``ip -j -d link`` then shows in linkinfo.info_data
CHECKSUM_INFO: dict[str, bool] = {
    "udp_csum": False,
    "udp_zero_csum6_tx": False,
    "udp_zero_csum6_rx": False,
}


def run_command(argv: Sequence[str], stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DataplaneError(f"{' '.join(argv)}: {exc}") from exc
    if proc.returncode != 0:
        detail = proc.stderr.strip() or proc.stdout.strip()
        raise DataplaneError(f"{' '.join(argv)} failed: {detail}")
    return proc.stdout


@dataclass(frozen=True)
class PeerDiff:
    added: tuple[VxlanPeerUpdate, ...] = ()
    removed_neighbours: tuple[str, ...] = ()
    removed_fdb: tuple[tuple[str, str], ...] = ()


class VxlanDriver:
    def __init__(
        self, netns: str | None = None, device: str = VXLAN_DEVICE, runner: Runner = run_command
    ) -> None:
        self.netns = netns
        self.device = device
        self._run = runner

    # -- plumbing ---------------------------------------------------------------
    def _ip(self, *args: str, stdin: str | None = None) -> str:
        ns = ["-n", self.netns] if self.netns else []
        return self._run(["ip", *ns, *args], stdin)

    def _bridge(self, *args: str, stdin: str | None = None) -> str:
        ns = ["-n", self.netns] if self.netns else []
        return self._run(["bridge", *ns, *args], stdin)

    def _json(self, out: str) -> list[dict[str, Any]]:
        out = out.strip()
        return json.loads(out) if out else []

    # -- device -----------------------------------------------------------------
    def device_info(self) -> dict[str, Any] | None:
        for link in self._json(self._ip("-j", "-d", "link", "show")):
            if link.get("ifname") == self.device:
                return link
        return None

    def ensure_device(
        self,
        local: IPAddress,
        mac: str,
        mtu: int,
        tunnel_addrs: Iterable[IPAddress] = (),
        vni: int = VXLAN_VNI,
        port: int = VXLAN_PORT,
    ) -> bool:
        """Create or fix the device; returns True when it had to be (re)created."""
        link = self.device_info()
        recreate = link is None or not self._matches(link, local, vni, port)
        if link is not None and recreate:
            self._ip("link", "del", self.device)
        if recreate:
            self._ip(
                "link", "add", self.device, "type", "vxlan", "id", str(vni),
                "dstport", str(port), "local", str(local), "nolearning", *CHECKSUM_FLAGS,
            )  # fmt: skip
        if recreate or not self._settled(link, mac, mtu):
            self._ip("link", "set", self.device, "address", mac, "mtu", str(mtu), "up")
        self._sync_addresses(set(tunnel_addrs))
        return recreate

    @staticmethod
    def _matches(link: dict[str, Any], local: IPAddress, vni: int, port: int) -> bool:
        info = link.get("linkinfo", {})
        data = info.get("info_data", {})
        found_local = data.get("local") or data.get("local6")
        return (
            info.get("info_kind") == "vxlan"
            and data.get("id") == vni
            and data.get("port") == port
            and found_local is not None
            and ip_address(found_local) == local
            and not data.get("learning", False)
        )

    @staticmethod
    def _settled(link: dict[str, Any] | None, mac: str, mtu: int) -> bool:
        """Whether the device already has this MAC and MTU and is up."""
        return (
            link is not None
            and str(link.get("address", "")).lower() == mac.lower()
            and link.get("mtu") == mtu
            and "UP" in link.get("flags", ())
        )

    def _sync_addresses(self, wanted: set[IPAddress]) -> None:
        have: set[IPAddress] = set()
        for link in self._json(self._ip("-j", "addr", "show", "dev", self.device)):
            for info in link.get("addr_info", []):
                if info.get("scope") == "link":
                    continue
                iface = ip_interface(f"{info['local']}/{info['prefixlen']}")
                if iface.network.prefixlen == iface.max_prefixlen and iface.ip in wanted:
                    have.add(iface.ip)
                else:
                    self._ip("addr", "del", str(iface), "dev", self.device)
        for addr in sorted(wanted - have, key=lambda a: (a.version, int(a))):
            self._ip("addr", "add", f"{addr}/{addr.max_prefixlen}", "dev", self.device)

    def remove_device(self) -> None:
        if self.device_info() is not None:
            self._ip("link", "del", self.device)

    # -- peers ------------------------------------------------------------------
    def neighbours(self) -> dict[str, str]:
        """Permanent neighbour entries on the device: tunnel address -> MAC."""
        out = self._ip("-j", "neigh", "show", "dev", self.device, "nud", "permanent")
        return {n["dst"]: n.get("lladdr", "") for n in self._json(out)}

    def fdb(self) -> set[tuple[str, str]]:
        """FDB entries with a remote destination: (MAC, underlay address)."""
        out = self._bridge("-j", "fdb", "show", "dev", self.device)
        return {(e["mac"], e["dst"]) for e in self._json(out) if "dst" in e}

    def add_peers(self, peers: Iterable[VxlanPeerUpdate]) -> tuple[VxlanPeerUpdate, ...]:
        """Make every desired FDB and neighbour entry exist (idempotent, two batches)."""
        peers = tuple(peers)
        if not peers:
            return ()
        neigh, fdb = self.neighbours(), self.fdb()
        fdb_lines, neigh_lines, added = [], [], []
        for p in peers:
            changed = False
            if (p.mac, str(p.underlay)) not in fdb:
                fdb_lines.append(
                    f"fdb replace {p.mac} dev {self.device} dst {p.underlay} self permanent"
                )
                changed = True
            if neigh.get(str(p.tunnel_addr)) != p.mac:
                neigh_lines.append(
                    f"neigh replace {p.tunnel_addr} lladdr {p.mac} dev {self.device} nud permanent"
                )
                changed = True
            if changed:
                added.append(p)
        if fdb_lines:
            self._bridge("-batch", "-", stdin="\n".join(fdb_lines) + "\n")
        if neigh_lines:
            self._ip("-batch", "-", stdin="\n".join(neigh_lines) + "\n")
        return tuple(added)

    def remove_stale_peers(self, peers: Iterable[VxlanPeerUpdate]) -> PeerDiff:
        peers = tuple(peers)
        want_neigh = {str(p.tunnel_addr): p.mac for p in peers}
        want_fdb = {(p.mac, str(p.underlay)) for p in peers}
        stale_neigh = sorted(a for a, m in self.neighbours().items() if want_neigh.get(a) != m)
        stale_fdb = sorted(e for e in self.fdb() if e not in want_fdb)
        if stale_neigh:
            lines = [f"neigh del {a} dev {self.device}" for a in stale_neigh]
            self._ip("-batch", "-", stdin="\n".join(lines) + "\n")
        if stale_fdb:
            lines = [f"fdb del {m} dev {self.device} dst {d} self" for m, d in stale_fdb]
            self._bridge("-batch", "-", stdin="\n".join(lines) + "\n")
        return PeerDiff((), tuple(stale_neigh), tuple(stale_fdb))

    def sync_peers(self, peers: Iterable[VxlanPeerUpdate]) -> PeerDiff:
        """Add what is missing, then remove what is stale (when no route ordering matters)."""
        peers = tuple(peers)
        added = self.add_peers(peers)
        diff = self.remove_stale_peers(peers)
        return PeerDiff(added, diff.removed_neighbours, diff.removed_fdb)


class VxlanDevice(Protocol):
    """What :class:`VxlanDriver` offers (and ``vxlan_fake.FakeVxlanDriver``)."""

    def device_info(self) -> dict[str, Any] | None: ...
    def ensure_device(self, local: IPAddress, mac: str, mtu: int,
                      tunnel_addrs: Iterable[IPAddress] = (), vni: int = VXLAN_VNI,
                      port: int = VXLAN_PORT) -> bool: ...
    def remove_device(self) -> None: ...
    def add_peers(self, peers: Iterable[VxlanPeerUpdate]) -> tuple[VxlanPeerUpdate, ...]: ...
    def remove_stale_peers(self, peers: Iterable[VxlanPeerUpdate]) -> PeerDiff: ...


class Vxlan:
    """Desired device and peers from messages, applied through a :class:`VxlanDriver` in
    two halves around the routes (see the module docstring)."""

    def __init__(self, driver: VxlanDevice) -> None:
        self.driver = driver
        self._device: VxlanDeviceUpdate | None = None
        self._peers: dict[IPAddress, VxlanPeerUpdate] = {}
        self._device_done: VxlanDeviceUpdate | None = None  # None: not known to be there
        self._peers_dirty = True  # peers to add, or the kernel's to compare
        self._stale = True  # peers may need removing
        # Only a device this agent was told to remove goes: one found at start-up
        # while none is wanted yet may be waiting for its tunnel address.
        self._remove_device = False

    def on_message(self, msg: object) -> None:
        if isinstance(msg, VxlanDeviceUpdate):
            self._device = msg
        elif isinstance(msg, VxlanDeviceRemove):
            self._device = None
            self._stale = self._remove_device = True
        elif isinstance(msg, VxlanPeerUpdate):
            self._peers[msg.tunnel_addr] = msg
            self._peers_dirty = True
        elif isinstance(msg, VxlanPeerRemove):
            self._peers.pop(msg.tunnel_addr, None)
            self._stale = True

    def resync(self) -> None:
        """Compare with the kernel again on the next apply."""
        self._device_done = None
        self._peers_dirty = self._stale = True

    def apply_additions(self) -> bool:
        """The device (created, or fixed) and every wanted peer, before the routes. True
        when the device was (re)created: the kernel dropped every route through it."""
        device = self._device
        if device is None:
            return False
        created = False
        try:
            if device != self._device_done:
                created = self.driver.ensure_device(device.local, device.mac, device.mtu,
                                                    device.tunnel_addrs, device.vni, device.port)
                if created:
                    self._peers_dirty = True  # a new device has no neighbours yet
                self._device_done = device
            if self._peers_dirty:
                self.driver.add_peers(sorted(self._peers.values(), key=VxlanPeerUpdate.sort_key))
                self._peers_dirty = False
        except Exception:
            self.resync()
            raise
        return created

    def apply_removals(self) -> None:
        """Stale peers, and the device when none is wanted, after the routes."""
        if not self._stale:
            return
        try:
            if self._device is None:
                if self._remove_device:
                    self.driver.remove_device()  # its routes and neighbours go with it
                    self._device_done = None
            elif self.driver.device_info() is not None:
                self.driver.remove_stale_peers(self._peers.values())
        except Exception:
            self.resync()
            raise
        self._stale = self._remove_device = False
