"""Workload and host endpoints -> dispatch entries, anti-spoofing elements, chains (no I/O)."""

from __future__ import annotations

import ipaddress
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from gingham.calc import messages as m
from gingham.calc.messages import PolicyID
from gingham.dataplane import layout
from gingham.dataplane.layout import ChainSpec, RuleSpec
from gingham.dataplane.managers.policies import PolicyManager
from gingham.dataplane.managers.state import Key, TableState
from gingham.dataplane.policy import endpoint_rules
from gingham.errors import ValidationError

log = logging.getLogger(__name__)


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
