"""Managers: calc messages in, desired nft state (and what changed) out. No I/O.

:class:`TableState` is the table as gingham wants it, plus a record of what
changed since the last apply (dirty chains, sets and map entries, and exact
element deltas). The managers write into it:

- :class:`IPSetManager` — ``IPSet*`` messages -> sets ``s4-``/``s6-`` (nets)
  and ``p4-``/``p6-`` (named ports), reference-counted by the policy manager
  so a set is never deleted while a programmed rule uses it (an IPSetRemove
  of a set still referenced empties it instead; it goes when the last
  reference does).
- :class:`PolicyManager` — policies and profiles -> one chain per direction.
- :class:`EndpointManager` — workload endpoints -> ``tw-``/``fw-`` chains and
  ``to-wl``/``from-wl`` dispatch entries.
- :class:`HostEndpointManager` — host endpoints -> ``th-``/``fh-`` chains and
  ``to-hep``/``from-hep`` entries (normal policy only).
- :class:`PolicyDataplane` wires them and takes :class:`ConfigUpdate`.

``gingham.dataplane.apply`` turns a :class:`TableState` into one transaction.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gingham.calc import messages as m
from gingham.calc.messages import PolicyID
from gingham.dataplane import layout, nft
from gingham.dataplane.layout import ChainSpec, RuleSpec
from gingham.dataplane.policy import SetRef, endpoint_rules, render_rules
from gingham.errors import ValidationError

log = logging.getLogger(__name__)

Key = tuple[str, ...]

DEFAULT_FAILSAFE_IN: tuple[tuple[str, int], ...] = (
    ("tcp", 22), ("udp", 68), ("tcp", 179), ("tcp", 2379), ("tcp", 2380),
    ("tcp", 5473), ("tcp", 6443), ("tcp", 6666), ("tcp", 6667),
)
DEFAULT_FAILSAFE_OUT: tuple[tuple[str, int], ...] = (
    ("udp", 53), ("udp", 67), ("tcp", 179), ("tcp", 2379), ("tcp", 2380),
    ("tcp", 5473), ("tcp", 6443), ("tcp", 6666), ("tcp", 6667),
)


# ------------------------------------------------------------------ desired state


@dataclass
class TableState:
    """Desired table contents and the changes not yet applied."""

    chains: dict[str, ChainSpec] = field(default_factory=dict)
    sets: dict[str, nft.Set | nft.Map] = field(default_factory=dict)
    elements: dict[str, set[Key]] = field(default_factory=dict)
    map_entries: dict[str, dict[str, str]] = field(default_factory=dict)
    dirty_chains: set[str] = field(default_factory=set)
    dirty_sets: set[str] = field(default_factory=set)
    elem_add: dict[str, set[Key]] = field(default_factory=lambda: defaultdict(set))
    elem_del: dict[str, set[Key]] = field(default_factory=lambda: defaultdict(set))
    dirty_entries: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        for mp in layout.dispatch_maps():
            self.sets[mp.name] = mp
            self.map_entries[mp.name] = {}
            self.dirty_sets.add(mp.name)
        for st in layout.anti_spoof_sets():
            self.ensure_set(st)

    # chains
    def set_chain(self, spec: ChainSpec) -> None:
        if self.chains.get(spec.name) != spec:
            self.chains[spec.name] = spec
            self.dirty_chains.add(spec.name)

    def remove_chain(self, name: str) -> None:
        if self.chains.pop(name, None) is not None:
            self.dirty_chains.add(name)

    # sets
    def ensure_set(self, s: nft.Set) -> None:
        if s.name not in self.sets:
            self.sets[s.name] = s
            self.elements[s.name] = set()
            self.dirty_sets.add(s.name)

    def remove_set(self, name: str) -> None:
        if name in self.sets:
            self.del_elements(name, list(self.elements.get(name, ())))
            del self.sets[name]
            self.elements.pop(name, None)
            self.dirty_sets.add(name)

    def add_elements(self, name: str, keys: Iterable[Key]) -> None:
        cur = self.elements[name]
        for k in keys:
            if k in cur:
                continue
            cur.add(k)
            if k in self.elem_del[name]:
                self.elem_del[name].discard(k)
            else:
                self.elem_add[name].add(k)

    def del_elements(self, name: str, keys: Iterable[Key]) -> None:
        cur = self.elements.get(name)
        if cur is None:
            return
        for k in keys:
            if k not in cur:
                continue
            cur.discard(k)
            if k in self.elem_add[name]:
                self.elem_add[name].discard(k)
            else:
                self.elem_del[name].add(k)

    # dispatch
    def set_entry(self, map_name: str, ifname: str, chain: str | None) -> None:
        entries = self.map_entries[map_name]
        if entries.get(ifname) == chain:
            return
        if chain is None:
            entries.pop(ifname, None)
        else:
            entries[ifname] = chain
        self.dirty_entries.add((map_name, ifname))

    def clear_dirty(self) -> None:
        self.dirty_chains.clear()
        self.dirty_sets.clear()
        self.elem_add.clear()
        self.elem_del.clear()
        self.dirty_entries.clear()

    @property
    def has_changes(self) -> bool:
        return bool(
            self.dirty_chains
            or self.dirty_sets
            or any(self.elem_add.values())
            or any(self.elem_del.values())
            or self.dirty_entries
        )


# ------------------------------------------------------------------ IP sets


def _net_key(text: str) -> tuple[int, Key, bool]:
    net = ipaddress.ip_network(text, strict=False)
    host = net.prefixlen == net.max_prefixlen
    return net.version, ((str(net.network_address) if host else str(net)),), host


def _port_key(member: str) -> tuple[int, Key]:
    try:
        addr, _, pp = member.partition(",")
        proto, _, port = pp.partition(":")
        ip = ipaddress.ip_address(addr)
        p = int(port)
    except ValueError as exc:
        raise ValidationError(f"bad named-port member {member!r}: {exc}") from None
    return ip.version, (str(ip), layout.proto_name(proto), str(p))


class IPSetManager:
    def __init__(self, state: TableState) -> None:
        self._state = state
        self._members: dict[str, tuple[str, set[str]]] = {}  # set_id -> (kind, members)
        self._has_prefix: dict[str, bool] = {}
        self._refs: dict[tuple[str, str], int] = defaultdict(int)  # (set_id, kind)

    def _names(self, set_id: str, kind: str) -> list[nft.Set]:
        if kind == "net":
            return [layout.net_set(set_id, 4), layout.net_set(set_id, 6)]
        return [layout.port_set(set_id, 4), layout.port_set(set_id, 6)]

    def _ensure(self, set_id: str, kind: str) -> None:
        for s in self._names(set_id, kind):
            self._state.ensure_set(s)

    def _desired_elements(self, set_id: str, kind: str, members: set[str]) -> dict[int, set[Key]]:
        out: dict[int, set[Key]] = {4: set(), 6: set()}
        if kind == "net-port":
            for mem in members:
                fam, key = _port_key(mem)
                out[fam].add(key)
            return out
        nets: dict[int, list[Any]] = {4: [], 6: []}
        for mem in members:
            net = ipaddress.ip_network(mem, strict=False)
            nets[net.version].append(net)
        # interval sets refuse overlaps: collapse (only needed when prefixes exist)
        for fam, lst in nets.items():
            for net in ipaddress.collapse_addresses(lst):
                host = net.prefixlen == net.max_prefixlen
                out[fam].add(((str(net.network_address) if host else str(net)),))
        return out

    def _rewrite(self, set_id: str) -> None:
        kind, members = self._members[set_id]
        want = self._desired_elements(set_id, kind, members)
        for fam, s in zip((4, 6), self._names(set_id, kind), strict=True):
            cur = self._state.elements[s.name]
            self._state.del_elements(s.name, list(cur - want[fam]))
            self._state.add_elements(s.name, want[fam] - cur)

    def update(self, msg: m.IPSetUpdate) -> None:
        old = self._members.get(msg.set_id)
        if old is not None and old[0] != msg.kind:
            self.remove(m.IPSetRemove(msg.set_id))
        self._members[msg.set_id] = (msg.kind, set(msg.members))
        self._has_prefix[msg.set_id] = msg.kind == "net" and any(
            not _net_key(x)[2] for x in msg.members
        )
        self._ensure(msg.set_id, msg.kind)
        self._rewrite(msg.set_id)

    def delta(self, msg: m.IPSetDeltaUpdate) -> None:
        entry = self._members.get(msg.set_id)
        if entry is None:
            log.warning("delta for unknown IP set %s ignored", msg.set_id)
            return
        kind, members = entry
        members -= msg.removed
        members |= msg.added
        if kind == "net":
            keyed = [_net_key(x) for x in msg.added]
            if self._has_prefix[msg.set_id] or any(not host for _, _, host in keyed):
                self._has_prefix[msg.set_id] = any(not _net_key(x)[2] for x in members)
                self._rewrite(msg.set_id)
                return
            for fam, key, _ in keyed:
                self._state.add_elements(layout.net_set_name(msg.set_id, fam), [key])
            for x in msg.removed:
                fam, key, _ = _net_key(x)
                self._state.del_elements(layout.net_set_name(msg.set_id, fam), [key])
            return
        for x in msg.added:
            fam, key = _port_key(x)
            self._state.add_elements(layout.port_set_name(msg.set_id, fam), [key])
        for x in msg.removed:
            fam, key = _port_key(x)
            self._state.del_elements(layout.port_set_name(msg.set_id, fam), [key])

    def remove(self, msg: m.IPSetRemove) -> None:
        entry = self._members.pop(msg.set_id, None)
        self._has_prefix.pop(msg.set_id, None)
        if entry is None:
            return
        kind = entry[0]
        for s in self._names(msg.set_id, kind):
            if self._refs.get((msg.set_id, kind), 0) > 0:
                self._state.del_elements(s.name, list(self._state.elements.get(s.name, ())))
            else:
                self._state.remove_set(s.name)

    def ref(self, refs: Iterable[SetRef]) -> None:
        for key in {(r.set_id, r.kind) for r in refs}:
            self._refs[key] += 1
            self._ensure(*key)

    def unref(self, refs: Iterable[SetRef]) -> None:
        for key in {(r.set_id, r.kind) for r in refs}:
            self._refs[key] -= 1
            if self._refs[key] <= 0:
                del self._refs[key]
                entry = self._members.get(key[0])
                if entry is None or entry[0] != key[1]:
                    for s in self._names(*key):
                        self._state.remove_set(s.name)


# ------------------------------------------------------------------ policies


class PolicyManager:
    """Policies and profiles -> chains; tells ``on_presence`` when one appears or goes."""

    def __init__(
        self,
        state: TableState,
        ipsets: IPSetManager,
        on_presence: Callable[[set[PolicyID], set[str]], None],
    ) -> None:
        self._state = state
        self._ipsets = ipsets
        self._on_presence = on_presence
        self.policies: dict[PolicyID, set[SetRef]] = {}
        self.profiles: dict[str, set[SetRef]] = {}

    def _render(
        self, owner: str, chain: str, rules: tuple[m.ParsedRule, ...], in_profile: bool
    ) -> tuple[list[RuleSpec], set[SetRef]]:
        try:
            return render_rules(rules, in_profile)
        except ValidationError as exc:
            # Fail closed: a policy we cannot express drops what reaches it.
            log.error("cannot render %s (%s): %s; dropping its traffic", owner, chain, exc)
            return [RuleSpec("counter drop", comment=layout.short_comment(f"render-error:{owner}"))], set()

    def _install(
        self,
        owner: str,
        names: tuple[str, str],
        inbound: tuple[m.ParsedRule, ...],
        outbound: tuple[m.ParsedRule, ...],
        old_refs: set[SetRef] | None,
        in_profile: bool,
    ) -> set[SetRef]:
        refs: set[SetRef] = set()
        specs = []
        for name, rules in zip(names, (inbound, outbound), strict=True):
            body, r = self._render(owner, name, rules, in_profile)
            refs |= r
            specs.append(layout.make_chain(name, body, layout.RANK_POLICY, comment=owner))
        # reference new sets before dropping old references: a set kept by both
        # must not be deleted and recreated in between
        self._ipsets.ref(refs)
        if old_refs is not None:
            self._ipsets.unref(old_refs)
        for spec in specs:
            self._state.set_chain(spec)
        return refs

    def update_policy(self, msg: m.PolicyUpdate) -> None:
        pid = msg.policy_id
        names = (layout.policy_chain(pid, True), layout.policy_chain(pid, False))
        old = self.policies.get(pid)
        self.policies[pid] = self._install(
            f"policy:{pid}", names, msg.inbound, msg.outbound, old, in_profile=False
        )
        if old is None:
            self._on_presence({pid}, set())

    def remove_policy(self, msg: m.PolicyRemove) -> None:
        refs = self.policies.pop(msg.policy_id, None)
        if refs is None:
            return
        self._on_presence({msg.policy_id}, set())
        for inbound in (True, False):
            self._state.remove_chain(layout.policy_chain(msg.policy_id, inbound))
        self._ipsets.unref(refs)

    def update_profile(self, msg: m.ProfileUpdate) -> None:
        pid = msg.profile_id
        names = (layout.profile_chain(pid, True), layout.profile_chain(pid, False))
        old = self.profiles.get(pid)
        self.profiles[pid] = self._install(
            f"profile:{pid}", names, msg.inbound, msg.outbound, old, in_profile=True
        )
        if old is None:
            self._on_presence(set(), {pid})

    def remove_profile(self, msg: m.ProfileRemove) -> None:
        refs = self.profiles.pop(msg.profile_id, None)
        if refs is None:
            return
        self._on_presence(set(), {msg.profile_id})
        for inbound in (True, False):
            self._state.remove_chain(layout.profile_chain(msg.profile_id, inbound))
        self._ipsets.unref(refs)


# ------------------------------------------------------------------ endpoints


def _referents(tiers: Iterable[m.TierInfo]) -> set[PolicyID]:
    return {p for t in tiers for p in (*t.ingress_policies, *t.egress_policies)}


class _EndpointIndex:
    """Which endpoints refer to which policy/profile (to re-render on presence change)."""

    def __init__(self) -> None:
        self.by_policy: dict[PolicyID, set[Any]] = defaultdict(set)
        self.by_profile: dict[str, set[Any]] = defaultdict(set)

    def add(self, eid: Any, pols: set[PolicyID], profs: set[str]) -> None:
        for p in pols:
            self.by_policy[p].add(eid)
        for q in profs:
            self.by_profile[q].add(eid)

    def remove(self, eid: Any, pols: set[PolicyID], profs: set[str]) -> None:
        for p in pols:
            self.by_policy[p].discard(eid)
            if not self.by_policy[p]:
                del self.by_policy[p]
        for q in profs:
            self.by_profile[q].discard(eid)
            if not self.by_profile[q]:
                del self.by_profile[q]

    def affected(self, pols: set[PolicyID], profs: set[str]) -> set[Any]:
        out: set[Any] = set()
        for p in pols:
            out |= self.by_policy.get(p, set())
        for q in profs:
            out |= self.by_profile.get(q, set())
        return out


def _spoof_keys(ep: m.WorkloadEndpointUpdate) -> set[tuple[str, Key]]:
    """(set, element) pairs allowing ``ep`` to send from its addresses and
    allowed prefixes; overlapping nets are collapsed (interval sets refuse overlaps)."""
    nets: dict[int, list[Any]] = {4: [], 6: []}
    for text in (*ep.ipv4_nets, *ep.ipv6_nets, *ep.allow_spoofed_prefixes):
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise ValidationError(f"bad address {text!r}: {exc}", f"endpoint {ep.endpoint_id}") from None
        nets[net.version].append(net)
    quoted = f'"{ep.interface_name}"'
    out: set[tuple[str, Key]] = set()
    for fam, name in ((4, layout.SPOOF_V4), (6, layout.SPOOF_V6)):
        for net in ipaddress.collapse_addresses(nets[fam]):
            host = net.prefixlen == net.max_prefixlen
            out.add((name, (quoted, str(net.network_address) if host else str(net))))
    return out


class EndpointManager:
    """Workload endpoints -> dispatch entries, anti-spoofing elements and shared chains.

    Chains are named by their content and reference-counted: an endpoint
    whose policies match an existing endpoint's adds no chain at all.
    """

    def __init__(self, state: TableState, policies: PolicyManager | None = None) -> None:
        self._state = state
        self.policies = policies
        self.endpoints: dict[m.WorkloadEndpointID, m.WorkloadEndpointUpdate] = {}
        self._index = _EndpointIndex()
        self._owner: dict[str, m.WorkloadEndpointID] = {}  # ifname -> endpoint
        self._chains_of: dict[m.WorkloadEndpointID, tuple[str, str]] = {}
        self._users: dict[str, set[m.WorkloadEndpointID]] = defaultdict(set)
        self._spoof: dict[m.WorkloadEndpointID, set[tuple[str, Key]]] = {}

    def _has_policy(self, pid: PolicyID) -> bool:
        return self.policies is not None and pid in self.policies.policies

    def _has_profile(self, pid: str) -> bool:
        return self.policies is not None and pid in self.policies.profiles

    def _use(self, eid: m.WorkloadEndpointID, spec: ChainSpec) -> None:
        self._state.set_chain(spec)
        self._users[spec.name].add(eid)

    def _release(self, eid: m.WorkloadEndpointID, name: str) -> None:
        users = self._users.get(name)
        if users is None:
            return
        users.discard(eid)
        if not users:
            del self._users[name]
            self._state.remove_chain(name)

    def _set_spoof(self, eid: m.WorkloadEndpointID, keys: set[tuple[str, Key]]) -> None:
        old = self._spoof.get(eid, set())
        for name, key in old - keys:
            self._state.del_elements(name, [key])
        for name, key in keys - old:
            self._state.add_elements(name, [key])
        if keys:
            self._spoof[eid] = keys
        else:
            self._spoof.pop(eid, None)

    def _render(self, ep: m.WorkloadEndpointUpdate) -> None:
        common: dict[str, Any] = dict(
            tiers=ep.tiers,
            profile_ids=ep.profile_ids,
            missing_profiles=ep.missing_profiles,
            has_policy=self._has_policy,
            has_profile=self._has_profile,
        )
        eid = ep.endpoint_id
        try:
            to_rules = endpoint_rules(inbound=True, **common)
            from_rules = endpoint_rules(inbound=False, anti_spoof=True, **common)
            spoof = _spoof_keys(ep)
        except ValidationError as exc:
            log.error("endpoint %s: %s; dropping its traffic", eid, exc)
            to_rules = from_rules = [RuleSpec("counter drop", comment="render-error")]
            spoof = set()
        tw = layout.make_chain(layout.shared_chain_name("tw", to_rules), to_rules,
                               layout.RANK_ENDPOINT, "workload ingress")
        fw = layout.make_chain(layout.shared_chain_name("fw", from_rules), from_rules,
                               layout.RANK_ENDPOINT, "workload egress")
        old = self._chains_of.get(eid)
        self._use(eid, tw)
        self._use(eid, fw)
        self._chains_of[eid] = (tw.name, fw.name)
        ifn = ep.interface_name
        self._set_spoof(eid, spoof)
        self._state.set_entry(layout.MAP_TO_WL, ifn, tw.name)
        self._state.set_entry(layout.MAP_FROM_WL, ifn, fw.name)
        if old is not None:
            for name in old:
                if name not in (tw.name, fw.name):
                    self._release(eid, name)

    def _unprogram(self, ep: m.WorkloadEndpointUpdate) -> None:
        eid = ep.endpoint_id
        ifn = ep.interface_name
        if self._owner.get(ifn) == eid:
            del self._owner[ifn]
            self._state.set_entry(layout.MAP_TO_WL, ifn, None)
            self._state.set_entry(layout.MAP_FROM_WL, ifn, None)
        self._set_spoof(eid, set())
        for name in self._chains_of.pop(eid, ()):
            self._release(eid, name)

    def update(self, msg: m.WorkloadEndpointUpdate) -> None:
        old = self.endpoints.get(msg.endpoint_id)
        if old is not None:
            self._index.remove(msg.endpoint_id, _referents(old.tiers), set(old.profile_ids))
            if old.interface_name != msg.interface_name:
                self._unprogram(old)
        self.endpoints[msg.endpoint_id] = msg
        self._index.add(msg.endpoint_id, _referents(msg.tiers), set(msg.profile_ids))
        self._owner[msg.interface_name] = msg.endpoint_id
        self._render(msg)

    def remove(self, msg: m.WorkloadEndpointRemove) -> None:
        old = self.endpoints.pop(msg.endpoint_id, None)
        if old is None:
            return
        self._index.remove(msg.endpoint_id, _referents(old.tiers), set(old.profile_ids))
        self._unprogram(old)

    def refresh(self, pols: set[PolicyID], profs: set[str]) -> None:
        for eid in self._index.affected(pols, profs):
            self._render(self.endpoints[eid])


class HostEndpointManager:
    """Host endpoints with a named interface: normal policy on input/output.

    Not yet: all-interfaces (``*``) endpoints, untracked, pre-DNAT and
    apply-on-forward tiers (they are logged and ignored).
    """

    def __init__(self, state: TableState, policies: PolicyManager | None = None) -> None:
        self._state = state
        self.policies = policies
        self.endpoints: dict[str, m.HostEndpointUpdate] = {}
        self._index = _EndpointIndex()

    def _render(self, ep: m.HostEndpointUpdate) -> None:
        ifn = ep.interface_name
        if not ifn or ifn == "*":
            log.warning("host endpoint %s: all-interfaces endpoints not supported yet", ep.endpoint_id)
            return
        if ep.untracked_tiers or ep.pre_dnat_tiers or ep.forward_tiers:
            log.warning("host endpoint %s: untracked/preDNAT/forward policy not supported yet",
                        ep.endpoint_id)
        pm = self.policies
        common: dict[str, Any] = dict(
            tiers=ep.tiers,
            profile_ids=ep.profile_ids,
            missing_profiles=ep.missing_profiles,
            has_policy=lambda p: pm is not None and p in pm.policies,
            has_profile=lambda p: pm is not None and p in pm.profiles,
        )
        owner = f"host-endpoint:{ep.endpoint_id}"
        th, fh = layout.to_hep_chain(ifn), layout.from_hep_chain(ifn)
        self._state.set_chain(
            layout.make_chain(th, endpoint_rules(inbound=True, **common), layout.RANK_ENDPOINT, owner)
        )
        self._state.set_chain(
            layout.make_chain(fh, endpoint_rules(inbound=False, **common), layout.RANK_ENDPOINT, owner)
        )
        self._state.set_entry(layout.MAP_TO_HEP, ifn, th)
        self._state.set_entry(layout.MAP_FROM_HEP, ifn, fh)

    def _unprogram(self, ep: m.HostEndpointUpdate) -> None:
        ifn = ep.interface_name
        if not ifn or ifn == "*":
            return
        self._state.set_entry(layout.MAP_TO_HEP, ifn, None)
        self._state.set_entry(layout.MAP_FROM_HEP, ifn, None)
        self._state.remove_chain(layout.to_hep_chain(ifn))
        self._state.remove_chain(layout.from_hep_chain(ifn))

    def update(self, msg: m.HostEndpointUpdate) -> None:
        old = self.endpoints.get(msg.endpoint_id)
        if old is not None:
            self._index.remove(msg.endpoint_id, _referents(old.tiers), set(old.profile_ids))
            if old.interface_name != msg.interface_name:
                self._unprogram(old)
        self.endpoints[msg.endpoint_id] = msg
        self._index.add(msg.endpoint_id, _referents(msg.tiers), set(msg.profile_ids))
        self._render(msg)

    def remove(self, msg: m.HostEndpointRemove) -> None:
        old = self.endpoints.pop(msg.endpoint_id, None)
        if old is not None:
            self._index.remove(msg.endpoint_id, _referents(old.tiers), set(old.profile_ids))
            self._unprogram(old)

    def refresh(self, pols: set[PolicyID], profs: set[str]) -> None:
        for eid in self._index.affected(pols, profs):
            self._render(self.endpoints[eid])


# ------------------------------------------------------------------ configuration


def _ports(value: Any, default: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    if value is None:
        return default
    out = []
    for item in value:
        if isinstance(item, dict):
            proto, port = item.get("protocol", "tcp"), item.get("port")
        else:
            proto, port = getattr(item, "protocol", "tcp"), getattr(item, "port", None)
        if port is None:
            raise ValidationError("failsafe port without a port", "FelixConfiguration")
        out.append((str(proto or "tcp"), int(port)))
    return tuple(out)


@dataclass(frozen=True)
class DataplaneConfig:
    endpoint_to_host: str = "Drop"
    failsafe_in: tuple[tuple[str, int], ...] = DEFAULT_FAILSAFE_IN
    failsafe_out: tuple[tuple[str, int], ...] = DEFAULT_FAILSAFE_OUT

    @classmethod
    def from_message(cls, msg: m.ConfigUpdate) -> DataplaneConfig:
        action = str(msg.get("default_endpoint_to_host_action") or "Drop").capitalize()
        if action not in ("Drop", "Accept", "Return"):
            log.error("defaultEndpointToHostAction %r unknown: using Drop", action)
            action = "Drop"
        return cls(
            action,
            _ports(msg.get("failsafe_inbound_host_ports"), DEFAULT_FAILSAFE_IN),
            _ports(msg.get("failsafe_outbound_host_ports"), DEFAULT_FAILSAFE_OUT),
        )


class PolicyDataplane:
    """All managers over one :class:`TableState`; feed it messages with :meth:`on_message`."""

    def __init__(self, config: DataplaneConfig | None = None) -> None:
        self.state = TableState()
        self.ipsets = IPSetManager(self.state)
        self.endpoints = EndpointManager(self.state)
        self.host_endpoints = HostEndpointManager(self.state)
        self.policies = PolicyManager(self.state, self.ipsets, self._presence_changed)
        self.endpoints.policies = self.policies
        self.host_endpoints.policies = self.policies
        self.in_sync = False
        self.config = config or DataplaneConfig()
        self._set_base_chains()

    def _presence_changed(self, pols: set[PolicyID], profs: set[str]) -> None:
        # A policy or profile appearing/going changes how endpoints referring
        # to it render (jump vs fail-closed drop). Called before a removal
        # deletes the chain, so presence is read after the change: defer.
        self._pending_presence[0].update(pols)
        self._pending_presence[1].update(profs)

    _pending_presence: tuple[set[PolicyID], set[str]]

    def _set_base_chains(self) -> None:
        c = self.config
        for spec in layout.base_chains(c.endpoint_to_host, c.failsafe_in, c.failsafe_out):
            self.state.set_chain(spec)

    def on_message(self, msg: m.Message) -> None:
        self._pending_presence = (set(), set())
        match msg:
            case m.IPSetUpdate():
                self.ipsets.update(msg)
            case m.IPSetDeltaUpdate():
                self.ipsets.delta(msg)
            case m.IPSetRemove():
                self.ipsets.remove(msg)
            case m.PolicyUpdate():
                self.policies.update_policy(msg)
            case m.PolicyRemove():
                self.policies.remove_policy(msg)
            case m.ProfileUpdate():
                self.policies.update_profile(msg)
            case m.ProfileRemove():
                self.policies.remove_profile(msg)
            case m.WorkloadEndpointUpdate():
                self.endpoints.update(msg)
            case m.WorkloadEndpointRemove():
                self.endpoints.remove(msg)
            case m.HostEndpointUpdate():
                self.host_endpoints.update(msg)
            case m.HostEndpointRemove():
                self.host_endpoints.remove(msg)
            case m.ConfigUpdate():
                self.config = DataplaneConfig.from_message(msg)
                self._set_base_chains()
            case m.InSync():
                self.in_sync = True
            case _:
                raise TypeError(f"not a dataplane message: {msg!r}")
        pols, profs = self._pending_presence
        if pols or profs:
            self.endpoints.refresh(pols, profs)
            self.host_endpoints.refresh(pols, profs)

    def on_messages(self, msgs: Iterable[m.Message]) -> None:
        for msg in msgs:
            self.on_message(msg)
