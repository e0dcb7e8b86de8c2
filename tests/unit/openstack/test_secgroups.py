"""Security group rules as gingham rules: every Neutron form, and every refusal."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gingham.model import parse_resource
from gingham.openstack import names, secgroups
from gingham.openstack.names import Refused
from tests.unit.openstack.neutron_dicts import CLIENT, WEB, group, rule, web_group

SEL_CLIENT = f"has(sg.gingham.dev/{CLIENT})"


@pytest.mark.parametrize("fields,expected", [
    ({}, {"action": "Allow", "ipVersion": 4}),
    ({"protocol": "any"}, {"action": "Allow", "ipVersion": 4}),
    ({"protocol": "tcp", "port_range_min": 80, "port_range_max": 80},
     {"action": "Allow", "ipVersion": 4, "protocol": "TCP", "destination": {"ports": [80]}}),
    ({"protocol": "6", "port_range_min": 1000, "port_range_max": 2000},
     {"action": "Allow", "ipVersion": 4, "protocol": "TCP",
      "destination": {"ports": ["1000:2000"]}}),
    ({"protocol": "udp", "port_range_min": 53},  # a minimum alone: that one port
     {"action": "Allow", "ipVersion": 4, "protocol": "UDP", "destination": {"ports": [53]}}),
    ({"protocol": "tcp", "port_range_min": 1, "port_range_max": 65535},
     {"action": "Allow", "ipVersion": 4, "protocol": "TCP"}),
    ({"protocol": "sctp", "port_range_min": 9, "port_range_max": 9},
     {"action": "Allow", "ipVersion": 4, "protocol": "SCTP", "destination": {"ports": [9]}}),
    ({"protocol": "icmp", "port_range_min": 8, "port_range_max": 0},
     {"action": "Allow", "ipVersion": 4, "protocol": "ICMP", "icmp": {"type": 8, "code": 0}}),
    ({"protocol": "icmp", "port_range_min": 8},
     {"action": "Allow", "ipVersion": 4, "protocol": "ICMP", "icmp": {"type": 8}}),
    ({"protocol": "icmp"}, {"action": "Allow", "ipVersion": 4, "protocol": "ICMP"}),
    ({"protocol": "gre"}, {"action": "Allow", "ipVersion": 4, "protocol": 47}),
    ({"protocol": "112"}, {"action": "Allow", "ipVersion": 4, "protocol": 112}),
    ({"protocol": "udplite"}, {"action": "Allow", "ipVersion": 4, "protocol": "UDPLite"}),
    ({"protocol": "dccp"}, {"action": "Allow", "ipVersion": 4, "protocol": 33}),
    ({"remote_ip_prefix": "192.0.2.7/24"},
     {"action": "Allow", "ipVersion": 4, "source": {"nets": ["192.0.2.0/24"]}}),
    ({"remote_group_id": CLIENT.upper(), "protocol": "tcp", "port_range_min": 80,
      "port_range_max": 80},
     {"action": "Allow", "ipVersion": 4, "protocol": "TCP", "source": {"selector": SEL_CLIENT},
      "destination": {"ports": [80]}}),
])
def test_ingress_rules(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    assert secgroups.translate_rule(rule("r", **fields)) == expected


def test_egress_puts_the_remote_and_the_ports_on_the_destination() -> None:
    got = secgroups.translate_rule(rule("r", direction="egress", protocol="tcp",
                                        port_range_min=443, port_range_max=443,
                                        remote_ip_prefix="203.0.113.0/24"))
    assert got == {"action": "Allow", "ipVersion": 4, "protocol": "TCP",
                   "destination": {"nets": ["203.0.113.0/24"], "ports": [443]}}


def test_ipv6_rules() -> None:
    # Neutron reads "icmp" in an IPv6 rule as ICMPv6; "ipv6-icmp" and "icmpv6" are that too
    for proto in ("icmp", "ipv6-icmp", "icmpv6", "58"):
        got = secgroups.translate_rule(rule("r", ethertype="IPv6", protocol=proto,
                                            port_range_min=128, port_range_max=0,
                                            remote_ip_prefix="2001:db8::5/64"))
        assert got == {"action": "Allow", "ipVersion": 6, "protocol": "ICMPv6",
                       "icmp": {"type": 128, "code": 0},
                       "source": {"nets": ["2001:db8::/64"]}}


def test_ports_without_a_remote_are_kept() -> None:
    """networking-calico dropped the port range of an ingress rule without a remote
    (all ports allowed): gingham keeps it."""
    got = secgroups.translate_rule(rule("r", protocol="tcp", port_range_min=22,
                                        port_range_max=22))
    assert got["destination"] == {"ports": [22]}


@pytest.mark.parametrize("fields,reason", [
    ({"protocol": "0"}, "protocol 0"),
    ({"protocol": "ip"}, "protocol 0"),
    ({"protocol": "hopopt"}, "protocol 0"),
    ({"protocol": "bogus"}, "no protocol gingham knows"),
    ({"protocol": "300"}, "out of range"),
    ({"protocol": "dccp", "port_range_min": 5, "port_range_max": 6}, "TCP, UDP and SCTP only"),
    ({"protocol": "udplite", "port_range_min": 5}, "TCP, UDP and SCTP only"),
    ({"protocol": "gre", "port_range_min": 5}, "needs protocol TCP"),
    ({"port_range_min": 5}, "needs protocol TCP"),
    ({"protocol": "tcp", "port_range_max": 5}, "without port_range_min"),
    ({"protocol": "tcp", "port_range_min": 9, "port_range_max": 5}, "not a range"),
    ({"protocol": "icmp", "port_range_min": 255}, "types 0-254"),
    ({"protocol": "icmp", "port_range_max": 3}, "needs an ICMP type"),
    ({"protocol": "icmp", "port_range_min": 3, "port_range_max": 256}, "code 256"),
    ({"protocol": "ipv6-icmp"}, "ICMPv6 in an IPv4 rule"),
    ({"remote_address_group_id": "dddddddd-0000-4000-8000-000000000001"}, "address groups"),
    ({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": CLIENT}, "both"),
    ({"remote_ip_prefix": "2001:db8::/32"}, "not IPv4"),
    ({"remote_ip_prefix": "nonsense"}, "not a CIDR"),
    ({"remote_group_id": "NOT AN ID!"}, "security group: ID"),
    ({"direction": "sideways"}, "direction"),
    ({"ethertype": "IPX"}, "ethertype"),
    ({"protocol": "tcp", "port_range_min": "eighty"}, "not a number"),
])
def test_refused_rules_name_the_rule_and_the_reason(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(Refused) as caught:
        secgroups.check_rule(rule("r-bad", **fields))
    assert caught.value.what in ("security group rule r-bad", "security group")
    assert reason in str(caught.value)


def test_stateless_groups_are_refused_and_left_empty() -> None:
    with pytest.raises(Refused, match="stateless"):
        secgroups.check_group({"name": "x", "stateful": False})
    secgroups.check_group({"name": "x"})  # stateful by default
    doc, left_out = secgroups.profile_document(group(stateful=False, rules=[rule("r1")]))
    assert doc["spec"]["ingress"] == [] and doc["spec"]["egress"] == []
    assert [r.what for r in left_out] == ["security group rule r1"]


def test_profile_of_a_group() -> None:
    doc, left_out = secgroups.profile_document(web_group())
    assert left_out == []
    assert doc["metadata"]["name"] == names.PROFILE_PREFIX + WEB
    assert doc["metadata"]["annotations"] == {names.SECURITY_GROUP_ANNOTATION: WEB,
                                              names.SECURITY_GROUP_NAME_ANNOTATION: "web"}
    assert doc["spec"]["ingress"] == [
        {"action": "Allow", "ipVersion": 4, "protocol": "TCP",
         "source": {"selector": SEL_CLIENT}, "destination": {"ports": [80]}}]
    assert doc["spec"]["egress"] == [{"action": "Allow", "ipVersion": 4},
                                     {"action": "Allow", "ipVersion": 6}]
    assert parse_resource(doc).kind == "Profile"


def test_a_rule_left_out_is_named_in_the_profile_and_the_rest_kept() -> None:
    g = group(rules=[rule("r-ok", protocol="tcp", port_range_min=22),
                     rule("r-bad", protocol="dccp", port_range_min=1, port_range_max=2),
                     rule("r-other-group", group=CLIENT)])
    doc, left_out = secgroups.profile_document(g)
    assert [r.what for r in left_out] == ["security group rule r-bad"]
    assert doc["metadata"]["annotations"][names.LEFT_OUT_ANNOTATION].startswith("r-bad: ")
    assert len(doc["spec"]["ingress"]) == 1  # r-ok; r-other-group is CLIENT's


_rules = st.fixed_dictionaries({
    "id": st.just("r"),
    "direction": st.sampled_from(["ingress", "egress"]),
    "ethertype": st.sampled_from(["IPv4", "IPv6"]),
    "protocol": st.one_of(st.none(), st.sampled_from(sorted(secgroups.NEUTRON_PROTOCOLS)),
                          st.integers(0, 256).map(str)),
    "port_range_min": st.one_of(st.none(), st.integers(0, 70000)),
    "port_range_max": st.one_of(st.none(), st.integers(0, 70000)),
    "remote_ip_prefix": st.one_of(st.none(), st.sampled_from(
        ["0.0.0.0/0", "198.51.100.0/24", "::/0", "2001:db8::/48"])),
    "remote_group_id": st.one_of(st.none(), st.just(CLIENT)),
})


@given(_rules)
def test_every_rule_is_translated_exactly_or_refused(r: dict[str, Any]) -> None:
    """Never another error; what comes out validates, keeps the family, and carries the
    rule's ports or ICMP fields whenever the rule has a range (never widened to all)."""
    try:
        got = secgroups.translate_rule(r)
    except Refused:
        return
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "Profile",
           "metadata": {"name": "p"}, "spec": {"ingress": [got]}}
    parse_resource(doc)
    assert got["ipVersion"] == (4 if r["ethertype"] == "IPv4" else 6)
    ranged = r["port_range_min"] is not None and (r["port_range_min"], r["port_range_max"]) \
        not in ((1, 65535), (0, 65535))
    if ranged:
        assert "icmp" in got or got.get("destination", {}).get("ports")
    remote = r["remote_ip_prefix"] or r["remote_group_id"]
    side = got.get("source" if r["direction"] == "ingress" else "destination", {})
    assert bool(remote) == bool(side.get("nets") or side.get("selector"))


def test_group_ids_in_names_and_labels() -> None:
    assert names.sg_label(WEB) == f"sg.gingham.dev/{WEB}"
    assert names.profile_name(WEB.upper()) == f"openstack-sg-{WEB}"
