"""Policies, profiles and tiers as the graph keeps them, and the per-endpoint ordering.

``policy_def``/``profile_def`` convert a model resource once per update (rules
parsed, selectors scoped, IP sets listed); the graph then only moves these
values around. ``resolve_tiers`` is the policy sorter: pure, per endpoint.

Ordering (DESIGN.md section 3): tiers by ``order`` ascending, absent order
last, ties by name; inside a tier, policies by ``order`` ascending, absent
last, ties by name (then namespace). The ``default`` tier exists implicitly
with order 1,000,000 and default action Deny, as in Calico; a Tier resource
named ``default`` overrides that. A policy naming a tier that does not exist
still applies (fail closed: its denies keep working) in a tier with no order
(sorted last) and default action Deny.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from gingham.calc.messages import ParsedRule, PolicyID, PolicyUpdate, ProfileUpdate, TierInfo
from gingham.calc.rules import (
    IPSetSpec,
    in_namespace,
    namespace_selector_node,
    parse_rules,
    prefix_labels,
    selector_of,
)
from gingham.model import QUARANTINE_TIER
from gingham.names import SERVICE_ACCOUNT_LABEL_PREFIX
from gingham.selector import Selector, parse
from gingham.selector.ast import Node, make_and

DEFAULT_TIER: Final = "default"
DEFAULT_TIER_ORDER: Final = 1_000_000.0


@dataclass(frozen=True, slots=True)
class TierDef:
    name: str
    order: float | None
    default_action: Literal["deny", "pass"]


def implicit_tier(name: str) -> TierDef:
    if name == DEFAULT_TIER:
        return TierDef(name, DEFAULT_TIER_ORDER, "deny")
    if name == QUARANTINE_TIER:  # before every other tier (validity.py)
        return TierDef(name, float("-inf"), "deny")
    return TierDef(name, None, "deny")


def tier_def(resource: Any) -> TierDef:
    action = str(getattr(resource.spec, "default_action", "Deny") or "Deny").lower()
    order = resource.spec.order
    return TierDef(
        resource.metadata.name,
        None if order is None else float(order),
        "pass" if action == "pass" else "deny",
    )


@dataclass(frozen=True, slots=True)
class PolicyDef:
    """A policy, converted. ``selector`` is already scoped (namespace,
    namespaceSelector) so evaluating it on an endpoint's labels decides."""

    policy_id: PolicyID
    order: float | None
    selector: Selector
    ingress: bool
    egress: bool
    inbound: tuple[ParsedRule, ...]
    outbound: tuple[ParsedRule, ...]
    ip_sets: frozenset[IPSetSpec]
    untracked: bool = False
    pre_dnat: bool = False
    apply_on_forward: bool = False

    def message(self) -> PolicyUpdate:
        return PolicyUpdate(
            self.policy_id,
            self.inbound,
            self.outbound,
            untracked=self.untracked,
            pre_dnat=self.pre_dnat,
            apply_on_forward=self.apply_on_forward,
        )


def policy_def(resource: Any) -> PolicyDef:
    """Convert a NetworkPolicy or GlobalNetworkPolicy (raises ValidationError/SelectorError)."""
    spec = resource.spec
    namespace: str | None = resource.metadata.namespace
    tier = getattr(spec, "tier", None) or DEFAULT_TIER
    pid = PolicyID(tier, resource.metadata.name, namespace)
    parts: list[Node] = [parse(spec.selector or "all()").node]
    if namespace is not None:
        parts.append(in_namespace(namespace))
    ns_sel = getattr(spec, "namespace_selector", None)
    if ns_sel:
        parts.append(namespace_selector_node(ns_sel))
    sa_sel = getattr(spec, "service_account_selector", None)
    if sa_sel:
        parts.append(prefix_labels(parse(sa_sel).node, SERVICE_ACCOUNT_LABEL_PREFIX))
    types = {str(t).lower() for t in (spec.types or ())}
    if not types:
        types = {"ingress"} | ({"egress"} if spec.egress else set())
    owner = f"policy:{pid}"
    inbound: tuple[ParsedRule, ...] = ()
    outbound: tuple[ParsedRule, ...] = ()
    specs: list[IPSetSpec] = []
    if "ingress" in types:
        inbound, s = parse_rules(spec.ingress, owner, True, namespace)
        specs.extend(s)
    if "egress" in types:
        outbound, s = parse_rules(spec.egress, owner, False, namespace)
        specs.extend(s)
    order = spec.order
    return PolicyDef(
        policy_id=pid,
        order=None if order is None else float(order),
        selector=selector_of(make_and(parts)),
        ingress="ingress" in types,
        egress="egress" in types,
        inbound=inbound,
        outbound=outbound,
        ip_sets=frozenset(specs),
        untracked=bool(getattr(spec, "do_not_track", False)),
        pre_dnat=bool(getattr(spec, "pre_dnat", False)),
        apply_on_forward=bool(getattr(spec, "apply_on_forward", False)),
    )


@dataclass(frozen=True, slots=True)
class ProfileDef:
    name: str
    labels: Mapping[str, str]
    inbound: tuple[ParsedRule, ...]
    outbound: tuple[ParsedRule, ...]
    ip_sets: frozenset[IPSetSpec]

    def message(self) -> ProfileUpdate:
        return ProfileUpdate(self.name, self.inbound, self.outbound)


def profile_def(resource: Any) -> ProfileDef:
    """Convert a Profile (rules are not namespace-scoped: profiles are global)."""
    spec = resource.spec
    name = resource.metadata.name
    owner = f"profile:{name}"
    inbound, s_in = parse_rules(spec.ingress, owner, True, None)
    outbound, s_out = parse_rules(spec.egress, owner, False, None)
    labels = dict(getattr(spec, "labels_to_apply", None) or {})
    return ProfileDef(name, labels, inbound, outbound, frozenset(s_in + s_out))


# --- the policy sorter ------------------------------------------------------


def _order_key(order: float | None) -> tuple[bool, float]:
    return (order is None, 0.0 if order is None else order)


def policy_sort_key(p: PolicyDef) -> tuple[bool, float, str, str]:
    return (*_order_key(p.order), p.policy_id.name, p.policy_id.namespace or "")


def resolve_tiers(
    policies: Iterable[PolicyDef], tiers: Mapping[str, TierDef]
) -> tuple[TierInfo, ...]:
    """Tiers in evaluation order, each with its policies in order, per direction.

    A tier is listed when at least one of its policies is given; a policy is
    listed in a direction only if its types include that direction.
    """
    by_tier: dict[str, list[PolicyDef]] = {}
    for p in policies:
        by_tier.setdefault(p.policy_id.tier, []).append(p)
    defs = [
        implicit_tier(name) if name == QUARANTINE_TIER else tiers.get(name) or implicit_tier(name)
        for name in by_tier
    ]
    defs.sort(key=lambda t: (*_order_key(t.order), t.name))
    out: list[TierInfo] = []
    for t in defs:
        members = sorted(by_tier[t.name], key=policy_sort_key)
        out.append(
            TierInfo(
                name=t.name,
                default_action=t.default_action,
                ingress_policies=tuple(p.policy_id for p in members if p.ingress),
                egress_policies=tuple(p.policy_id for p in members if p.egress),
            )
        )
    return tuple(out)
