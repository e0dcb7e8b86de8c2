"""Workload and host endpoints -> dispatch entries, anti-spoofing elements, chains (no I/O)."""

from __future__ import annotations

import ipaddress
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from gingham.calc import messages as m
from gingham.calc.messages import PolicyID
from gingham.dataplane import layout
from gingham.dataplane.compiled import COMPILE_MIN_POLICIES, CompiledTier, Piece, compile_tier
from gingham.dataplane.layout import ChainSpec, RuleSpec
from gingham.dataplane.managers.policies import PolicyManager
from gingham.dataplane.managers.state import Key, TableState
from gingham.dataplane.policy import endpoint_rules
from gingham.errors import ValidationError
from gingham.model.endpoints import interface_prefix_problem

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

    Only an endpoint whose interface is a workload interface (a valid name
    starting with one of :attr:`prefixes`) is programmed. Any other is
    *refused*: nothing of it reaches the kernel (an endpoint naming ``eth0``
    must not turn the host's uplink into a filtered workload), it is logged
    once per reason and listed in :attr:`refused` until it changes, goes, or a
    prefix change admits it (:meth:`set_prefixes` re-evaluates every endpoint).

    :attr:`rp_filter` is the reverse-path filter mode each programmed
    interface should have (``strict``, or ``off`` where the endpoint may send
    from IPv4 prefixes not its own); the applier writes it.
    """

    def __init__(self, state: TableState, policies: PolicyManager | None = None,
                 prefixes: tuple[str, ...] = layout.DEFAULT_PREFIXES) -> None:
        self._state = state
        self.policies = policies
        self.prefixes = prefixes
        self.endpoints: dict[m.WorkloadEndpointID, m.WorkloadEndpointUpdate] = {}
        """Every endpoint the calculation graph sent, programmed or refused."""
        self._programmed: dict[m.WorkloadEndpointID, m.WorkloadEndpointUpdate] = {}
        self._refused: dict[m.WorkloadEndpointID, str] = {}
        self._index = _EndpointIndex()
        self._owner: dict[str, m.WorkloadEndpointID] = {}  # ifname -> endpoint
        self._chains_of: dict[m.WorkloadEndpointID, frozenset[str]] = {}
        self._users: dict[str, set[m.WorkloadEndpointID]] = defaultdict(set)
        self._maps_of: dict[m.WorkloadEndpointID, tuple[str, ...]] = {}
        self._map_users: dict[str, set[m.WorkloadEndpointID]] = defaultdict(set)
        self._map_elements: dict[str, frozenset[Key]] = {}
        # (direction, tier identity) -> its last compile: the endpoints sharing a tier
        # (re-rendered one by one after an edit) compile it once, from the last one
        self._compiled: dict[tuple[str, str], CompiledTier] = {}
        self.compile_min_policies: int | None = COMPILE_MIN_POLICIES
        """Tiers with at least this many policies for a direction are compiled
        (:mod:`gingham.dataplane.compiled`); None: never."""
        self._spoof: dict[m.WorkloadEndpointID, set[tuple[str, Key]]] = {}
        self._spoof_refs: dict[tuple[str, Key], int] = defaultdict(int)
        self._rp_filter: dict[str, str] = {}
        self.rp_filter_dirty: set[str] = set()
        """Interfaces whose :attr:`rp_filter` entry changed since the applier last synced."""
        self.log_drops = False

    @property
    def refused(self) -> Mapping[m.WorkloadEndpointID, str]:
        """Endpoints not programmed, with the reason (read-only view)."""
        return MappingProxyType(self._refused)

    @property
    def rp_filter(self) -> Mapping[str, str]:
        """Interface name -> reverse-path filter mode for every programmed interface."""
        return MappingProxyType(self._rp_filter)

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
            if name.startswith(layout.COMPILED_TIER_PREFIXES):
                for key in [k for k, t in self._compiled.items() if t.entry == name]:
                    del self._compiled[key]

    def _use_map(self, eid: m.WorkloadEndpointID, tier: CompiledTier) -> None:
        assert tier.map is not None
        name = tier.map.name
        if not self._map_users[name]:
            self._state.ensure_set(tier.map)
        old = self._map_elements.get(name, frozenset())
        if old != tier.elements:  # the tier's rules changed: its users all follow
            self._state.del_elements(name, old - tier.elements)
            self._state.add_elements(name, tier.elements - old)
            self._map_elements[name] = tier.elements
        self._map_users[name].add(eid)

    def _release_map(self, eid: m.WorkloadEndpointID, name: str) -> None:
        users = self._map_users.get(name)
        if users is None:
            return
        users.discard(eid)
        if not users:
            del self._map_users[name]
            del self._map_elements[name]
            self._state.remove_set(name)

    def _compiler(self, used: list[CompiledTier]
                  ) -> Callable[[Sequence[PolicyID], bool], str | None] | None:
        """What compiles a tier with many policies for :func:`endpoint_rules`; the
        tiers it compiled are appended to ``used``."""
        least, pm = self.compile_min_policies, self.policies
        if least is None or pm is None:
            return None

        def compiled(pols: Sequence[PolicyID], inbound: bool) -> str | None:
            if len(pols) < least:
                return None
            pieces: list[Piece] = []
            for pid in pols:
                got = pm.pieces.get((pid, inbound)) if self._has_policy(pid) else None
                if got is None:  # not programmed: fail closed at its place in the order
                    drop = RuleSpec("counter drop",
                                    comment=layout.short_comment(f"missing-policy:{pid}"))
                    pieces.append((None, (drop,)))
                else:
                    pieces += got
            key = ("i" if inbound else "o", "\n".join(layout.policy_key(pid) for pid in pols))
            tier = self._compiled.get(key)
            if tier is None or tier.pieces != tuple(pieces):
                tier = self._compiled[key] = compile_tier(pieces, *key, previous=tier)
            used.append(tier)
            return tier.entry

        return compiled

    def _set_spoof(self, eid: m.WorkloadEndpointID, keys: set[tuple[str, Key]]) -> None:
        old = self._spoof.get(eid, set())
        for name, key in old - keys:
            self._spoof_refs[(name, key)] -= 1
            if self._spoof_refs[(name, key)] <= 0:
                del self._spoof_refs[(name, key)]
                self._state.del_elements(name, [key])
        for name, key in keys - old:
            self._spoof_refs[(name, key)] += 1
            if self._spoof_refs[(name, key)] == 1:
                self._state.add_elements(name, [key])
        if keys:
            self._spoof[eid] = keys
        else:
            self._spoof.pop(eid, None)

    def _set_rpf(self, ifn: str, ep: m.WorkloadEndpointUpdate | None) -> None:
        """Reverse-path filtering of ``ifn`` for its owner ``ep`` (None: not programmed).

        Strict unless the endpoint may send from prefixes of that family that
        are not its own: those are, by design, not routed back through its
        interface, so a strict check would drop exactly the traffic the
        operator allowed. The anti-spoofing set (which lists those prefixes
        exactly) still holds; off rather than loose, because loose would also
        drop allowed sources the host has no route for at all.
        """
        key = (f'"{ifn}"',)
        self.rp_filter_dirty.add(ifn)
        if ep is None:
            self._rp_filter.pop(ifn, None)
            self._state.del_elements(layout.RPF_V6, [key])
            return
        spoofs = [ipaddress.ip_network(t, strict=False) for t in ep.allow_spoofed_prefixes
                  if _is_net(t)]
        self._rp_filter[ifn] = "off" if any(n.version == 4 for n in spoofs) else "strict"
        if any(n.version == 6 for n in spoofs):
            self._state.del_elements(layout.RPF_V6, [key])
        else:
            self._state.add_elements(layout.RPF_V6, [key])

    def _render(self, ep: m.WorkloadEndpointUpdate) -> None:
        used: list[CompiledTier] = []
        common: dict[str, Any] = dict(
            tiers=ep.tiers,
            profile_ids=ep.profile_ids,
            missing_profiles=ep.missing_profiles,
            has_policy=self._has_policy,
            has_profile=self._has_profile,
            log_drops=self.log_drops,
            compiled=self._compiler(used),
        )
        eid = ep.endpoint_id
        try:
            to_rules = endpoint_rules(inbound=True, **common)
            from_rules = endpoint_rules(inbound=False, **common)
            spoof = _spoof_keys(ep)
        except ValidationError as exc:
            log.error("endpoint %s: %s; dropping its traffic", eid, exc)
            to_rules = from_rules = [RuleSpec("counter drop", comment="render-error")]
            spoof = set()
            used.clear()
        tw = layout.make_chain(layout.shared_chain_name("tw", to_rules), to_rules,
                               layout.RANK_ENDPOINT, "workload ingress")
        fw = layout.make_chain(layout.shared_chain_name("fw", from_rules), from_rules,
                               layout.RANK_ENDPOINT, "workload egress")
        old = self._chains_of.get(eid, frozenset())
        old_maps = self._maps_of.get(eid, ())
        # Maps before chains: a kept chain's rules go on naming a kept map.
        maps = tuple(dict.fromkeys(t.map.name for t in used if t.map is not None))
        for tier in used:
            if tier.map is not None:
                self._use_map(eid, tier)
        specs = {spec.name: spec for spec in (tw, fw, *(c for tier in used for c in tier.chains))}
        for name, spec in specs.items():
            if name not in old:  # chains are named by content: a kept name is a kept chain
                self._use(eid, spec)
        self._chains_of[eid] = frozenset(specs)
        if maps:
            self._maps_of[eid] = maps
        else:
            self._maps_of.pop(eid, None)
        ifn = ep.interface_name
        # Two endpoints claiming one interface (never from a sane datastore):
        # the latest owns its dispatch entries and addresses; the other keeps
        # nothing in the kernel until it is updated again.
        owner = self._owner.get(ifn) == eid
        self._set_spoof(eid, spoof if owner else set())
        if owner:
            self._state.set_entry(layout.MAP_TO_WL, ifn, tw.name)
            self._state.set_entry(layout.MAP_FROM_WL, ifn, fw.name)
            self._set_rpf(ifn, ep)
        for name in old - specs.keys():
            self._release(eid, name)
        for name in old_maps:
            if name not in maps:
                self._release_map(eid, name)

    def _unprogram(self, ep: m.WorkloadEndpointUpdate) -> None:
        eid = ep.endpoint_id
        ifn = ep.interface_name
        if self._owner.get(ifn) == eid:
            del self._owner[ifn]
            self._state.set_entry(layout.MAP_TO_WL, ifn, None)
            self._state.set_entry(layout.MAP_FROM_WL, ifn, None)
            # The kernel's rp_filter is left as it is: the interface usually
            # goes with the endpoint, and strict is the safe value meanwhile.
            self._set_rpf(ifn, None)
        self._set_spoof(eid, set())
        for name in self._chains_of.pop(eid, ()):
            self._release(eid, name)
        for name in self._maps_of.pop(eid, ()):
            self._release_map(eid, name)

    def _withdraw(self, eid: m.WorkloadEndpointID) -> None:
        """Take a programmed endpoint out of the kernel state entirely."""
        old = self._programmed.pop(eid, None)
        if old is not None:
            self._index.remove(eid, _referents(old.tiers), set(old.profile_ids))
            self._unprogram(old)

    def _refuse(self, msg: m.WorkloadEndpointUpdate, reason: str) -> None:
        eid = msg.endpoint_id
        self._withdraw(eid)
        if self._refused.get(eid) != reason:
            log.warning("workload endpoint %s/%s not programmed: %s",
                        eid.namespace, eid.name, reason)
        self._refused[eid] = reason

    def update(self, msg: m.WorkloadEndpointUpdate) -> None:
        eid = msg.endpoint_id
        self.endpoints[eid] = msg
        problem = interface_prefix_problem(msg.interface_name, self.prefixes)
        if problem is not None:
            self._refuse(msg, problem)
            return
        if self._refused.pop(eid, None) is not None:
            log.info("workload endpoint %s/%s: interface %s accepted now",
                     eid.namespace, eid.name, msg.interface_name)
        old = self._programmed.get(eid)
        if old is not None:
            self._index.remove(eid, _referents(old.tiers), set(old.profile_ids))
            if old.interface_name != msg.interface_name:
                self._unprogram(old)
        self._programmed[eid] = msg
        self._index.add(eid, _referents(msg.tiers), set(msg.profile_ids))
        self._owner[msg.interface_name] = eid
        self._render(msg)

    def remove(self, msg: m.WorkloadEndpointRemove) -> None:
        self.endpoints.pop(msg.endpoint_id, None)
        self._refused.pop(msg.endpoint_id, None)
        self._withdraw(msg.endpoint_id)

    def set_prefixes(self, prefixes: tuple[str, ...]) -> None:
        """New workload interface prefixes: every endpoint is judged again."""
        if prefixes == self.prefixes:
            return
        self.prefixes = prefixes
        for msg in list(self.endpoints.values()):
            problem = interface_prefix_problem(msg.interface_name, prefixes)
            if problem is not None:
                self._refuse(msg, problem)
            elif msg.endpoint_id not in self._programmed:
                self.update(msg)

    def refresh(self, pols: set[PolicyID], profs: set[str]) -> None:
        for eid in self._index.affected(pols, profs):
            self._render(self._programmed[eid])

    def rules_changed(self, pid: PolicyID) -> None:
        """A policy's rules changed: compiled tiers hold copies of them."""
        for eid in self._index.affected({pid}, set()):
            if eid in self._maps_of or any(n.startswith(layout.COMPILED_CHAIN_PREFIXES)
                                           for n in self._chains_of[eid]):
                self._render(self._programmed[eid])


def _is_net(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


class HostEndpointManager:
    """Host endpoints, each policy kind where Calico puts it:

    - normal tiers: ``th-``/``fh-`` chains from ``in-host``/``out-host``
      (input/output of the host itself), with profiles and default deny;
    - ``forward_tiers`` (applyOnForward): ``fi-``/``fo-`` chains on the forward
      hook, by the interface the packet came in by / leaves by; tiers keep
      their default action, no profiles;
    - ``pre_dnat_tiers``: ``pd-`` chain at prerouting -150 (before DNAT),
      ingress only; undecided traffic goes on to normal policy;
    - ``untracked_tiers`` (doNotTrack): ``ui-``/``uo-`` chains at raw priority;
      Allow skips conntrack and the filter chains; undecided goes on.

    An all-interfaces endpoint (``interface_name`` ``*`` or None) fills the
    fixed ``*-all-host-interfaces`` chains, which apply to every interface
    without an endpoint of its own except ``gh*`` and ``lo``; its doNotTrack
    policy is not supported (logged). With several, the last update wins.
    """

    def __init__(self, state: TableState, policies: PolicyManager | None = None) -> None:
        self._state = state
        self.policies = policies
        self.endpoints: dict[str, m.HostEndpointUpdate] = {}
        self._index = _EndpointIndex()
        self._programmed: dict[str, set[tuple[str, str, str]]] = {}  # eid -> (map, ifname, chain)
        self._iface_refs: dict[str, int] = defaultdict(int)
        self._all_owner: str | None = None
        self.log_drops = False
        state.ensure_set(layout.hep_ifaces_set())
        for spec in layout.all_interface_chains():
            state.set_chain(spec)

    def _chains(self, ep: m.HostEndpointUpdate, ifn: str) -> list[tuple[str, str, list[RuleSpec]]]:
        """(kind, dispatch map, rules) for every chain ``ep`` needs."""
        pm = self.policies

        def rules(tiers: tuple[m.TierInfo, ...], inbound: bool, **kw: Any) -> list[RuleSpec]:
            return endpoint_rules(
                tiers=tiers, inbound=inbound,
                profile_ids=ep.profile_ids if kw.get("normal", True) else (),
                missing_profiles=ep.missing_profiles if kw.get("normal", True) else (),
                has_policy=lambda p: pm is not None and p in pm.policies,
                has_profile=lambda p: pm is not None and p in pm.profiles,
                log_drops=self.log_drops and kw.get("normal", True), **kw)

        def used(tiers: tuple[m.TierInfo, ...], inbound: bool) -> bool:
            return any(t.ingress_policies if inbound else t.egress_policies for t in tiers)

        out = [("th", layout.MAP_TO_HEP, rules(ep.tiers, True)),
               ("fh", layout.MAP_FROM_HEP, rules(ep.tiers, False))]
        for inbound, mp, kind in ((True, layout.MAP_FWD_HEP_IN, "fi"),
                                  (False, layout.MAP_FWD_HEP_OUT, "fo")):
            if used(ep.forward_tiers, inbound):
                out.append((kind, mp, rules(ep.forward_tiers, inbound, normal=False,
                                            tier_end_drop=True)))
        if used(ep.pre_dnat_tiers, True):
            out.append(("pd", layout.MAP_PRE_HEP, rules(ep.pre_dnat_tiers, True, normal=False)))
        if ifn == "*":
            if ep.untracked_tiers:
                log.warning("host endpoint %s: doNotTrack policy on all interfaces is not "
                            "supported; ignored", ep.endpoint_id)
            return out
        for inbound, mp, kind in ((True, layout.MAP_RAW_HEP_IN, "ui"),
                                  (False, layout.MAP_RAW_HEP_OUT, "uo")):
            if used(ep.untracked_tiers, inbound):
                out.append((kind, mp, rules(ep.untracked_tiers, inbound, normal=False)))
        return out

    def _render(self, ep: m.HostEndpointUpdate) -> None:
        ifn = ep.interface_name or "*"
        owner = f"host-endpoint:{ep.endpoint_id}"
        try:
            chains = self._chains(ep, ifn)
        except ValidationError as exc:
            log.error("host endpoint %s: %s; dropping its traffic", ep.endpoint_id, exc)
            drop = [RuleSpec("counter drop", comment="render-error")]
            chains = [("th", layout.MAP_TO_HEP, drop), ("fh", layout.MAP_FROM_HEP, drop)]
        if ifn == "*":
            if self._all_owner not in (None, ep.endpoint_id):
                log.warning("host endpoints %s and %s both claim all interfaces: %s wins",
                            self._all_owner, ep.endpoint_id, ep.endpoint_id)
            self._all_owner = ep.endpoint_id
            have = {kind: body for kind, _, body in chains}
            for kind in layout.ALL_HEP_KINDS:
                self._state.set_chain(layout.make_chain(
                    layout.hep_chain(kind, "*"), have.get(kind, []), layout.RANK_ENDPOINT,
                    "all-interfaces host endpoint"))
            self._set(ep.endpoint_id, [])
            return
        self._set(ep.endpoint_id, [
            (mp, ifn, layout.make_chain(layout.hep_chain(kind, ifn), body, layout.RANK_ENDPOINT,
                                        owner))
            for kind, mp, body in chains
        ])

    def _set(self, eid: str, wanted: list[tuple[str, str, ChainSpec]]) -> None:
        new = {(mp, ifn, spec.name) for mp, ifn, spec in wanted}
        old = self._programmed.get(eid, set())
        for _, _, spec in wanted:
            self._state.set_chain(spec)
        for mp, ifn, name in new:
            self._state.set_entry(mp, ifn, name)
        for mp, ifn, name in old - new:
            if not any(m2 == mp and i2 == ifn for m2, i2, _ in new):
                self._state.set_entry(mp, ifn, None)
            if not any(n2 == name for _, _, n2 in new):
                self._state.remove_chain(name)
        old_ifaces = {ifn for _, ifn, _ in old}
        new_ifaces = {ifn for _, ifn, _ in new}
        for ifn in new_ifaces - old_ifaces:
            self._iface_refs[ifn] += 1
            if self._iface_refs[ifn] == 1:
                self._state.add_elements(layout.HEP_IFACES, [(f'"{ifn}"',)])
        for ifn in old_ifaces - new_ifaces:
            self._iface_refs[ifn] -= 1
            if self._iface_refs[ifn] <= 0:
                del self._iface_refs[ifn]
                self._state.del_elements(layout.HEP_IFACES, [(f'"{ifn}"',)])
        if new:
            self._programmed[eid] = new
        else:
            self._programmed.pop(eid, None)

    def _forget(self, ep: m.HostEndpointUpdate) -> None:
        self._set(ep.endpoint_id, [])
        if self._all_owner == ep.endpoint_id and (ep.interface_name or "*") == "*":
            self._all_owner = None
            for spec in layout.all_interface_chains():
                self._state.set_chain(spec)
            for other in self.endpoints.values():  # another claimant takes over
                if other.endpoint_id != ep.endpoint_id and (other.interface_name or "*") == "*":
                    self._render(other)
                    break

    def update(self, msg: m.HostEndpointUpdate) -> None:
        old = self.endpoints.get(msg.endpoint_id)
        if old is not None:
            self._index.remove(msg.endpoint_id, _hep_referents(old), set(old.profile_ids))
            if (old.interface_name or "*") != (msg.interface_name or "*"):
                self._forget(old)
        self.endpoints[msg.endpoint_id] = msg
        self._index.add(msg.endpoint_id, _hep_referents(msg), set(msg.profile_ids))
        self._render(msg)

    def remove(self, msg: m.HostEndpointRemove) -> None:
        old = self.endpoints.pop(msg.endpoint_id, None)
        if old is not None:
            self._index.remove(msg.endpoint_id, _hep_referents(old), set(old.profile_ids))
            self._forget(old)

    def refresh(self, pols: set[PolicyID], profs: set[str]) -> None:
        for eid in self._index.affected(pols, profs):
            self._render(self.endpoints[eid])


def _hep_referents(ep: m.HostEndpointUpdate) -> set[PolicyID]:
    return _referents((*ep.tiers, *ep.forward_tiers, *ep.pre_dnat_tiers, *ep.untracked_tiers))
