"""The calculation graph for one host: typed updates in, dataplane messages out.

    on_update(ResourceKey | BlockKey, resource | IPAMBlock | InvalidResource | None)
         |                                   (keys and values typed by agent/decode.py)
         v
    +------------+  ValidityFilter (validity.py): last valid kept, newer writers' Nodes,
    | validity   |  pools, BGP, endpoints... read without unknown fields, policies
    +------------+  never seen valid quarantined
         |
         v
    +------------+  Tier (order, default action) ------------------------------+
    | dispatcher |  FelixConfiguration -----------------> ConfigUpdate ---+    |
    | (graph.py) |  Node, IPPool, BGPConfiguration, BGPPeer, IPAM blocks --------------+
    +------------+                                                       |    |       |
      | endpoints,      | Profile,                 | NetworkPolicy, GNP, |    |       |
      | network sets    | Namespace -> kns.<ns>    | k8s NP -> NP        |    |       |
      |                 | (policies.profile_def)   | (policies.policy_def)    |       |
      v                 v                          v                     |    |       |
    +-------------------------+  labels of  +---------------------------+|    |       |
    | LabelInheritance        |  local eps  | ActiveRulesCalculator     ||    |       |
    | (labels.py)             |------------>| (active.py)               ||    |       |
    | parents' labelsToApply  |             | policy selectors x local  ||    |       |
    | < own < implicit labels |             | endpoints (SelectorIndex);||    |       |
    +-------------------------+             | profiles ref-counted      ||    |       |
      | labels + nets + named               +---------------------------+|    |       |
      | ports of ALL items                    | ActiveRulesListener      |    |       |
      |                                       | (the graph): active /    |    |       |
      |                                       | inactive, endpoint dirty |    |       |
      |                      +----------------+-------+                  |    |       v
      |                      v                        v                  |    | +-----------+
      |             +------------------+     +-----------------------+   |    | | Routing-  |
      |             | RuleScanner      |     | resolve_tiers         |<-------+ | Calculator|
      |             | (scanner.py)     |     | (policies.py), at     |   |      | routing.py|
      |             | IP sets ref-     |     | flush, per dirty      |   |      | routes.py |
      |             | counted by owner |     | local endpoint        |   |      +-----------+
      v             +------------------+     +-----------------------+   |  local  ^   |
    +--------------------+  start/stop set |           | endpoint msgs   |  wl /32 |   | routes,
    | IPSetMembers       |<----------------+           +-----------------|---------+   | VXLAN,
    | (members.py)       |--- member +/- ---+          |                 |             | NAT, BGP,
    +--------------------+                  v          v                 v             v MTU
                                      +--------------------------------------------------+
                                      | Sequencer (sequencer.py): coalesce per key;      |
                                      | config, sets, policies, profiles, endpoints,     |--> flush()
                                      | removals reversed; MTU, VXLAN device and peers,  |
                                      | routes, stale peers, NAT, BGP; InSync last       |
                                      +--------------------------------------------------+

Invariants:
- Existence is decided from the value only: ``None`` means absent; an
  ``InvalidResource`` never is (``validity.py``: the last valid version stays
  in force, a policy never seen valid is quarantined); every update is
  reconciled against the stored state of its key, so A -> C, C -> B -> C,
  repeats and spurious deletes all end right.
- Output depends only on the current inputs (no hysteresis): a flush after any
  path to the same inputs leaves the dataplane in the same state.
- Every index add has exactly one remove; when all inputs are deleted every
  index, refcount and sent object is empty again.
- Only what the host needs: policies selecting a local endpoint, profiles a
  local endpoint names, IP sets their rules use. Remote endpoints only fill
  IP-set members. Routing plans every block, but sends only what changed
  (``routing.py``).
- Fail closed: a local endpoint whose profile is missing is sent with no
  profiles (everything that falls through the tiers is denied) and the
  missing names listed.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final

from gingham.calc.active import ActiveRulesCalculator
from gingham.calc.felix import FelixSettings, HostSupport, config_message, routing_settings
from gingham.calc.inputs import InputKey, ResourceKey
from gingham.calc.labels import LabelInheritance
from gingham.calc.members import IPSetMembers, Item
from gingham.calc.messages import (
    ConfigUpdate,
    HostEndpointUpdate,
    Message,
    WorkloadEndpointID,
    WorkloadEndpointUpdate,
)
from gingham.calc.policies import (
    PolicyDef,
    ProfileDef,
    TierDef,
    policy_def,
    profile_def,
    resolve_tiers,
    tier_def,
)
from gingham.calc.routing import RoutingCalculator, RoutingView
from gingham.calc.rules import PROTOCOLS, protocol_number
from gingham.calc.scanner import RuleScanner
from gingham.calc.sequencer import Sequencer
from gingham.calc.validity import (
    Decode,
    InputValue,
    InvalidReport,
    LastValidMemory,
    ValidityFilter,
    Value,
)
from gingham.errors import GinghamError
from gingham.model import (
    InvalidResource,
    KubernetesNetworkPolicy,
    Namespace,
    k8s_policy_to_calico,
    namespace_to_profile,
)
from gingham.names import (
    NAMESPACE_LABEL,
    NAMESPACE_PROFILE_PREFIX,
    ORCHESTRATOR_LABEL,
    SERVICE_ACCOUNT_LABEL,
    SERVICE_ACCOUNT_NAME_LABEL,
)

log = logging.getLogger(__name__)

EndpointKey = Hashable  # WorkloadEndpointID for workloads, the name (str) for host endpoints


@dataclass(slots=True)
class _Record:
    """One item (endpoint or network set) as its handler reads it; kept for local
    endpoints only (``profiles`` and ``resource`` are only set for those)."""

    item: Item
    local: bool = False
    item_id: Hashable = None  # its id in the label and member indexes
    profiles: tuple[str, ...] = ()  # profiles whose rules apply (local endpoints)
    resource: Any = None


class CalcGraph:
    """Pure, synchronous calculation graph of one host (see the module docstring).

    ``hostname`` decides which endpoints are local (``spec.node``) and which
    FelixConfiguration (``node.<hostname>``) applies; everything else arrives
    through :meth:`on_update`. ``memory`` keeps the last valid versions of
    invalid keys past a restart, read back through ``decode`` (the agent's
    decoder; see ``validity.ValidityFilter``).
    """

    def __init__(
        self, hostname: str, memory: LastValidMemory | None = None, decode: Decode | None = None
    ) -> None:
        self.hostname = hostname
        self._seq = Sequencer(self._members_of)
        self._labels = LabelInheritance()
        self._members = IPSetMembers(self._seq, self._labels)
        self._scanner = RuleScanner(self._members, self._seq)
        self._active = ActiveRulesCalculator(self)
        self._tiers: dict[str, TierDef] = {}
        self._profile_sources: dict[str, dict[ResourceKey, ProfileDef]] = {}
        self._profile_key_name: dict[ResourceKey, str] = {}
        self._profiles: dict[str, ProfileDef] = {}
        self._local: dict[EndpointKey, _Record] = {}
        self._local_ids: dict[Hashable, EndpointKey] = {}  # item id -> endpoint, local ones
        self._dirty: set[EndpointKey] = set()
        self._felix = FelixSettings(hostname)
        self._validity = ValidityFilter(memory, decode)
        self._routing = RoutingCalculator(hostname, self._seq)

    def _members_of(self, set_id: str) -> frozenset[str]:
        return self._members.members(set_id)

    # --- input -------------------------------------------------------------

    def on_update(self, key: InputKey, value: InputValue | None) -> None:
        """Apply one update: a resource (or IPAM block), an ``InvalidResource``, or None
        (absent). Keys of kinds the graph does not read are ignored."""
        if key.kind not in _HANDLERS:
            return
        previous = self._validity.last_valid(key)
        for changed_key, effective in self._validity.update(key, value):
            try:
                self._dispatch(changed_key, effective)
            except (GinghamError, ValueError, AttributeError, TypeError, RecursionError) as exc:
                if changed_key != key or effective is None:
                    raise
                # The model accepted what the graph cannot use (a bug worth a
                # traceback); the handler changed nothing, so this key is invalid.
                log.exception("cannot use %s", key)
                problem = InvalidResource(f"cannot be used: {type(exc).__name__}: {exc}")
                for k, eff in self._validity.rejected(key, previous, problem):
                    self._dispatch(k, eff)

    def _dispatch(self, key: InputKey, value: Any) -> None:
        _HANDLERS[key.kind](self, key, value)

    def invalid_resources(self) -> Mapping[InputKey, InvalidReport]:
        """Every stored document this graph found invalid, and what it did about it."""
        return self._validity.reports()

    def last_valid(self, key: InputKey) -> Value | None:
        """The version of ``key`` in force (the last valid one), if any."""
        return self._validity.last_valid(key)

    def routing_view(self) -> RoutingView:
        """What routing reads of the Nodes, pools, blocks and BGP resources in force."""
        return self._routing.view()

    def set_underlay_mtu(self, mtu: int | None) -> None:
        """The MTU of the interface holding this host's address (the agent measures it)."""
        self._routing.set_underlay_mtu(mtu)

    def on_in_sync(self) -> None:
        self._seq.config(self._config_message())
        self._routing.on_in_sync()
        self._seq.in_sync()

    def flush(self) -> list[Message]:
        """Messages for everything that changed since the last flush, in safe order."""
        for ep in self._dirty:
            self._seq.endpoint(ep, self._endpoint_message(ep))
        self._dirty.clear()
        self._routing.flush()
        return self._seq.flush()

    # --- items: endpoints and network sets ----------------------------------

    def _on_workload(self, key: ResourceKey, value: Any) -> None:
        # Indexed by its key (which the validity filter keeps anyway): no object
        # of the graph's own per remote endpoint, and none the collector tracks.
        ns = key.namespace or ""
        if value is None:
            self._set_item(key, None)
            return
        spec = value.spec
        nets = _nets(spec.ip_networks)
        implicit = {NAMESPACE_LABEL: ns}
        if spec.orchestrator:
            implicit[ORCHESTRATOR_LABEL] = spec.orchestrator
        if spec.service_account_name:
            implicit[SERVICE_ACCOUNT_LABEL] = spec.service_account_name
            # What serviceAccountSelector sees: the account's name (its own
            # labels are not ingested).
            implicit[SERVICE_ACCOUNT_NAME_LABEL] = spec.service_account_name
        profiles = tuple(spec.profiles or ())
        # Every workload inherits its namespace's labels, listed or not.
        parents = tuple(dict.fromkeys((*profiles, NAMESPACE_PROFILE_PREFIX + ns)))
        ports = _named_ports(spec.ports)
        local = spec.node == self.hostname
        # Addresses only serve named-port members (a workload's message has its nets).
        rec = _Record(
            Item(nets, _addrs(nets) if ports else (), ports),
            local=local,
            profiles=profiles if local else (),
            resource=value if local else None,
            item_id=key,
        )
        ep = WorkloadEndpointID(ns, key.name) if local or key in self._local_ids else None
        self._set_item(key, rec, value.metadata.labels, parents, implicit, ep)

    def _on_host_endpoint(self, key: ResourceKey, value: Any) -> None:
        name = key.name
        if value is None:
            self._set_item(name, None)
            return
        spec = value.spec
        nets = _nets(spec.expected_ips)
        profiles = tuple(spec.profiles or ())
        rec = _Record(
            Item(nets, _addrs(nets), _named_ports(spec.ports)),
            local=spec.node == self.hostname,
            profiles=profiles,
            resource=value,
            item_id=name,
        )
        self._set_item(name, rec, value.metadata.labels, profiles, {}, name)

    def _on_network_set(self, key: ResourceKey, value: Any) -> None:
        ns, name = key.namespace, key.name
        item_id = ("NetworkSet", ns, name) if ns else ("GlobalNetworkSet", name)
        if value is None:
            self._set_item(item_id, None)
            return
        parents = (NAMESPACE_PROFILE_PREFIX + ns,) if ns else ()
        implicit = {NAMESPACE_LABEL: ns} if ns else {}
        rec = _Record(Item(_nets(value.spec.nets), ()))
        self._set_item(item_id, rec, value.metadata.labels, parents, implicit)

    def _set_item(
        self,
        item_id: Hashable,
        rec: _Record | None,
        own: Mapping[str, str] | None = None,
        parents: tuple[str, ...] = (),
        implicit: Mapping[str, str] | None = None,
        ep: EndpointKey = None,
    ) -> None:
        """``ep``: the endpoint's key for local endpoints (needed when ``rec`` is local
        or the item was local)."""
        # Remote items live only in the label and member indexes (their labels
        # and contributions); local endpoints also keep their record.
        was_local = self._local_ids.get(item_id)
        if rec is None:
            if not self._members.has_item(item_id):
                return
            old_labels = self._labels.remove_item(item_id)
            assert old_labels is not None
            self._members.remove_item(item_id, old_labels)
            if was_local is not None:
                self._set_local(was_local, None)
            return
        old_labels, labels = self._labels.update_item(
            item_id, own or _NO_LABELS, parents, implicit or _NO_LABELS
        )
        self._members.update_item(item_id, old_labels, labels, rec.item)
        if rec.local or was_local is not None:
            assert ep is not None
            self._set_local(ep, rec if rec.local else None)

    def _set_local(self, ep: EndpointKey, rec: _Record | None) -> None:
        if rec is None:
            old = self._local.pop(ep, None)
            if old is not None:
                del self._local_ids[old.item_id]
            self._active.update_endpoint(ep, None)
        else:
            self._local[ep] = rec
            self._local_ids[rec.item_id] = ep
            self._active.update_endpoint(ep, self._labels.labels(rec.item_id), rec.profiles)
        if isinstance(ep, WorkloadEndpointID):
            if rec is None:
                self._routing.local_workload(ep, None, ())
            else:
                self._routing.local_workload(ep, rec.resource.spec.interface_name, rec.item.nets)

    # --- ActiveRulesListener: what the host needs, to the scanner and sequencer --

    def policy_active(self, pdef: PolicyDef) -> None:
        self._scanner.set_owner(("policy", pdef.policy_id), pdef.ip_sets)
        self._seq.policy(pdef.policy_id, pdef.message())

    def policy_inactive(self, pdef: PolicyDef) -> None:
        self._scanner.drop_owner(("policy", pdef.policy_id))
        self._seq.policy(pdef.policy_id, None)

    def profile_active(self, name: str) -> None:
        prof = self._profiles.get(name)
        if prof is not None:
            self._scanner.set_owner(("profile", name), prof.ip_sets)
            self._seq.profile(name, prof.message())

    def profile_inactive(self, name: str) -> None:
        self._scanner.drop_owner(("profile", name))
        self._seq.profile(name, None)

    def endpoint_changed(self, ep: EndpointKey) -> None:
        self._dirty.add(ep)

    # --- policies, tiers, profiles ------------------------------------------

    def _on_policy(self, key: ResourceKey, value: Any) -> None:
        if isinstance(value, KubernetesNetworkPolicy):
            value = k8s_policy_to_calico(value)
        self._active.update_policy(key, policy_def(value) if value is not None else None)

    def _on_tier(self, key: ResourceKey, value: Any) -> None:
        name = key.name
        new = tier_def(value) if value is not None else None
        if self._tiers.get(name) == new:
            return
        if new is None:
            self._tiers.pop(name, None)
        else:
            self._tiers[name] = new
        self._dirty.update(self._local)

    def _on_profile(self, key: ResourceKey, value: Any) -> None:
        if isinstance(value, Namespace):
            value = namespace_to_profile(value)
        new = profile_def(value) if value is not None else None
        old_name = self._profile_key_name.pop(key, None)
        if old_name is not None:
            self._profile_sources[old_name].pop(key, None)
            if not self._profile_sources[old_name]:
                del self._profile_sources[old_name]
            self._refresh_profile(old_name)
        if new is not None:
            self._profile_key_name[key] = new.name
            self._profile_sources.setdefault(new.name, {})[key] = new
            self._refresh_profile(new.name)

    def _refresh_profile(self, name: str) -> None:
        sources = self._profile_sources.get(name, {})
        # A Namespace's profile wins over a Profile resource of the same name.
        new = sources[min(sources, key=_source_rank)] if sources else None
        old = self._profiles.get(name)
        if old == new:
            return
        if new is None:
            del self._profiles[name]
        else:
            self._profiles[name] = new
        if self._active.profile_is_active(name):
            if new is None:
                self.profile_inactive(name)
            else:
                self.profile_active(name)
            if (old is None) != (new is None):
                self._dirty.update(ep for ep, rec in self._local.items() if name in rec.profiles)
        changed = self._labels.update_parent(name, new.labels if new else None)
        # Members first, all of them, then local endpoints (whose policies may
        # start sets): the member index never lags the label index it reads.
        for item_id, old_labels, labels in changed:
            self._members.update_item(item_id, old_labels, labels, self._members.item(item_id))
        for item_id, _, _ in changed:
            ep = self._local_ids.get(item_id)
            if ep is not None:
                self._set_local(ep, self._local[ep])

    # --- configuration --------------------------------------------------------

    def _on_felix(self, key: ResourceKey, value: Any) -> None:
        if not self._felix.applies(key.name):
            return
        self._felix.update(key.name, value.spec if value is not None else None)
        self._seq.config(self._config_message())

    def _config_message(self) -> ConfigUpdate:
        values = self._felix.merged()
        self._routing.set_settings(routing_settings(values))
        return config_message(values)

    def set_host_support(self, support: HostSupport) -> None:
        """What this host can do (the agent probes it): routing plans nothing it lacks."""
        self._routing.set_support(support)

    def wanted_capabilities(self) -> frozenset[str]:
        """Host capabilities routing asks of this host now (``vxlan``, ``nat``, ``bird``)."""
        return self._routing.wanted_capabilities()

    # --- endpoint messages ----------------------------------------------------

    def _endpoint_message(self, ep: EndpointKey) -> WorkloadEndpointUpdate | HostEndpointUpdate | None:
        rec = self._local.get(ep)
        if rec is None:
            return None
        pdefs = self._active.policies_for(ep)
        missing = tuple(p for p in dict.fromkeys(rec.profiles) if p not in self._profiles)
        profile_ids = () if missing else tuple(dict.fromkeys(rec.profiles))
        labels = MappingProxyType(dict(self._labels.labels(rec.item_id)))
        spec = rec.resource.spec
        if isinstance(ep, WorkloadEndpointID):
            normal = [p for p in pdefs if not (p.untracked or p.pre_dnat)]
            v4 = tuple(n for n in rec.item.nets if ":" not in n)
            v6 = tuple(n for n in rec.item.nets if ":" in n)
            return WorkloadEndpointUpdate(
                endpoint_id=ep,
                interface_name=spec.interface_name or "",
                ipv4_nets=v4,
                ipv6_nets=v6,
                mac=str(spec.mac) if spec.mac else None,
                tiers=resolve_tiers(normal, self._tiers),
                profile_ids=profile_ids,
                allow_spoofed_prefixes=_nets(spec.allow_spoofed_source_prefixes),
                labels=labels,
                missing_profiles=missing,
            )
        return HostEndpointUpdate(
            endpoint_id=str(ep),
            interface_name=spec.interface_name,
            expected_ipv4_addrs=tuple(a for a in rec.item.addrs if ":" not in a),
            expected_ipv6_addrs=tuple(a for a in rec.item.addrs if ":" in a),
            tiers=resolve_tiers(
                [p for p in pdefs if not (p.untracked or p.pre_dnat)], self._tiers
            ),
            untracked_tiers=resolve_tiers([p for p in pdefs if p.untracked], self._tiers),
            pre_dnat_tiers=resolve_tiers([p for p in pdefs if p.pre_dnat], self._tiers),
            forward_tiers=resolve_tiers(
                [p for p in pdefs if p.apply_on_forward and not (p.untracked or p.pre_dnat)],
                self._tiers,
            ),
            profile_ids=profile_ids,
            labels=labels,
            missing_profiles=missing,
        )

    # --- introspection (tests, metrics) ----------------------------------------

    def stats(self) -> dict[str, int]:
        """Sizes of every index (all zero again once every input is deleted)."""
        return {
            "items": self._members.item_count(),
            "local_endpoints": len(self._local),
            "profiles": len(self._profiles),
            "profile_sources": len(self._profile_key_name),
            "ip_sets": len(self._scanner.active_sets()),
            "scanner_owners": self._scanner.owner_count(),
            "dirty_endpoints": len(self._dirty),
            **self._active.stats(),
            **self._labels.stats(),
            **self._members.stats(),
            **self._seq.stats(),
            **self._validity.stats(),
            **self._routing.stats(),
        }


def _source_rank(key: ResourceKey) -> tuple[bool, ResourceKey]:
    return (key.kind != "Namespace", key)


def _nets(values: Iterable[Any] | None) -> tuple[str, ...]:
    """Canonical CIDRs. The model already normalises CIDRs (``check_cidr``), so
    those are taken as they are (the model's own tuple, when it is one: no copy
    per endpoint); bare addresses (expectedIPs) get /32 or /128."""
    if type(values) is tuple and all(type(v) is str and "/" in v for v in values):
        return values
    return tuple(_net(str(v)) for v in values or ())


def _net(text: str) -> str:
    if "/" in text:
        return text
    return str(ipaddress.ip_network(text, strict=False))


def _addrs(nets: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n.split("/", 1)[0] for n in nets if n.endswith(("/32", "/128")))


def _named_ports(ports: Iterable[Any] | None) -> tuple[tuple[str, str, int], ...]:
    """(name, protocol name, port) of an endpoint's named ports."""
    if not ports:
        return ()
    out = []
    for p in ports:
        proto = _PROTOCOL_NAMES.get(protocol_number(p.protocol, "ports") or 0)
        if proto is not None:
            out.append((str(p.name), proto, int(p.port)))
    return _shared_ports(tuple(out))


@lru_cache(maxsize=4096)
def _shared_ports(ports: tuple[tuple[str, str, int], ...]) -> tuple[tuple[str, str, int], ...]:
    """One tuple for equal named-port lists (many endpoints declare the same)."""
    return ports


_NO_LABELS: Final[Mapping[str, str]] = MappingProxyType({})
_PROTOCOL_NAMES: Final = {number: name for name, number in PROTOCOLS.items()}

_HANDLERS: Final[dict[str, Any]] = {
    "WorkloadEndpoint": CalcGraph._on_workload,
    "HostEndpoint": CalcGraph._on_host_endpoint,
    "NetworkSet": CalcGraph._on_network_set,
    "GlobalNetworkSet": CalcGraph._on_network_set,
    "Profile": CalcGraph._on_profile,
    "Namespace": CalcGraph._on_profile,
    "NetworkPolicy": CalcGraph._on_policy,
    "GlobalNetworkPolicy": CalcGraph._on_policy,
    "KubernetesNetworkPolicy": CalcGraph._on_policy,
    "Tier": CalcGraph._on_tier,
    "FelixConfiguration": CalcGraph._on_felix,
    "Node": lambda g, k, v: g._routing.on_node(k, v),
    "IPPool": lambda g, k, v: g._routing.on_pool(k, v),
    "IPAMBlock": lambda g, k, v: g._routing.on_block(k, v),
    "BGPConfiguration": lambda g, k, v: g._routing.on_bgp_configuration(k, v),
    "BGPPeer": lambda g, k, v: g._routing.on_bgp_peer(k, v),
}
