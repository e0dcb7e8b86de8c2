"""The reference policy evaluator: why would a packet from A to B pass or not?

Written straight from the semantics (DESIGN.md section 3, Calico's and
Kubernetes' documentation) over model resources, deliberately sharing no
code with the calculation graph or the nft renderer, so that comparing it
with measured reachability checks both.

A connection from A to B needs egress allowed at A and ingress allowed at B.
Per direction and endpoint:

1. Tiers in order (``order`` ascending, absent last, ties by name). A tier
   takes part only if one of its policies selects the endpoint and has that
   direction in its ``types``.
2. Inside a tier, those policies by ``order`` (absent last, ties by name);
   each policy's rules in order. The first rule that matches decides: Allow
   and Deny end the evaluation, Pass skips the rest of the tier, Log records
   and continues. A tier whose policies matched no deciding rule ends in its
   ``defaultAction`` (Deny, or Pass to the next tier).
3. After the tiers (no tier took part, or all passed): the endpoint's
   profiles in order; the first Allow or Deny decides; nothing matching
   denies. A missing profile denies everything (fail closed). The namespace
   profile ``kns.<ns>`` allows all, hence Kubernetes' "no policy selects the
   pod: allowed".

Traffic from a workload to its own address never leaves its namespace, so
no policy sees it: it is always allowed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gingham.errors import ValidationError
from gingham.model import EntityRule, GlobalNetworkPolicy, Rule, protocol_number
from gingham.names import NAMESPACE_LABEL, SERVICE_ACCOUNT_LABEL_PREFIX
from gingham.policy.world import (
    Item,
    Policy,
    World,
    load_world,
)
from gingham.selector import parse

Direction = Literal["ingress", "egress"]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "icmpv6": 58}
PORT_PROTOCOLS = frozenset({6, 17, 132})


@dataclass(frozen=True, slots=True)
class Packet:
    """The first packet of a connection. ``src_port`` None: an ephemeral port
    nobody chose (rules on source ports do not match it, ``notPorts`` do)."""

    src: Address
    dst: Address
    protocol: int
    dst_port: int | None = None
    src_port: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the evaluation did, for the trace ``policy explain`` prints."""

    tier: str | None
    policy: str | None
    rule_index: int | None
    action: str
    note: str = ""


@dataclass(frozen=True)
class Decision:
    """The verdict of one direction at one endpoint, and what decided it.

    ``decided_by``: ``rule`` (a policy rule), ``tier-default`` (end of a tier),
    ``profile`` (a profile rule), ``no-profile`` (fell through every profile),
    ``missing-profile``, ``loopback``.
    """

    direction: Direction
    endpoint: str
    allowed: bool
    decided_by: str
    tier: str | None = None
    policy: str | None = None
    rule_index: int | None = None
    rule_id: str | None = None
    reason: str = ""
    logged: tuple[str, ...] = ()
    trace: tuple[Step, ...] = ()
    policies_selecting: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "endpoint": self.endpoint,
            "allowed": self.allowed,
            "decidedBy": self.decided_by,
            "tier": self.tier,
            "policy": self.policy,
            "ruleIndex": self.rule_index,
            "ruleId": self.rule_id,
            "reason": self.reason,
            "logged": list(self.logged),
            "policiesSelecting": list(self.policies_selecting),
            "trace": [
                {"tier": s.tier, "policy": s.policy, "rule": s.rule_index, "action": s.action,
                 "note": s.note}
                for s in self.trace
            ],
        }


@dataclass(frozen=True)
class Verdict:
    src: str
    dst: str
    protocol: str
    port: int | None
    egress: Decision
    ingress: Decision
    allowed: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed", self.egress.allowed and self.ingress.allowed)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.src,
            "destination": self.dst,
            "protocol": self.protocol,
            "port": self.port,
            "allowed": self.allowed,
            "egress": self.egress.to_json(),
            "ingress": self.ingress.to_json(),
        }


# ----------------------------------------------------------------- naming


def policy_label(p: Policy) -> str:
    """How people name a policy: ``tier/ns/name`` or ``tier/name`` (global)."""
    ns = p.metadata.namespace if not isinstance(p, GlobalNetworkPolicy) else None
    return f"{p.spec.tier}/{ns}/{p.metadata.name}" if ns else f"{p.spec.tier}/{p.metadata.name}"


def rule_id(owner: str, direction: Direction, index: int) -> str:
    """The dataplane's id for a rule (its nft comment and log prefix)."""
    return f"{owner}:{'i' if direction == 'ingress' else 'e'}{index}"


def policy_owner(p: Policy) -> str:
    return f"policy:{policy_label(p)}"


# ----------------------------------------------------------------- matching


def _sel(expr: str, labels: Mapping[str, str]) -> bool:
    return parse(expr).evaluate(labels)


def _namespace_selector_matches(expr: str, item: Item, world: World) -> bool:
    """``namespaceSelector`` sees the labels of the item's namespace;
    ``global()`` in it means the non-namespaced things."""
    if item.namespace is None:
        return "global()" in expr.replace(" ", "") and _sel(expr, {})
    labels = {**world.ns_labels(item.namespace), NAMESPACE_LABEL: item.namespace}
    return _sel(expr, labels)


def _scoped(entity: EntityRule) -> bool:
    """An entity names endpoints (and so is scoped to a namespace) when it has
    any selector-like field; nets and ports alone are not scoped."""
    return bool(
        entity.selector is not None
        or entity.not_selector is not None
        or entity.namespace_selector is not None
        or (entity.service_accounts is not None
            and (entity.service_accounts.names or entity.service_accounts.selector))
    )


def _item_matches(entity: EntityRule, item: Item, policy_ns: str | None, world: World) -> bool:
    """Does this address owner satisfy the entity's positive selector fields?"""
    if entity.namespace_selector is not None:
        if not _namespace_selector_matches(entity.namespace_selector, item, world):
            return False
    elif policy_ns is not None and item.namespace != policy_ns:
        return False
    if entity.selector is not None and not _sel(entity.selector, item.labels):
        return False
    sa = entity.service_accounts
    if sa is not None:
        if sa.names and item.service_account not in sa.names:
            return False
        if sa.selector:
            sa_labels = {k[len(SERVICE_ACCOUNT_LABEL_PREFIX):]: v for k, v in item.labels.items()
                         if k.startswith(SERVICE_ACCOUNT_LABEL_PREFIX)}
            if not _sel(sa.selector, sa_labels):
                return False
    return True


def _port_matches(
    spec: int | str, port: int | None, protocol: int, owners: list[Item]
) -> bool:
    if port is None:
        return False
    if isinstance(spec, int):
        return spec == port
    text = str(spec)
    if text.isdigit():
        return int(text) == port
    lo, sep, hi = text.partition(":")
    if sep and lo.isdigit() and hi.isdigit():
        return int(lo) <= port <= int(hi)
    # A named port: an endpoint owning the address declares it for this protocol.
    return any(np.name == text and np.protocol == protocol and np.port == port
               for item in owners for np in item.ports)


def entity_matches(
    entity: EntityRule,
    address: Address,
    port: int | None,
    protocol: int,
    policy_ns: str | None,
    world: World,
    action: str = "Allow",
) -> bool:
    """Every field of the entity must hold (AND); lists inside a field are ORs.

    Kubernetes Services are not stored in gingham, so a ``services`` match
    cannot be decided: gingham fails closed, a Deny rule ignores the
    condition (denies more) and any other rule never matches.
    """
    if entity.services is not None and action != "Deny":
        return False
    if entity.nets and not any(address in ipaddress.ip_network(n) for n in entity.nets):
        return False
    if any(address in ipaddress.ip_network(n) for n in entity.not_nets):
        return False
    owners = world.owners(address)
    if _scoped(entity):
        owners_ok = [o for o in owners if _item_matches(entity, o, policy_ns, world)]
        if not owners_ok:
            return False
    else:
        owners_ok = owners
    if entity.not_selector is not None and any(
        _sel(entity.not_selector, o.labels) for o in owners
    ):
        return False
    if entity.ports and not any(_port_matches(p, port, protocol, owners_ok)
                                for p in entity.ports):
        return False
    excluded = any(_port_matches(p, port, protocol, owners_ok) for p in entity.not_ports)
    return not excluded


def rule_matches(rule: Rule, packet: Packet, policy_ns: str | None, world: World) -> bool:
    version = packet.src.version
    if rule.ip_version is not None and rule.ip_version != version:
        return False
    if rule.protocol is not None and protocol_number(rule.protocol) != packet.protocol:
        return False
    if rule.not_protocol is not None and protocol_number(rule.not_protocol) == packet.protocol:
        return False
    if rule.icmp is not None:
        if rule.icmp.type is not None and rule.icmp.type != packet.icmp_type:
            return False
        if rule.icmp.code is not None and rule.icmp.code != packet.icmp_code:
            return False
    if rule.not_icmp is not None and rule.not_icmp.type == packet.icmp_type and (
        rule.not_icmp.code is None or rule.not_icmp.code == packet.icmp_code
    ):
        return False
    if not entity_matches(rule.source, packet.src, packet.src_port, packet.protocol,
                          policy_ns, world, rule.action):
        return False
    return entity_matches(rule.destination, packet.dst, packet.dst_port, packet.protocol,
                          policy_ns, world, rule.action)


# ----------------------------------------------------------------- selection and order


def selects(p: Policy, item: Item, world: World) -> bool:
    """Does the policy apply to this endpoint at all (either direction)?"""
    if isinstance(p, GlobalNetworkPolicy):
        ns_sel = p.spec.namespace_selector
        if ns_sel and not _namespace_selector_matches(ns_sel, item, world):
            return False
    elif item.namespace != (p.metadata.namespace or "default"):
        return False
    if p.spec.service_account_selector:
        sa_labels = {k[len(SERVICE_ACCOUNT_LABEL_PREFIX):]: v for k, v in item.labels.items()
                     if k.startswith(SERVICE_ACCOUNT_LABEL_PREFIX)}
        if not _sel(p.spec.service_account_selector, sa_labels):
            return False
    return _sel(p.spec.selector, item.labels)


def _order(value: float | None) -> tuple[bool, float]:
    return (value is None, 0.0 if value is None else float(value))


def ordered_tiers(world: World, item: Item, direction: Direction) -> list[tuple[str, list[Policy]]]:
    """Tiers taking part for (endpoint, direction), each with its policies in order."""
    kind = "Ingress" if direction == "ingress" else "Egress"
    by_tier: dict[str, list[Policy]] = {}
    for p in world.policies:
        if kind in p.spec.types and selects(p, item, world):
            by_tier.setdefault(p.spec.tier, []).append(p)
    names = sorted(by_tier, key=lambda t: (*_order(world.tier(t).order), t))
    return [
        (t, sorted(by_tier[t], key=lambda p: (*_order(p.spec.order), p.metadata.name,
                                              p.metadata.namespace or "")))
        for t in names
    ]


# ----------------------------------------------------------------- one direction


def evaluate(world: World, item: Item, direction: Direction, packet: Packet) -> Decision:
    """The verdict for ``packet`` in ``direction`` at endpoint ``item``."""
    trace: list[Step] = []
    logged: list[str] = []
    tiers = ordered_tiers(world, item, direction)
    selecting = tuple(policy_label(p) for _, ps in tiers for p in ps)
    base: dict[str, Any] = {"direction": direction, "endpoint": item.ref,
                            "policies_selecting": selecting}
    for tier_name, policies in tiers:
        passed = False
        for p in policies:
            rules = p.spec.ingress if direction == "ingress" else p.spec.egress
            ns = None if isinstance(p, GlobalNetworkPolicy) else (p.metadata.namespace or "default")
            label = policy_label(p)
            for index, rule in enumerate(rules):
                if not rule_matches(rule, packet, ns, world):
                    continue
                rid = rule_id(policy_owner(p), direction, index)
                trace.append(Step(tier_name, label, index, rule.action))
                if rule.action == "Log":
                    logged.append(rid)
                    continue
                if rule.action == "Pass":
                    passed = True
                    break
                return Decision(
                    **base, allowed=rule.action == "Allow", decided_by="rule", tier=tier_name,
                    policy=label, rule_index=index, rule_id=rid,
                    reason=f"{direction} rule {index} of policy {label} in tier {tier_name}: "
                           f"{rule.action}",
                    logged=tuple(logged), trace=tuple(trace),
                )  # fmt: skip
            if passed:
                break
            trace.append(Step(tier_name, label, None, "no-match"))
        if passed:
            trace.append(Step(tier_name, None, None, "Pass", "to the next tier"))
            continue
        default = world.tier(tier_name).default_action
        if default == "Pass":
            trace.append(Step(tier_name, None, None, "Pass", "tier default action"))
            continue
        return Decision(
            **base, allowed=False, decided_by="tier-default", tier=tier_name,
            rule_id=f"tier-end:{tier_name}",
            reason=f"no {direction} rule of tier {tier_name} matched "
                   f"(policies: {', '.join(policy_label(p) for p in policies)}): "
                   f"tier default action Deny",
            logged=tuple(logged), trace=(*trace, Step(tier_name, None, None, "Deny",
                                                      "tier default action")),
        )  # fmt: skip
    return _profiles(world, item, direction, packet, base, trace, logged, bool(tiers))


def _profiles(
    world: World,
    item: Item,
    direction: Direction,
    packet: Packet,
    base: dict[str, Any],
    trace: list[Step],
    logged: list[str],
    had_tiers: bool,
) -> Decision:
    lead = "every tier passed" if had_tiers else f"no policy selects {item.ref}"
    missing = [name for name in item.profiles if name not in world.profiles]
    if missing:
        return Decision(
            **base, allowed=False, decided_by="missing-profile",
            reason=f"{lead}; profile {', '.join(missing)} does not exist: fail closed, deny",
            logged=tuple(logged), trace=tuple(trace),
        )  # fmt: skip
    for name in item.profiles:
        prof = world.profiles[name]
        rules = prof.spec.ingress if direction == "ingress" else prof.spec.egress
        for index, rule in enumerate(rules):
            if not rule_matches(rule, packet, None, world):
                continue
            rid = rule_id(f"profile:{name}", direction, index)
            trace.append(Step(None, f"profile {name}", index, rule.action))
            if rule.action == "Log":
                logged.append(rid)
                continue
            if rule.action == "Pass":
                break  # on to the next profile
            verb = "allows" if rule.action == "Allow" else "denies"
            return Decision(
                **base, allowed=rule.action == "Allow", decided_by="profile",
                policy=f"profile {name}", rule_index=index, rule_id=rid,
                reason=f"{lead}: profile {name} {verb} ({direction} rule {index})",
                logged=tuple(logged), trace=tuple(trace),
            )  # fmt: skip
    return Decision(
        **base, allowed=False, decided_by="no-profile", rule_id="no-profile-allowed",
        reason=f"{lead}; no profile rule allows it (profiles: "
               f"{', '.join(item.profiles) or 'none'}): deny",
        logged=tuple(logged), trace=tuple(trace),
    )  # fmt: skip


# ----------------------------------------------------------------- a connection


def protocol_of(protocol: str | int) -> int:
    if isinstance(protocol, int):
        return protocol
    number = PROTOCOLS.get(protocol.lower())
    if number is None:
        raise ValidationError(f"unknown protocol {protocol!r} (tcp, udp, sctp, icmp, icmpv6)",
                              "protocol")
    return number


def _loopback(direction: Direction, item: Item) -> Decision:
    return Decision(direction, item.ref, True, "loopback",
                    reason="traffic to its own address stays inside the workload")


def _first_address(item: Item, version: int | None = None) -> Address:
    for net in item.nets:
        if version is None or net.version == version:
            return net.network_address
    raise ValidationError(f"workload {item.ref} has no IPv{version or ''} address", item.ref)


def _endpoint(world: World, ref: str) -> Item | Address:
    """A workload (``NS/NAME``, or an address one owns), else a bare address."""
    try:
        address = ipaddress.ip_address(ref)
    except ValueError:
        item = world.workload(ref)
        if item is None:
            known = ", ".join(i.ref for i in world.workloads()) or "none"
            raise ValidationError(f"no workload endpoint {ref!r} (known: {known}); "
                                  "give NS/NAME or an IP address", "workload") from None
        return item
    owners = [o for o in world.owners(address) if o.kind == "WorkloadEndpoint"]
    return owners[0] if owners else address


def _outside(direction: Direction, address: Address) -> Decision:
    return Decision(direction, str(address), True, "not-an-endpoint",
                    reason=f"{address} is not a gingham workload: no gingham policy applies "
                           "there")


def explain(
    world: World,
    src: str,
    dst: str,
    port: int | None,
    protocol: str | int = "tcp",
    *,
    icmp_type: int | None = None,
    icmp_code: int | None = None,
) -> Verdict:
    """Why a connection from ``src`` to ``dst`` passes or not.

    Each is a workload ``NS/NAME`` or an IP address; an address that no
    workload owns is outside gingham, and only the workload side's policy
    applies.
    """
    a, b = _endpoint(world, src), _endpoint(world, dst)
    number = protocol_of(protocol)
    if port is not None and number not in PORT_PROTOCOLS:
        raise ValidationError(f"protocol {protocol} has no ports", "port")
    name = str(protocol).lower()
    if isinstance(a, Item) and isinstance(b, Item) and a.ref == b.ref:
        return Verdict(src, dst, name, port, _loopback("egress", a), _loopback("ingress", b))
    if not isinstance(a, Item) and not isinstance(b, Item):
        raise ValidationError(f"neither {src} nor {dst} is a gingham workload", "workload")
    dst_addr = _first_address(b) if isinstance(b, Item) else b
    src_addr = _first_address(a, dst_addr.version) if isinstance(a, Item) else a
    if src_addr.version != dst_addr.version:
        raise ValidationError(f"{src} and {dst} are of different IP versions", "workload")
    packet = Packet(src_addr, dst_addr, number, port, icmp_type=icmp_type, icmp_code=icmp_code)
    egress = evaluate(world, a, "egress", packet) if isinstance(a, Item) else _outside(
        "egress", a)
    ingress = evaluate(world, b, "ingress", packet) if isinstance(b, Item) else _outside(
        "ingress", b)
    return Verdict(src, dst, name, port, egress, ingress)


def explain_matrix(
    datastore: Any, names: list[str], port: int, protocol: str = "tcp"
) -> dict[str, dict[str, bool]]:
    """Expected reachability among ``names`` (``NS/NAME``), as ``gingham lab matrix`` measures it.

    ``datastore`` is a URL or an open backend. A name without a workload
    endpoint is unreachable both ways.
    """
    world = load_world(datastore)
    return matrix(world, names, port, protocol)


def matrix(world: World, names: list[str], port: int, protocol: str = "tcp"
           ) -> dict[str, dict[str, bool]]:
    known = {i.ref for i in world.workloads()}
    out: dict[str, dict[str, bool]] = {}
    for a in names:
        out[a] = {}
        for b in names:
            out[a][b] = (a in known and b in known
                         and explain(world, a, b, port, protocol).allowed)
    return out
