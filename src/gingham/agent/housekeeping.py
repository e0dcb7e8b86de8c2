"""The agent's own writes to the datastore: its Node, liveness, tunnel address, spare block.

Everything else the agent does reads the datastore and changes the kernel;
this is the one place that writes, and only about this host:

- the Node resource (registered before the first dataplane change, merged
  with what an operator set: ``node.py``) and the liveness key under a lease,
  refreshed every ``ttl / 3`` seconds;
- the VXLAN tunnel address, when the graph asks for one
  (:class:`~gingham.calc.messages.TunnelAddressWanted`): one address under the
  handle ``vxlan-tunnel-addr-<host>``, reused if the handle already holds one
  (a claim whose Node write was lost must not take a second address), then
  published on the Node (``ipv4VXLANTunnelAddr`` and the device MAC);
- a spare IPAM block, claimed when a local workload appeared and this host's
  blocks run low, so that other hosts route it before a workload needs it.

Every write is compare-and-swap, retried through ``ipam.retry.Backoff``. A
failed claim is tried again later (at most once a ``retry`` interval); it
never stops the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from ipaddress import ip_address
from typing import Any

from gingham.agent.node import HostAddresses, Liveness, register_node
from gingham.calc.inputs import IPAddress
from gingham.calc.messages import RouteUpdate, TunnelAddressWanted
from gingham.calc.routing_types import vxlan_mac
from gingham.datastore import keys
from gingham.datastore.base import Datastore
from gingham.errors import AlreadyExists, GinghamError, NotFound, RevisionConflict
from gingham.ipam.retry import Backoff

log = logging.getLogger(__name__)

# Below this many free addresses in its blocks, a host claims its next block early.
SPARE_ADDRESSES = 16
TUNNEL_FIELDS = {4: ("ipv4VXLANTunnelAddr", "vxlanTunnelMACAddr")}


def tunnel_handle(host: str) -> str:
    """IPAM handle under which a host's VXLAN tunnel address is allocated."""
    return f"vxlan-tunnel-addr-{host}"


class Housekeeping:
    def __init__(
        self,
        datastore: Datastore,
        hostname: str,
        addresses: HostAddresses,
        known_node: Callable[[], dict[str, Any] | None] = lambda: None,
        liveness_ttl: int = 10,
        retry: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ds = datastore
        self.hostname = hostname
        self.addresses = addresses
        self.known_node = known_node
        self.liveness = Liveness(datastore, hostname, ttl=liveness_ttl)
        self.interval = max(1.0, liveness_ttl / 3)
        self.retry = retry
        self.backoff = Backoff(sleep)
        self.registered = False
        self.tunnels_wanted: set[int] = set()
        self.spare_wanted = False
        self._next_refresh = 0.0
        self._next_tunnel_try = 0.0

    # --- Node and liveness -------------------------------------------------------

    def due(self, now: float) -> bool:
        return now >= self._next_refresh

    def refresh(self, now: float, wall: float) -> None:
        """Register the Node (once) and refresh liveness. Raises what the datastore
        raises (``Unavailable`` first of all): the agent decides what that means."""
        self._next_refresh = now + 1.0  # a failure is tried again soon
        if not self.registered:
            register_node(self.ds, self.hostname, self.addresses, self.known_node(),
                          backoff=self.backoff)
            self.registered = True
        self.liveness.refresh(wall)
        self._next_refresh = now + self.interval

    # --- what the graph asks for -------------------------------------------------------

    def note(self, messages: Iterable[object]) -> None:
        """Remember what a batch of messages asks of the datastore."""
        for msg in messages:
            if isinstance(msg, TunnelAddressWanted):
                if msg.wanted:
                    self.tunnels_wanted.add(msg.version)
                    self._next_tunnel_try = 0.0
                else:
                    self.tunnels_wanted.discard(msg.version)
            elif isinstance(msg, RouteUpdate) and msg.workload:
                self.spare_wanted = True  # a local workload (re)appeared

    def claims(self, now: float) -> None:
        """Claim what was asked for; failures are logged and tried again later."""
        if self.spare_wanted:
            self.spare_wanted = False
            self.keep_a_spare_block()
        if self.tunnels_wanted and now >= self._next_tunnel_try:
            self._next_tunnel_try = now + self.retry
            for version in sorted(self.tunnels_wanted):
                try:
                    addr = self.ensure_tunnel_address(version)
                except GinghamError as exc:
                    log.warning("no VXLAN tunnel address yet: %s", exc)
                    continue
                if addr is not None:
                    log.info("VXLAN tunnel address %s published on Node %s", addr, self.hostname)

    def keep_a_spare_block(self) -> None:
        """Claim this host's next block before its blocks fill up (see IPAM.ensure_spare)."""
        from gingham.ipam import IPAM

        try:
            claimed = IPAM(self.ds, host=self.hostname).ensure_spare(SPARE_ADDRESSES)
        except GinghamError as exc:
            log.debug("no spare block claimed: %s", exc)
            return
        if claimed is not None:
            log.info("claimed block %s ahead of need", claimed)

    # --- the tunnel address ------------------------------------------------------------

    def ensure_tunnel_address(self, version: int = 4) -> IPAddress | None:
        """This host's tunnel address, published on its Node: the one published, else
        the one the handle holds, else a new one. None while there is no Node."""
        if version not in TUNNEL_FIELDS:
            raise GinghamError(f"no IPv{version} VXLAN tunnel address field on a Node")
        key = keys.resource_key("Node", self.hostname)
        current = self.ds.get(key)
        if current is None:
            return None
        published = _published(current.value, version)
        if published is not None:
            return published
        held = self.held_addresses(version)
        addr = held[0] if held else self._allocate(version)
        return self._publish(key, addr, version)

    def held_addresses(self, version: int) -> list[IPAddress]:
        """The addresses of ``version`` the tunnel handle holds (sorted)."""
        from gingham.ipam import Block, handles
        from gingham.ipam import keys as ipam_keys

        handle = tunnel_handle(self.hostname)
        kv = self.ds.get(ipam_keys.handle_key(handle))
        if kv is None:
            return []
        doc = handles.parse(kv)  # unreadable: raises, and nothing new is taken
        out: list[IPAddress] = []
        for cidr in doc.blocks:
            block_kv = self.ds.get(ipam_keys.block_key(cidr))
            if block_kv is None:
                continue
            block = Block.from_json(block_kv.value)
            out += [block.ip_of(o) for o, attrs in block.allocated() if attrs.handle == handle]
        return sorted(a for a in out if a.version == version)

    def _allocate(self, version: int) -> IPAddress:
        from gingham.ipam import IPAM

        got = IPAM(self.ds, host=self.hostname).auto_assign(
            tunnel_handle(self.hostname),
            {"namespace": "", "workload": "vxlan-tunnel", "host": self.hostname},
            num_v4=1 if version == 4 else 0,
            num_v6=1 if version == 6 else 0,
            use="Tunnel",
        )
        return got[0].ip

    def _publish(self, key: str, addr: IPAddress, version: int) -> IPAddress | None:
        addr_field, mac_field = TUNNEL_FIELDS[version]

        def step() -> IPAddress | None:
            current = self.ds.get(key)
            if current is None:
                return None
            published = _published(current.value, version)
            if published is not None:
                return published  # someone was quicker (another agent of ours, restarted)
            doc = dict(current.value)
            spec = doc.get("spec")
            spec = dict(spec) if isinstance(spec, dict) else {}
            spec[addr_field] = str(addr)
            spec[mac_field] = vxlan_mac(self.hostname)
            doc["spec"] = spec
            try:
                self.ds.update(key, doc, revision=current.mod_revision)
            except (NotFound, AlreadyExists):
                raise RevisionConflict(key) from None
            return addr

        return self.backoff.run(f"publish the tunnel address on {key}", step)


def _published(doc: Any, version: int) -> IPAddress | None:
    """The tunnel address a Node document publishes, if it is readable."""
    spec = doc.get("spec") if isinstance(doc, dict) else None
    value = spec.get(TUNNEL_FIELDS[version][0]) if isinstance(spec, dict) else None
    if not value:
        return None
    try:
        if not isinstance(value, str):  # 7 would read as 0.0.0.7
            raise TypeError(type(value).__name__)
        addr = ip_address(value)
    except (TypeError, ValueError):
        log.warning("Node has an unreadable %s %r: replacing it", TUNNEL_FIELDS[version][0],
                    value)
        return None
    return addr if addr.version == version else None
