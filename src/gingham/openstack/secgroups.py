"""Security groups as Profiles: pure translation, no Neutron import.

A security group ``G`` becomes Profile ``openstack-sg-<G>``; every port in
``G`` is a WorkloadEndpoint that lists the profile and carries the label
``sg.gingham.dev/<G>: ""``. Profiles (not policies) because a group is the
port's own baseline, exactly what a profile is to an endpoint: Neutron allows
what any rule of any of the port's groups allows and drops the rest, and a
profile that no rule of allows leaves the endpoint denied; operators' tiered
policies still come first. A missing profile denies (fail closed).

Each Neutron rule becomes one Allow rule:

================== ==================================================================
Neutron            gingham
================== ==================================================================
direction          ``ingress`` / ``egress`` list of the profile
ethertype          ``ipVersion`` 4 / 6
protocol           none or ``any``: any; ``tcp`` ``udp`` ``icmp`` ``ipv6-icmp``
                   ``sctp`` ``udplite`` or their numbers: the name; any other name or
                   number 1-255: the number. ``icmp`` with IPv6 is ICMPv6, as Neutron
                   reads it
port_range_min/max TCP, UDP, SCTP: destination ``ports`` (``80`` or ``"1000:2000"``);
                   ICMP: ``icmp.type`` / ``icmp.code``
remote_ip_prefix   ``nets`` of the remote side (source for ingress, destination for
                   egress)
remote_group_id    ``selector: has(sg.gingham.dev/<remote group>)`` on the remote side:
                   the endpoints in that group, in any project
================== ==================================================================

What gingham cannot express is never widened: protocol 0 (``ip``/``hopopt``,
ambiguous), port ranges on DCCP or UDP-Lite (gingham matches ports of TCP,
UDP and SCTP only), ICMP type 255, remote address groups, a port range with
only a maximum, and every rule of a *stateless* group (gingham's firewall is
stateful: replies would pass that a stateless group drops). Creating such a
rule or group is refused (:func:`check_rule`, :func:`check_group`); one that
exists already is left out of the profile, named in the log and in the
profile's ``openstack.gingham.dev/left-out-rules`` annotation.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pydantic import ValidationError as PydanticError

from gingham.model import parse_resource, to_dict
from gingham.model.rules import Rule
from gingham.openstack import names
from gingham.openstack.names import Refused

CALICO_API: Final = "projectcalico.org/v3"

# Neutron's protocol names (neutron_lib.constants.IP_PROTOCOL_MAP), copied so this
# module stays importable without Neutron. 0 ("ip", "hopopt") is left out on purpose.
NEUTRON_PROTOCOLS: Final[dict[str, int]] = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "icmp": 1, "igmp": 2,
    "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58,
    "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113,
    "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}
_GINGHAM_NAMES: Final[dict[int, str]] = {
    6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6", 132: "SCTP", 136: "UDPLite",
}
_PORT_PROTOCOLS: Final = frozenset({6, 17, 132})
_NEUTRON_PORT_PROTOCOLS: Final = frozenset({6, 17, 132, 33, 136})
_ICMP: Final = frozenset({1, 58})
_ETHERTYPES: Final[dict[str, int]] = {"ipv4": 4, "ipv6": 6}


def _what(rule: Mapping[str, Any]) -> str:
    return f"security group rule {rule.get('id') or '(new)'}"


def _protocol(rule: Mapping[str, Any], version: int) -> int | None:
    raw = rule.get("protocol")
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "any")):
        return None
    if isinstance(raw, bool):
        raise Refused(_what(rule), f"protocol {raw!r} is not a protocol")
    text = str(raw).strip().lower()
    if text.isdigit():
        number = int(text)
    elif text in NEUTRON_PROTOCOLS:
        number = NEUTRON_PROTOCOLS[text]
    elif text in ("ip", "hopopt"):
        number = 0
    else:
        raise Refused(_what(rule), f"protocol {raw!r} is no protocol gingham knows")
    if number == 0:
        raise Refused(_what(rule), "protocol 0 ('ip'/'hopopt') is ambiguous (any protocol "
                                   "to some firewalls, IPv6 hop-by-hop to others): leave "
                                   "the protocol unset for any protocol")
    if not 1 <= number <= 255:
        raise Refused(_what(rule), f"protocol number {number} is out of range 1-255")
    if number == 1 and version == 6:
        return 58  # Neutron reads "icmp" in an IPv6 rule as ICMPv6
    if number == 58 and version == 4:
        raise Refused(_what(rule), "ICMPv6 in an IPv4 rule matches nothing")
    return number


def _int_or_none(rule: Mapping[str, Any], field: str) -> int | None:
    value = rule.get(field)
    if value is None:
        return None
    if isinstance(value, bool):
        raise Refused(_what(rule), f"{field} {value!r} is not a number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Refused(_what(rule), f"{field} {value!r} is not a number") from None


def _icmp(rule: Mapping[str, Any]) -> dict[str, int] | None:
    icmp_type = _int_or_none(rule, "port_range_min")
    code = _int_or_none(rule, "port_range_max")
    if icmp_type is None:
        if code is not None:
            raise Refused(_what(rule), "an ICMP code needs an ICMP type (port_range_min)")
        return None
    if not 0 <= icmp_type <= 254:
        raise Refused(_what(rule), f"ICMP type {icmp_type}: gingham matches types 0-254")
    out = {"type": icmp_type}
    if code is not None:
        if not 0 <= code <= 255:
            raise Refused(_what(rule), f"ICMP code {code} is out of range 0-255")
        out["code"] = code
    return out


def _ports(rule: Mapping[str, Any], protocol: int | None) -> list[int | str]:
    lo = _int_or_none(rule, "port_range_min")
    hi = _int_or_none(rule, "port_range_max")
    if lo is None and hi is None:
        return []
    if protocol not in _PORT_PROTOCOLS:
        if protocol in _NEUTRON_PORT_PROTOCOLS:
            raise Refused(_what(rule), f"a port range with protocol {rule.get('protocol')!r}: "
                                       "gingham matches ports of TCP, UDP and SCTP only")
        raise Refused(_what(rule), f"a port range needs protocol TCP, UDP or SCTP (got "
                                   f"{rule.get('protocol')!r})")
    if lo is None:
        raise Refused(_what(rule), "port_range_max without port_range_min")
    hi = lo if hi is None else hi
    if not (0 <= lo <= 65535 and 0 <= hi <= 65535) or lo > hi:
        raise Refused(_what(rule), f"port range {lo}-{hi} is not a range of ports")
    if (lo, hi) == (1, 65535) or (lo, hi) == (0, 65535):
        return []  # every port: the same as no range
    return [lo] if lo == hi else [f"{lo}:{hi}"]


def _remote(rule: Mapping[str, Any], version: int) -> dict[str, Any]:
    if rule.get("remote_address_group_id"):
        raise Refused(_what(rule), "remote address groups are not supported by gingham")
    prefix = rule.get("remote_ip_prefix")
    group = rule.get("remote_group_id")
    if prefix and group:
        raise Refused(_what(rule), "both remote_ip_prefix and remote_group_id")
    if prefix:
        try:
            net = ipaddress.ip_network(str(prefix), strict=False)
        except ValueError:
            raise Refused(_what(rule), f"remote_ip_prefix {prefix!r} is not a CIDR") from None
        if net.version != version:
            raise Refused(_what(rule), f"remote_ip_prefix {net} is not IPv{version} "
                                       f"(ethertype IPv{version})")
        return {"nets": [str(net)]}
    if group:
        return {"selector": f"has({names.sg_label(str(group))})"}
    return {}


def translate_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """One Neutron rule as one gingham rule (camelCase, validated by the model);
    Refused if gingham cannot express it exactly."""
    direction = rule.get("direction")
    if direction not in ("ingress", "egress"):
        raise Refused(_what(rule), f"direction {direction!r} is not ingress or egress")
    ethertype = str(rule.get("ethertype") or "").lower()
    if ethertype not in _ETHERTYPES:
        raise Refused(_what(rule), f"ethertype {rule.get('ethertype')!r} is not IPv4 or IPv6")
    version = _ETHERTYPES[ethertype]
    protocol = _protocol(rule, version)
    out: dict[str, Any] = {"action": "Allow", "ipVersion": version}
    if protocol is not None:
        out["protocol"] = _GINGHAM_NAMES.get(protocol, protocol)
    ports: list[int | str] = []
    if protocol in _ICMP:
        icmp = _icmp(rule)
        if icmp is not None:
            out["icmp"] = icmp
    else:
        ports = _ports(rule, protocol)
    remote = _remote(rule, version)
    local: dict[str, Any] = {"ports": ports} if ports else {}
    if direction == "ingress":
        sides = {"source": remote, "destination": local}
    else:
        sides = {"source": {}, "destination": {**remote, **local}}
    out.update({side: entity for side, entity in sides.items() if entity})
    try:
        checked = Rule.model_validate(out)
    except PydanticError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        )
        raise Refused(_what(rule), f"gingham's model refuses it ({problems})") from None
    result: dict[str, Any] = checked.model_dump(mode="json", by_alias=True, exclude_none=True,
                                                exclude_defaults=True)
    result["action"] = "Allow"
    return result


def check_rule(rule: Mapping[str, Any]) -> None:
    """Refused if the rule about to be created cannot be expressed exactly."""
    translate_rule(rule)


def check_group(group: Mapping[str, Any]) -> None:
    """Refused if a group about to be created or changed cannot be expressed exactly."""
    if group.get("stateful") is False:
        raise Refused(f"security group {group.get('id') or group.get('name') or '(new)'}",
                      "stateless security groups are not supported: gingham's firewall "
                      "is stateful (replies of allowed connections pass)")


def _rule_order(rule: Mapping[str, Any]) -> tuple[str, str]:
    return (str(rule.get("direction")), str(rule.get("id")))


def profile_document(group: Mapping[str, Any],
                     rules: Iterable[Mapping[str, Any]] | None = None,
                     ) -> tuple[dict[str, Any], list[Refused]]:
    """The Profile for a security group (a Neutron API dict; its rules from
    ``security_group_rules`` unless given), validated, and the rules left out."""
    sg_id = names.neutron_id("security group", group.get("id"))
    all_rules = list(group.get("security_group_rules") or () if rules is None else rules)
    left_out: list[Refused] = []
    ingress: list[dict[str, Any]] = []
    egress: list[dict[str, Any]] = []
    stateless = group.get("stateful") is False
    for rule in sorted(all_rules, key=_rule_order):
        if str(rule.get("security_group_id", sg_id)).lower() != sg_id:
            continue
        try:
            if stateless:
                raise Refused(_what(rule), "its group is stateless (gingham is stateful)")
            translated = translate_rule(rule)
        except Refused as exc:
            left_out.append(exc)
            continue
        (ingress if rule.get("direction") == "ingress" else egress).append(translated)
    annotations = {names.SECURITY_GROUP_ANNOTATION: sg_id}
    if group.get("name"):
        annotations[names.SECURITY_GROUP_NAME_ANNOTATION] = str(group["name"])
    if left_out:
        annotations[names.LEFT_OUT_ANNOTATION] = "\n".join(
            f"{r.what.removeprefix('security group rule ')}: {r.reason}" for r in left_out)
    doc = {
        "apiVersion": CALICO_API,
        "kind": "Profile",
        "metadata": {"name": names.profile_name(sg_id), "annotations": annotations},
        "spec": {"ingress": ingress, "egress": egress},
    }
    return to_dict(parse_resource(doc)), left_out
