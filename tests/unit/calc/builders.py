"""Builders for calc tests: model resources + their datastore keys, and a dataplane model.

``DataplaneState`` applies flushed messages the way a dataplane would and
checks, message by message, that nothing refers to an object that does not
exist and nothing is removed while referenced: that is the ordering contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gingham.calc import CalcGraph
from gingham.calc import messages as m
from gingham.calc.inputs import ResourceKey
from gingham.model import parse_resource

API = "projectcalico.org/v3"
HOST = "host-a"


def _meta(name: str, namespace: str | None, labels: Mapping[str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def wep(
    ns: str,
    name: str,
    *,
    node: str = HOST,
    ips: Iterable[str] = (),
    labels: Mapping[str, str] | None = None,
    profiles: Iterable[str] = (),
    ports: Iterable[tuple[str, str, int]] = (),
    sa: str | None = None,
) -> tuple[ResourceKey, Any]:
    spec: dict[str, Any] = {
        "node": node,
        "orchestrator": "k8s",
        "interfaceName": "gh" + (name.encode().hex() + "0" * 11)[:11],
        "ipNetworks": list(ips),
        "profiles": list(profiles),
        "ports": [{"name": n, "protocol": p, "port": port} for n, p, port in ports],
    }
    if sa:
        spec["serviceAccountName"] = sa
    doc = {"apiVersion": API, "kind": "WorkloadEndpoint", "metadata": _meta(name, ns, labels),
           "spec": spec}
    return ResourceKey("WorkloadEndpoint", name, ns), parse_resource(doc)


def hep(name: str, *, node: str = HOST, ips: Iterable[str] = ("192.0.2.10",),
        labels: Mapping[str, str] | None = None, iface: str = "eth0") -> tuple[ResourceKey, Any]:
    doc = {"apiVersion": API, "kind": "HostEndpoint", "metadata": _meta(name, None, labels),
           "spec": {"node": node, "interfaceName": iface, "expectedIPs": list(ips)}}
    return ResourceKey("HostEndpoint", name), parse_resource(doc)


def policy(
    name: str,
    *,
    ns: str | None = None,
    selector: str = "all()",
    ingress: Iterable[dict[str, Any]] = (),
    egress: Iterable[dict[str, Any]] = (),
    order: float | None = None,
    tier: str | None = None,
    types: Iterable[str] | None = None,
    namespace_selector: str | None = None,
    **flags: Any,
) -> tuple[ResourceKey, Any]:
    kind = "NetworkPolicy" if ns else "GlobalNetworkPolicy"
    spec: dict[str, Any] = {"selector": selector, "ingress": list(ingress),
                            "egress": list(egress)}
    if order is not None:
        spec["order"] = order
    if tier is not None:
        spec["tier"] = tier
    if types is not None:
        spec["types"] = list(types)
    if namespace_selector is not None:
        spec["namespaceSelector"] = namespace_selector
    spec.update(flags)
    doc = {"apiVersion": API, "kind": kind, "metadata": _meta(name, ns, None), "spec": spec}
    return ResourceKey(kind, name, ns), parse_resource(doc)


def profile(name: str, *, labels: Mapping[str, str] | None = None,
            ingress: Iterable[dict[str, Any]] = ({"action": "Allow"},),
            egress: Iterable[dict[str, Any]] = ({"action": "Allow"},)) -> tuple[ResourceKey, Any]:
    doc = {"apiVersion": API, "kind": "Profile", "metadata": _meta(name, None, None),
           "spec": {"labelsToApply": dict(labels or {}), "ingress": list(ingress),
                    "egress": list(egress)}}
    return ResourceKey("Profile", name), parse_resource(doc)


def namespace_profile(ns: str, labels: Mapping[str, str]) -> tuple[ResourceKey, Any]:
    """The kns.<ns> profile the way a Namespace converts (stored as a Profile)."""
    applied = {f"pcns.{k}": v for k, v in labels.items()}
    applied["pcns.projectcalico.org/name"] = ns
    return profile(f"kns.{ns}", labels=applied)


def netset(name: str, nets: Iterable[str], *, ns: str | None = None,
           labels: Mapping[str, str] | None = None) -> tuple[ResourceKey, Any]:
    kind = "NetworkSet" if ns else "GlobalNetworkSet"
    doc = {"apiVersion": API, "kind": kind, "metadata": _meta(name, ns, labels),
           "spec": {"nets": list(nets)}}
    return ResourceKey(kind, name, ns), parse_resource(doc)


def tier(name: str, order: float | None, action: str = "Deny") -> tuple[ResourceKey, Any]:
    spec: dict[str, Any] = {"defaultAction": action}
    if order is not None:
        spec["order"] = order
    doc = {"apiVersion": API, "kind": "Tier", "metadata": _meta(name, None, None), "spec": spec}
    return ResourceKey("Tier", name), parse_resource(doc)


class OrderingError(AssertionError):
    pass


@dataclass
class DataplaneState:
    """What a dataplane holds after applying messages; checks references as it goes."""

    ipsets: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    policies: dict[m.PolicyID, m.PolicyUpdate] = field(default_factory=dict)
    profiles: dict[str, m.ProfileUpdate] = field(default_factory=dict)
    endpoints: dict[Any, Any] = field(default_factory=dict)
    config: m.ConfigUpdate | None = None
    in_sync: bool = False
    routes: dict[Any, m.RouteUpdate] = field(default_factory=dict)
    peers: dict[Any, m.VxlanPeerUpdate] = field(default_factory=dict)
    device: m.VxlanDeviceUpdate | None = None
    nat: m.NatOutgoingUpdate | None = None
    service_loop: m.ServiceLoopUpdate | None = None
    bgp: m.BgpUpdate | None = None
    mtu: m.MtuUpdate | None = None
    tunnel: m.TunnelAddressWanted | None = None

    def snapshot(self) -> tuple[Any, ...]:
        return (dict(self.ipsets), dict(self.policies), dict(self.profiles),
                dict(self.endpoints))

    def routing(self) -> tuple[Any, ...]:
        return (dict(self.routes), dict(self.peers), self.device, self.nat, self.bgp,
                self.mtu, self.tunnel, self.service_loop)

    def apply(self, msgs: Iterable[m.Message]) -> None:
        for msg in msgs:
            self._apply(msg)

    def _check_rules(self, rules: Iterable[m.ParsedRule], what: object) -> None:
        for r in rules:
            missing = r.set_ids - self.ipsets.keys()
            if missing:
                raise OrderingError(f"{what} refers to missing sets {missing}")

    def _policies_in_use(self) -> set[m.PolicyID]:
        used: set[m.PolicyID] = set()
        for ep in self.endpoints.values():
            for tiers in _all_tiers(ep):
                for t in tiers:
                    used.update(t.ingress_policies, t.egress_policies)
        return used

    def _apply(self, msg: m.Message) -> None:
        if self.in_sync and isinstance(msg, m.InSync):
            raise OrderingError("InSync twice")
        match msg:
            case m.IPSetUpdate(set_id, kind, members):
                self.ipsets[set_id] = (kind, members)
            case m.IPSetDeltaUpdate(set_id, added, removed):
                if set_id not in self.ipsets:
                    raise OrderingError(f"delta for unknown set {set_id}")
                kind, members = self.ipsets[set_id]
                if added & members or removed - members or added & removed:
                    raise OrderingError(f"inexact delta for {set_id}: +{added} -{removed}")
                self.ipsets[set_id] = (kind, (members | added) - removed)
            case m.IPSetRemove(set_id):
                if set_id not in self.ipsets:
                    raise OrderingError(f"remove of unknown set {set_id}")
                for owner in [*self.policies.values(), *self.profiles.values()]:
                    if any(set_id in r.set_ids for r in owner.inbound + owner.outbound):
                        raise OrderingError(f"set {set_id} removed while in use")
                del self.ipsets[set_id]
            case m.PolicyUpdate():
                self._check_rules(msg.inbound + msg.outbound, msg.policy_id)
                self.policies[msg.policy_id] = msg
            case m.PolicyRemove(pid):
                if pid not in self.policies:
                    raise OrderingError(f"remove of unknown policy {pid}")
                if pid in self._policies_in_use():
                    raise OrderingError(f"policy {pid} removed while in use")
                del self.policies[pid]
            case m.ProfileUpdate():
                self._check_rules(msg.inbound + msg.outbound, msg.profile_id)
                self.profiles[msg.profile_id] = msg
            case m.ProfileRemove(pid):
                if pid not in self.profiles:
                    raise OrderingError(f"remove of unknown profile {pid}")
                if any(pid in ep.profile_ids for ep in self.endpoints.values()):
                    raise OrderingError(f"profile {pid} removed while in use")
                del self.profiles[pid]
            case m.WorkloadEndpointUpdate() | m.HostEndpointUpdate():
                for tiers in _all_tiers(msg):
                    for t in tiers:
                        for pid in t.ingress_policies + t.egress_policies:
                            if pid not in self.policies:
                                raise OrderingError(f"{msg.endpoint_id} uses missing {pid}")
                for pid in msg.profile_ids:
                    if pid not in self.profiles:
                        raise OrderingError(f"{msg.endpoint_id} uses missing profile {pid}")
                self.endpoints[msg.endpoint_id] = msg
            case m.WorkloadEndpointRemove(eid) | m.HostEndpointRemove(eid):
                if eid not in self.endpoints:
                    raise OrderingError(f"remove of unknown endpoint {eid}")
                del self.endpoints[eid]
            case m.ConfigUpdate():
                self.config = msg
            case m.InSync():
                self.in_sync = True
            case _:
                self._apply_routing(msg)

    def _apply_routing(self, msg: m.Message) -> None:
        """The routing half: a VXLAN route needs its peer, a peer the device."""
        match msg:
            case m.VxlanDeviceUpdate():
                self.device = msg
            case m.VxlanDeviceRemove():
                if self.device is None or self.peers:
                    raise OrderingError("device removed while absent or with peers")
                self.device = None
            case m.VxlanPeerUpdate():
                if self.device is None:
                    raise OrderingError(f"peer {msg.tunnel_addr} without a device")
                self.peers[msg.tunnel_addr] = msg
            case m.VxlanPeerRemove(addr):
                if addr not in self.peers:
                    raise OrderingError(f"remove of unknown peer {addr}")
                if any(r.via == addr and r.is_vxlan for r in self.routes.values()):
                    raise OrderingError(f"peer {addr} removed while a route uses it")
                del self.peers[addr]
            case m.RouteUpdate():
                if msg.is_vxlan and msg.via not in self.peers:
                    raise OrderingError(f"route {msg.dst} via unknown peer {msg.via}")
                self.routes[msg.dst] = msg
            case m.RouteRemove(dst):
                if dst not in self.routes:
                    raise OrderingError(f"remove of unknown route {dst}")
                del self.routes[dst]
            case m.NatOutgoingUpdate():
                self.nat = msg
            case m.ServiceLoopUpdate():
                self.service_loop = msg
            case m.BgpUpdate():
                self.bgp = msg
            case m.MtuUpdate():
                self.mtu = msg
            case m.TunnelAddressWanted():
                self.tunnel = msg
            case _:
                raise AssertionError(f"unknown message {msg!r}")


def _all_tiers(ep: Any) -> list[tuple[m.TierInfo, ...]]:
    if isinstance(ep, m.HostEndpointUpdate):
        return [ep.tiers, ep.untracked_tiers, ep.pre_dnat_tiers, ep.forward_tiers]
    return [ep.tiers]


def namespace(name: str, labels: Mapping[str, str] | None = None) -> tuple[ResourceKey, Any]:
    doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name, None, labels)}
    return ResourceKey("Namespace", name), parse_resource(doc)


def k8s_policy(name: str, ns: str, spec: Mapping[str, Any]) -> tuple[ResourceKey, Any]:
    doc = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": _meta(name, ns, None), "spec": dict(spec)}
    return ResourceKey("KubernetesNetworkPolicy", name, ns), parse_resource(doc)


def felix(name: str, **spec: Any) -> tuple[ResourceKey, Any]:
    doc = {"apiVersion": API, "kind": "FelixConfiguration", "metadata": _meta(name, None, None),
           "spec": spec}
    return ResourceKey("FelixConfiguration", name), parse_resource(doc)


class Harness:
    """A graph and the dataplane state its messages build, checked message by message."""

    def __init__(self, host: str = HOST, memory: Any = None) -> None:
        self.graph = CalcGraph(host, memory=memory)
        self.state = DataplaneState()
        self.last: list[m.Message] = []

    def put(self, *items: tuple[ResourceKey, Any]) -> list[m.Message]:
        for key, value in items:
            self.graph.on_update(key, value)
        return self.flush()

    def delete(self, *items: tuple[ResourceKey, Any]) -> list[m.Message]:
        for key, _ in items:
            self.graph.on_update(key, None)
        return self.flush()

    def flush(self) -> list[m.Message]:
        self.last = self.graph.flush()
        self.state.apply(self.last)
        return self.last

    def endpoint(self, ns: str, name: str) -> m.WorkloadEndpointUpdate:
        ep = self.state.endpoints[m.WorkloadEndpointID(ns, name)]
        assert isinstance(ep, m.WorkloadEndpointUpdate)
        return ep

    def set_members(self, set_id: str) -> frozenset[str]:
        return self.state.ipsets[set_id][1]

    def tiers(self, ns: str, name: str) -> tuple[m.TierInfo, ...]:
        return self.endpoint(ns, name).tiers
