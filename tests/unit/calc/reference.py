"""A brute-force reference for the calculation graph's end state (tests only).

Computes from a full input state, with no index, refcount or sequencer, what
the dataplane should hold: active policies and profiles, every IP set they use
with its members (each set's selector evaluated against every item), and for
each local endpoint its tiers and profiles. Rule conversion and tier sorting
are shared with calc (they have their own tests); everything incremental is not.
"""

from __future__ import annotations

from typing import Any

from gingham.calc import messages as m
from gingham.calc.inputs import ResourceKey
from gingham.calc.members import Item, contributions
from gingham.calc.policies import policy_def, profile_def, resolve_tiers, tier_def
from gingham.model import k8s_policy_to_calico, namespace_to_profile


def expected(state: dict[ResourceKey, Any], host: str) -> tuple[Any, ...]:
    present = {k: v for k, v in state.items() if v is not None}
    by_kind: dict[str, list[tuple[str | None, str, Any]]] = {}
    for key, value in present.items():
        by_kind.setdefault(key.kind, []).append((key.namespace, key.name, value))

    profiles = {v.metadata.name: profile_def(v) for _, _, v in by_kind.get("Profile", [])}
    for _, _, ns_obj in by_kind.get("Namespace", []):
        prof = profile_def(namespace_to_profile(ns_obj))
        profiles[prof.name] = prof
    tiers = {v.metadata.name: tier_def(v) for _, _, v in by_kind.get("Tier", [])}

    items: dict[Any, tuple[dict[str, str], Item]] = {}
    local: dict[Any, tuple[dict[str, str], tuple[str, ...], Any]] = {}

    def inherit(parents: list[str], own: dict[str, str], implicit: dict[str, str]) -> dict:
        labels: dict[str, str] = {}
        for parent in reversed(parents):
            if parent in profiles:
                labels.update(profiles[parent].labels)
        return {**labels, **own, **implicit}

    for ns, name, w in by_kind.get("WorkloadEndpoint", []):
        spec = w.spec
        implicit = {"projectcalico.org/namespace": ns, "projectcalico.org/orchestrator": "k8s"}
        if spec.service_account_name:
            implicit["projectcalico.org/serviceaccount"] = spec.service_account_name
            implicit["pcsa.projectcalico.org/name"] = spec.service_account_name
        parents = list(dict.fromkeys([*spec.profiles, f"kns.{ns}"]))
        labels = inherit(parents, dict(w.metadata.labels), implicit)
        nets = tuple(spec.ip_networks)
        ports = tuple((p.name, str(p.protocol).lower(), p.port) for p in spec.ports)
        item = Item(nets, tuple(n.split("/")[0] for n in nets), ports)
        eid = m.WorkloadEndpointID(ns, name)
        items[eid] = (labels, item)
        if spec.node == host:
            local[eid] = (labels, tuple(spec.profiles), w)
    for _, name, hep in by_kind.get("HostEndpoint", []):
        labels = inherit(list(hep.spec.profiles), dict(hep.metadata.labels), {})
        nets = tuple(f"{ip}/32" if ":" not in ip else f"{ip}/128" for ip in hep.spec.expected_ips)
        items[name] = (labels, Item(nets, tuple(hep.spec.expected_ips)))
        if hep.spec.node == host:
            local[name] = (labels, tuple(hep.spec.profiles), hep)
    for kind in ("NetworkSet", "GlobalNetworkSet"):
        for ns, name, s in by_kind.get(kind, []):
            implicit = {"projectcalico.org/namespace": ns} if ns else {}
            labels = inherit([f"kns.{ns}"] if ns else [], dict(s.metadata.labels), implicit)
            items[(kind, ns, name)] = (labels, Item(tuple(s.spec.nets), ()))

    pdefs = []
    for kind in ("NetworkPolicy", "GlobalNetworkPolicy", "KubernetesNetworkPolicy"):
        for _, _, p in by_kind.get(kind, []):
            pdefs.append(policy_def(k8s_policy_to_calico(p) if kind.startswith("K") else p))
    matching = {ep: [p for p in pdefs if p.selector.evaluate(labels)]
                for ep, (labels, _, _) in local.items()}
    active = {p.policy_id: p for ps in matching.values() for p in ps}
    used_profiles = {name for _, profs, _ in local.values() for name in profs}
    active_profiles = {n: profiles[n] for n in used_profiles if n in profiles}

    specs = {s for p in active.values() for s in p.ip_sets}
    specs |= {s for p in active_profiles.values() for s in p.ip_sets}
    ipsets = {}
    for spec in specs:
        members: set[str] = set()
        for labels, item in items.values():
            if spec.selector.evaluate(labels):
                members.update(contributions(spec, item))
        ipsets[spec.set_id] = (spec.kind, frozenset(members))

    endpoints = {}
    for ep, (_, profs, _) in local.items():
        normal = [p for p in matching[ep] if not (p.untracked or p.pre_dnat)]
        missing = tuple(n for n in dict.fromkeys(profs) if n not in profiles)
        endpoints[ep] = (resolve_tiers(normal, tiers), () if missing else tuple(dict.fromkeys(profs)),
                         missing)
    return (
        ipsets,
        {pid: p.message() for pid, p in active.items()},
        {n: p.message() for n, p in active_profiles.items()},
        endpoints,
    )


def observed(snapshot: tuple[Any, ...]) -> tuple[Any, ...]:
    """The dataplane state in the reference's shape (endpoints: tiers, profiles, missing)."""
    ipsets, policies, profiles, endpoints = snapshot
    return (ipsets, policies, profiles,
            {k: (v.tiers, v.profile_ids, v.missing_profiles) for k, v in endpoints.items()})
