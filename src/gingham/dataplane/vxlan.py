"""VXLAN driver: the ``vxlan.gingham`` device, its tunnel addresses, and static peers.

One device carries both inner families (VNI 4096, UDP 4789, learning off): the
kernel never floods or learns, every remote endpoint is a permanent neighbour
entry (remote tunnel address -> remote MAC) plus an FDB entry (remote MAC ->
remote underlay address), exactly what :func:`gingham.dataplane.routes.plan_routes`
asks for. Routes ``via <tunnel address> dev vxlan.gingham onlink`` are the
route driver's job; apply :meth:`VxlanDriver.add_peers` before them and
:meth:`VxlanDriver.remove_stale_peers` after stale routes are gone.

Tunnel address: the agent allocates one address per family from this host's
block through IPAM under the handle ``vxlan-tunnel-addr-<host>``
(:func:`gingham.routing.types.tunnel_handle`) and passes it here; it sits on the
device as a /32 (/128). The device MAC is derived from the host name
(:func:`gingham.routing.types.vxlan_mac`) so peers know it without asking.

I/O goes through ``ip``/``bridge`` with argument lists (``-batch -`` for many
changes at once); ``netns`` selects a named network namespace (``ip -n``).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address, ip_interface
from typing import Any

from gingham.dataplane.routes import VxlanPeer
from gingham.errors import DataplaneError
from gingham.routing.types import VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI, IPAddress

Runner = Callable[[Sequence[str], str | None], str]


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
    added: tuple[VxlanPeer, ...] = ()
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
    ) -> bool:
        """Create or fix the device; returns True when it had to be (re)created."""
        link = self.device_info()
        recreate = link is None or not self._matches(link, local)
        if link is not None and recreate:
            self._ip("link", "del", self.device)
        if recreate:
            self._ip(
                "link", "add", self.device, "type", "vxlan", "id", str(VXLAN_VNI),
                "dstport", str(VXLAN_PORT), "local", str(local), "nolearning",
            )  # fmt: skip
        self._ip("link", "set", self.device, "address", mac, "mtu", str(mtu), "up")
        self._sync_addresses(set(tunnel_addrs))
        return recreate

    @staticmethod
    def _matches(link: dict[str, Any], local: IPAddress) -> bool:
        info = link.get("linkinfo", {})
        data = info.get("info_data", {})
        found_local = data.get("local") or data.get("local6")
        return (
            info.get("info_kind") == "vxlan"
            and data.get("id") == VXLAN_VNI
            and data.get("port") == VXLAN_PORT
            and found_local is not None
            and ip_address(found_local) == local
            and not data.get("learning", False)
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

    def add_peers(self, peers: Iterable[VxlanPeer]) -> tuple[VxlanPeer, ...]:
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

    def remove_stale_peers(self, peers: Iterable[VxlanPeer]) -> PeerDiff:
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

    def sync_peers(self, peers: Iterable[VxlanPeer]) -> PeerDiff:
        """Add what is missing, then remove what is stale (when no route ordering matters)."""
        peers = tuple(peers)
        added = self.add_peers(peers)
        diff = self.remove_stale_peers(peers)
        return PeerDiff(added, diff.removed_neighbours, diff.removed_fdb)
