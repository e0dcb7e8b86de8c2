"""Event sequencer: coalesces pending changes per key and flushes them in a safe order.

Between two flushes the graph may change the same thing many times; the
sequencer keeps only the latest desired value per key and, at flush time,
compares it with what was last sent, so the dataplane sees one message per
changed key and nothing for a key that went A -> B -> A.

Flush order (everything a message refers to exists when it arrives, nothing is
removed while referenced):

    ConfigUpdate
    IPSetUpdate (new or replaced sets), IPSetDeltaUpdate
    PolicyUpdate -> ProfileUpdate -> WorkloadEndpointUpdate / HostEndpointUpdate
    WorkloadEndpointRemove / HostEndpointRemove -> ProfileRemove -> PolicyRemove
    IPSetRemove
    MtuUpdate, TunnelAddressWanted
    VxlanDeviceUpdate -> VxlanPeerUpdate -> RouteUpdate      (a VXLAN route needs its
    RouteRemove -> VxlanPeerRemove -> VxlanDeviceRemove       peer; a peer outlives its routes)
    NatOutgoingUpdate, ServiceLoopUpdate (before BIRD advertises a service CIDR)
    BgpUpdate (BIRD exports routes the kernel already has)
    InSync (once, in the first flush after the graph reported in-sync)

Within a group messages are sorted by id so a flush is deterministic. Keyed
routing state (routes by destination, VXLAN peers by tunnel address) and the
single-valued ones (the device, NAT, BGP, MTU) are coalesced like the rest: a
key that went A -> B -> A between two flushes sends nothing.

IP sets: a set created since the last flush is sent whole (IPSetUpdate with
its members at flush time); a set already sent gets deltas (also when it was
removed and re-created in between: the dataplane never saw it go), accumulated as
pending added/removed members that cancel each other (add then remove of the
same member in one batch sends nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Final

from gingham.calc.inputs import IPAddress, IPNetwork
from gingham.calc.messages import (
    BgpUpdate,
    ConfigUpdate,
    HostEndpointRemove,
    HostEndpointUpdate,
    InSync,
    IPSetDeltaUpdate,
    IPSetKind,
    IPSetRemove,
    IPSetUpdate,
    Message,
    MtuUpdate,
    NatOutgoingUpdate,
    PolicyID,
    PolicyRemove,
    PolicyUpdate,
    ProfileRemove,
    ProfileUpdate,
    RouteRemove,
    RouteUpdate,
    ServiceLoopUpdate,
    TunnelAddressWanted,
    VxlanDeviceRemove,
    VxlanDeviceUpdate,
    VxlanPeerRemove,
    VxlanPeerUpdate,
    WorkloadEndpointID,
    WorkloadEndpointRemove,
    WorkloadEndpointUpdate,
)

EndpointMessage = WorkloadEndpointUpdate | HostEndpointUpdate
_UNSET: Final[Any] = object()  # nothing pending (None means: remove)


class _Single:
    """One value that is sent when it differs from what was sent last."""

    __slots__ = ("pending", "sent")

    def __init__(self) -> None:
        self.pending: Any = _UNSET
        self.sent: Any = None

    def take(self) -> tuple[bool, Any, Any]:
        """(changed, new value, value sent before); clears what was pending."""
        pending, self.pending = self.pending, _UNSET
        if pending is _UNSET or pending == self.sent:
            return False, None, None
        before, self.sent = self.sent, pending
        return True, pending, before


class Sequencer:
    def __init__(self, members_of: Callable[[str], frozenset[str]]) -> None:
        self._members_of = members_of
        # IP sets.
        self._sent_sets: dict[str, IPSetKind] = {}
        self._live_sets: dict[str, IPSetKind] = {}
        self._replace: set[str] = set()
        self._added: dict[str, set[str]] = {}
        self._removed: dict[str, set[str]] = {}
        # Sets sent before and removed since the last flush: their members as
        # the dataplane has them, so a set that comes back before the flush is
        # patched with a delta instead of being replaced (or is left alone).
        self._base: dict[str, frozenset[str]] = {}
        self._dead: set[str] = set()  # sent, and removed since the last flush
        # Keyed objects: pending desired value (None = absent) and what was sent.
        self._pending_policies: dict[PolicyID, PolicyUpdate | None] = {}
        self._sent_policies: dict[PolicyID, PolicyUpdate] = {}
        self._pending_profiles: dict[str, ProfileUpdate | None] = {}
        self._sent_profiles: dict[str, ProfileUpdate] = {}
        self._pending_endpoints: dict[Hashable, EndpointMessage | None] = {}
        self._sent_endpoints: dict[Hashable, EndpointMessage] = {}
        self._pending_config: ConfigUpdate | None = None
        self._sent_config: ConfigUpdate | None = None
        # Routing.
        self._pending_routes: dict[IPNetwork, RouteUpdate | None] = {}
        self._sent_routes: dict[IPNetwork, RouteUpdate] = {}
        self._pending_peers: dict[IPAddress, VxlanPeerUpdate | None] = {}
        self._sent_peers: dict[IPAddress, VxlanPeerUpdate] = {}
        self._device = _Single()
        self._mtu = _Single()
        self._tunnel = _Single()
        self._nat = _Single()
        self._service_loop = _Single()
        self._bgp = _Single()
        self._in_sync_pending = False
        self._in_sync_sent = False

    # --- IP sets -------------------------------------------------------------

    def set_added(self, set_id: str, kind: IPSetKind) -> None:
        self._live_sets[set_id] = kind
        self._replace.add(set_id)
        self._dead.discard(set_id)
        self._added.pop(set_id, None)
        self._removed.pop(set_id, None)

    def set_removed(self, set_id: str) -> None:
        """Called while the member index still has the set's members."""
        if set_id in self._sent_sets and set_id not in self._base:
            current = self._members_of(set_id)
            added = self._added.get(set_id, set())
            removed = self._removed.get(set_id, set())
            self._base[set_id] = (current - added) | removed
        if set_id in self._sent_sets:
            self._dead.add(set_id)
        self._live_sets.pop(set_id, None)
        self._replace.discard(set_id)
        self._added.pop(set_id, None)
        self._removed.pop(set_id, None)

    def set_member_added(self, set_id: str, member: str) -> None:
        if set_id in self._replace:
            return
        removed = self._removed.get(set_id)
        if removed is not None and member in removed:
            removed.discard(member)
        else:
            self._added.setdefault(set_id, set()).add(member)

    def set_member_removed(self, set_id: str, member: str) -> None:
        if set_id in self._replace:
            return
        added = self._added.get(set_id)
        if added is not None and member in added:
            added.discard(member)
        else:
            self._removed.setdefault(set_id, set()).add(member)

    # --- keyed objects -----------------------------------------------------

    def policy(self, policy_id: PolicyID, msg: PolicyUpdate | None) -> None:
        self._pending_policies[policy_id] = msg

    def profile(self, profile_id: str, msg: ProfileUpdate | None) -> None:
        self._pending_profiles[profile_id] = msg

    def endpoint(self, endpoint_id: Hashable, msg: EndpointMessage | None) -> None:
        self._pending_endpoints[endpoint_id] = msg

    def config(self, msg: ConfigUpdate) -> None:
        self._pending_config = msg

    def route(self, dst: IPNetwork, msg: RouteUpdate | None) -> None:
        self._pending_routes[dst] = msg

    def vxlan_peer(self, tunnel_addr: IPAddress, msg: VxlanPeerUpdate | None) -> None:
        self._pending_peers[tunnel_addr] = msg

    def vxlan_device(self, msg: VxlanDeviceUpdate | None) -> None:
        self._device.pending = msg

    def mtu(self, msg: MtuUpdate) -> None:
        self._mtu.pending = msg

    def tunnel_wanted(self, msg: TunnelAddressWanted) -> None:
        self._tunnel.pending = msg

    def nat(self, msg: NatOutgoingUpdate) -> None:
        self._nat.pending = msg

    def service_loop(self, msg: ServiceLoopUpdate) -> None:
        self._service_loop.pending = msg

    def bgp(self, msg: BgpUpdate) -> None:
        self._bgp.pending = msg

    def in_sync(self) -> None:
        if not self._in_sync_sent:
            self._in_sync_pending = True

    def stats(self) -> dict[str, int]:
        """Sizes of what was sent and what is pending (config and in-sync aside)."""
        return {
            "sent_sets": len(self._sent_sets),
            "sent_policies": len(self._sent_policies),
            "sent_profiles": len(self._sent_profiles),
            "sent_endpoints": len(self._sent_endpoints),
            "sent_routes": len(self._sent_routes),
            "sent_vxlan_peers": len(self._sent_peers),
            "pending": len(self._pending_policies) + len(self._pending_profiles)
            + len(self._pending_endpoints) + len(self._replace) + len(self._added)
            + len(self._removed) + len(self._dead) + len(self._base)
            + len(self._pending_routes) + len(self._pending_peers),
        }

    # --- flush ---------------------------------------------------------------

    def flush(self) -> list[Message]:
        out: list[Message] = []
        if self._pending_config is not None and self._pending_config != self._sent_config:
            out.append(self._pending_config)
            self._sent_config = self._pending_config
        self._pending_config = None

        for set_id in sorted(self._replace):
            kind = self._live_sets[set_id]
            members = self._members_of(set_id)
            base = self._base.get(set_id)
            if base is None:
                out.append(IPSetUpdate(set_id, kind, members))
            elif members != base:
                out.append(IPSetDeltaUpdate(set_id, members - base, base - members))
            self._sent_sets[set_id] = kind
        for set_id in sorted(self._added.keys() | self._removed.keys()):
            added = frozenset(self._added.get(set_id, ()))
            removed = frozenset(self._removed.get(set_id, ()))
            if added or removed:
                out.append(IPSetDeltaUpdate(set_id, added, removed))
        set_removes = sorted(self._dead)
        for set_id in set_removes:
            del self._sent_sets[set_id]
        self._dead.clear()
        self._replace.clear()
        self._base.clear()
        self._added.clear()
        self._removed.clear()

        pol_up, pol_rm = _diff(self._pending_policies, self._sent_policies)
        prof_up, prof_rm = _diff(self._pending_profiles, self._sent_profiles)
        ep_up, ep_rm = _diff(self._pending_endpoints, self._sent_endpoints)
        out.extend(pol_up)
        out.extend(prof_up)
        out.extend(ep_up)
        for key in ep_rm:
            if isinstance(key, WorkloadEndpointID):
                out.append(WorkloadEndpointRemove(key))
            else:
                out.append(HostEndpointRemove(str(key)))
        out.extend(ProfileRemove(k) for k in prof_rm)
        out.extend(PolicyRemove(k) for k in pol_rm)
        out.extend(IPSetRemove(s) for s in set_removes)
        self._flush_routing(out)
        if self._in_sync_pending:
            out.append(InSync())
            self._in_sync_pending = False
            self._in_sync_sent = True
        return out


    def _flush_routing(self, out: list[Message]) -> None:
        for single in (self._mtu, self._tunnel):
            changed, msg, _ = single.take()
            if changed:
                out.append(msg)
        device_changed, device, device_before = self._device.take()
        if device_changed and device is not None:
            out.append(device)
        peer_up, peer_rm = _diff(self._pending_peers, self._sent_peers)
        route_up, route_rm = _diff(self._pending_routes, self._sent_routes)
        out.extend(peer_up)
        out.extend(route_up)
        out.extend(RouteRemove(dst) for dst in route_rm)
        out.extend(VxlanPeerRemove(addr) for addr in peer_rm)
        if device_changed and device is None and device_before is not None:
            out.append(VxlanDeviceRemove())
        for single in (self._nat, self._service_loop, self._bgp):
            changed, msg, _ = single.take()
            if changed:
                out.append(msg)


def _sort_key(key: Any) -> tuple[str, str]:
    return (type(key).__name__, str(key))


def _diff(pending: dict[Any, Any], sent: dict[Any, Any]) -> tuple[list[Any], list[Any]]:
    """Updates to send and keys to remove; updates ``sent`` and clears ``pending``."""
    updates: list[Any] = []
    removes: list[Any] = []
    for key in sorted(pending, key=_sort_key):
        msg = pending[key]
        if msg is None:
            if key in sent:
                del sent[key]
                removes.append(key)
        elif sent.get(key) != msg:
            sent[key] = msg
            updates.append(msg)
    pending.clear()
    return updates, removes
