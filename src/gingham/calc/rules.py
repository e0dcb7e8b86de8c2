"""Rule conversion: a model rule becomes a :class:`ParsedRule` plus the IP sets it needs.

Pure functions; the rule scanner (``scanner.py``) ref-counts what they return.

Selector scoping follows Calico's conversion of v3 rules:
- an entity's ``namespaceSelector`` is evaluated against namespace labels,
  which every namespaced endpoint inherits from its namespace profile with the
  ``pcns.`` prefix, so the namespace selector is rewritten onto ``pcns.`` keys
  and ANDed with ``has(projectcalico.org/namespace)`` (only namespaced things
  live in namespaces); ``global()`` stays as it is and selects the
  non-namespaced things (host endpoints, global network sets);
- in a namespaced policy without ``namespaceSelector`` the entity is scoped to
  the policy's namespace (``projectcalico.org/namespace == ns``);
- the scope is applied only when the entity has a selector, a notSelector or a
  namespaceSelector (a rule with only nets or ports is not address-scoped);
  ``notSelector`` itself is not scoped;
- ``serviceAccounts.names`` becomes a condition on the implicit label
  ``projectcalico.org/serviceaccount``; ``serviceAccounts.selector`` (and a
  policy's ``serviceAccountSelector``) is rewritten onto ``pcsa.`` keys.
  Service-account labels are not ingested; the graph gives each workload
  ``pcsa.projectcalico.org/name``, so selecting accounts by name works.
All conditions on one side are ANDed into one selector, hence one IP set.

Kubernetes ``services`` matches cannot be resolved (no Service endpoints are
ingested): non-Deny rules using them never match, Deny rules ignore them.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from gingham.calc.messages import Action, ParsedRule, PortRange
from gingham.errors import ValidationError
from gingham.names import (
    NAMESPACE_LABEL_PREFIX,
    SERVICE_ACCOUNT_LABEL,
    SERVICE_ACCOUNT_LABEL_PREFIX,
)
from gingham.selector import NAMESPACE_LABEL, Selector, parse
from gingham.selector.ast import (
    ALL,
    And,
    Cmp,
    Global,
    Has,
    InSet,
    Node,
    Not,
    Or,
    make_and,
    make_cmp,
    make_has,
    make_in,
    make_not,
    make_or,
)

PROTOCOLS: Final = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "udplite": 136}
_PORT_PROTOCOLS: Final = {6: "tcp", 17: "udp", 132: "sctp"}


@lru_cache(maxsize=16384)
def selector_of(node: Node) -> Selector:
    """The compiled Selector of a built tree; cached because many policies
    repeat the same scoped selectors (nodes compare by canonical text)."""
    return Selector(node)


NEVER: Final = selector_of(make_not(ALL))  # a set that stays empty


@dataclass(frozen=True, slots=True)
class IPSetSpec:
    """An IP set a rule needs. ``named_port`` is (protocol, port name) for
    ``net-port`` sets, whose members come from endpoints matching ``selector``
    that declare that named port."""

    set_id: str
    selector: Selector
    named_port: tuple[str, str] | None = None

    @property
    def kind(self) -> str:
        return "net" if self.named_port is None else "net-port"


def selector_set(selector: Selector) -> IPSetSpec:
    return IPSetSpec(selector.id, selector)


def named_port_set(selector: Selector, protocol: str, port_name: str) -> IPSetSpec:
    text = f"{selector.canonical}\0{protocol}\0{port_name}".encode()
    digest = base64.urlsafe_b64encode(hashlib.sha224(text).digest()).decode()
    return IPSetSpec("n:" + digest[:26], selector, (protocol, port_name))


def prefix_labels(node: Node, prefix: str) -> Node:
    """The same selector over ``prefix``-ed label keys (``global()`` unchanged)."""
    if isinstance(node, Has):
        return make_has(prefix + node.key)
    if isinstance(node, Cmp):
        return make_cmp(prefix + node.key, node.op, node.value)
    if isinstance(node, InSet):
        return make_in(prefix + node.key, node.values, node.negated)
    if isinstance(node, Not):
        return make_not(prefix_labels(node.child, prefix))
    if isinstance(node, And):
        return make_and(prefix_labels(c, prefix) for c in node.children)
    if isinstance(node, Or):
        return make_or(prefix_labels(c, prefix) for c in node.children)
    return node  # all(), global()


def _contains_global(node: Node) -> bool:
    if isinstance(node, Global):
        return True
    if isinstance(node, Not):
        return _contains_global(node.child)
    if isinstance(node, (And, Or)):
        return any(_contains_global(c) for c in node.children)
    return False


def namespace_selector_node(expr: str) -> Node:
    """A ``namespaceSelector`` as a condition on an endpoint's inherited labels."""
    node = prefix_labels(parse(expr).node, NAMESPACE_LABEL_PREFIX)
    if _contains_global(node):
        return node
    return make_and([node, make_has(NAMESPACE_LABEL)])


def in_namespace(namespace: str) -> Node:
    return make_cmp(NAMESPACE_LABEL, "==", namespace)


# --- field conversion -------------------------------------------------------


def protocol_number(value: Any, where: str) -> int | None:
    """A protocol given by name (any case) or number, as its number."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(f"bad protocol {value!r}", where)
    if isinstance(value, int):
        number = value
    else:
        text = str(getattr(value, "value", value)).strip()
        if text.isdigit():
            number = int(text)
        elif text.lower() in PROTOCOLS:
            return PROTOCOLS[text.lower()]
        else:
            raise ValidationError(f"unknown protocol {text!r}", where)
    if not 0 < number < 256:
        raise ValidationError(f"protocol {number} out of range 1-255", where)
    return number


def split_ports(ports: Sequence[Any] | None, where: str) -> tuple[list[PortRange], list[str]]:
    """Numeric ranges and named ports of a ``ports``/``notPorts`` list."""
    ranges: list[PortRange] = []
    names: list[str] = []
    for i, p in enumerate(ports or ()):
        rng = _port_range(p)
        if rng is not None:
            lo, hi = rng
            if not 0 <= lo <= hi <= 65535:
                raise ValidationError(f"bad port range {lo}:{hi}", f"{where}[{i}]")
            ranges.append((lo, hi))
        else:
            name = getattr(p, "name", None) if not isinstance(p, str) else p
            if not name:
                raise ValidationError(f"unreadable port {p!r}", f"{where}[{i}]")
            names.append(str(name))
    return ranges, names


def _port_range(p: Any) -> PortRange | None:
    if isinstance(p, bool):
        return None
    if isinstance(p, int):
        return (p, p)
    if isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, int) for x in p):
        return (p[0], p[1])
    if isinstance(p, str):
        text = p.strip()
        if text.isdigit():
            return (int(text), int(text))
        first, sep, last = text.partition(":")
        if sep and first.isdigit() and last.isdigit():
            return (int(first), int(last))
        return None
    lo = getattr(p, "min", getattr(p, "lo", getattr(p, "first", None)))
    hi = getattr(p, "max", getattr(p, "hi", getattr(p, "last", lo)))
    if isinstance(lo, int) and isinstance(hi, int):
        return (lo, hi)
    port = getattr(p, "port", None)
    if isinstance(port, int):
        return (port, port)
    return None


def _nets(values: Sequence[Any] | None) -> tuple[str, ...]:
    return tuple(str(ipaddress.ip_network(str(v), strict=False)) for v in values or ())


# --- one rule ---------------------------------------------------------------


@dataclass(slots=True)
class _Side:
    nets: tuple[str, ...] = ()
    not_nets: tuple[str, ...] = ()
    ports: tuple[PortRange, ...] = ()
    not_ports: tuple[PortRange, ...] = ()
    named: tuple[str, ...] = ()
    not_named: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    not_sets: tuple[str, ...] = ()


def _side(
    entity: Any,
    namespace: str | None,
    protocol: int | None,
    where: str,
    specs: list[IPSetSpec],
    action: str,
) -> _Side:
    out = _Side()
    if entity is None:
        return out
    if getattr(entity, "services", None) is not None and action != "deny":
        # Service endpoints are not ingested: a rule that would let traffic
        # through (or log or pass it) on a Service match never matches; a Deny
        # rule drops the Service condition instead and so denies more. Either
        # way nothing opens that the policy did not open.
        spec = selector_set(NEVER)
        specs.append(spec)
        out.sets = (spec.set_id,)
    out.nets = _nets(getattr(entity, "nets", None))
    out.not_nets = _nets(getattr(entity, "not_nets", None))
    ranges, names = split_ports(getattr(entity, "ports", None), f"{where}.ports")
    not_ranges, not_names = split_ports(getattr(entity, "not_ports", None), f"{where}.notPorts")
    out.ports, out.not_ports = tuple(ranges), tuple(not_ranges)

    sel_expr: str | None = getattr(entity, "selector", None) or None
    not_sel_expr: str | None = getattr(entity, "not_selector", None) or None
    ns_sel_expr: str | None = getattr(entity, "namespace_selector", None) or None
    sa = getattr(entity, "service_accounts", None)

    parts: list[Node] = []
    if sel_expr is not None or not_sel_expr is not None or ns_sel_expr is not None:
        if ns_sel_expr is not None:
            parts.append(namespace_selector_node(ns_sel_expr))
        elif namespace is not None:
            parts.append(in_namespace(namespace))
    if sel_expr is not None:
        parts.append(parse(sel_expr).node)
    if sa is not None:
        sa_names = list(getattr(sa, "names", None) or ())
        sa_sel = getattr(sa, "selector", None)
        if sa_names:
            parts.append(make_in(SERVICE_ACCOUNT_LABEL, sa_names, False))
        if sa_sel:
            parts.append(prefix_labels(parse(sa_sel).node, SERVICE_ACCOUNT_LABEL_PREFIX))
        if (sa_names or sa_sel) and ns_sel_expr is None and namespace is not None:
            parts.append(in_namespace(namespace))

    # The selector whose endpoints supply named-port members: the side's own
    # selector if it has one, otherwise every endpoint.
    member_sel = selector_of(make_and(parts)) if parts else parse("all()")
    if parts:
        spec = selector_set(member_sel)
        specs.append(spec)
        out.sets += (spec.set_id,)
    if not_sel_expr is not None:
        spec = selector_set(parse(not_sel_expr))
        specs.append(spec)
        out.not_sets = (spec.set_id,)
    if names or not_names:
        proto = _PORT_PROTOCOLS.get(protocol or 0)
        if proto is None:
            raise ValidationError("named ports need protocol TCP, UDP or SCTP", where)
        for name in names:
            spec = named_port_set(member_sel, proto, name)
            specs.append(spec)
            out.named += (spec.set_id,)
        for name in not_names:
            spec = named_port_set(member_sel, proto, name)
            specs.append(spec)
            out.not_named += (spec.set_id,)
    return out


def _icmp(value: Any) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    return getattr(value, "type", None), getattr(value, "code", None)


def parse_rule(
    rule: Any, rule_id: str, namespace: str | None, where: str
) -> tuple[ParsedRule, list[IPSetSpec]]:
    """Convert one model rule; ``namespace`` is the owning policy's (None if global)."""
    specs: list[IPSetSpec] = []
    action = str(getattr(rule.action, "value", rule.action)).lower()
    if action not in ("allow", "deny", "pass", "log"):
        raise ValidationError(f"unknown action {rule.action!r}", f"{where}.action")
    proto = protocol_number(getattr(rule, "protocol", None), f"{where}.protocol")
    not_proto = protocol_number(getattr(rule, "not_protocol", None), f"{where}.notProtocol")
    src = _side(
        getattr(rule, "source", None), namespace, proto, f"{where}.source", specs, action
    )
    dst = _side(
        getattr(rule, "destination", None), namespace, proto, f"{where}.destination", specs,
        action,
    )
    icmp_type, icmp_code = _icmp(getattr(rule, "icmp", None))
    not_icmp_type, not_icmp_code = _icmp(getattr(rule, "not_icmp", None))
    ip_version = getattr(rule, "ip_version", None)
    action_lit: Action = action  # type: ignore[assignment]
    parsed = ParsedRule(
        rule_id=rule_id,
        action=action_lit,
        ip_version=int(ip_version) if ip_version is not None else None,
        protocol=proto,
        not_protocol=not_proto,
        src_nets=src.nets,
        not_src_nets=src.not_nets,
        dst_nets=dst.nets,
        not_dst_nets=dst.not_nets,
        src_ports=src.ports,
        not_src_ports=src.not_ports,
        dst_ports=dst.ports,
        not_dst_ports=dst.not_ports,
        src_named_port_set_ids=src.named,
        not_src_named_port_set_ids=src.not_named,
        dst_named_port_set_ids=dst.named,
        not_dst_named_port_set_ids=dst.not_named,
        src_set_ids=src.sets,
        not_src_set_ids=src.not_sets,
        dst_set_ids=dst.sets,
        not_dst_set_ids=dst.not_sets,
        icmp_type=icmp_type,
        icmp_code=icmp_code,
        not_icmp_type=not_icmp_type,
        not_icmp_code=not_icmp_code,
    )
    return parsed, specs


def parse_rules(
    rules: Sequence[Any] | None, owner: str, inbound: bool, namespace: str | None
) -> tuple[tuple[ParsedRule, ...], list[IPSetSpec]]:
    """Convert one direction's rules; rule ids are ``<owner>:<i|e><index>``."""
    direction = "i" if inbound else "e"
    field = "ingress" if inbound else "egress"
    out: list[ParsedRule] = []
    specs: list[IPSetSpec] = []
    for i, rule in enumerate(rules or ()):
        parsed, rule_specs = parse_rule(rule, f"{owner}:{direction}{i}", namespace, f"{field}[{i}]")
        out.append(parsed)
        specs.extend(rule_specs)
    return tuple(out), specs
