"""Rule conversion: every field of a model rule reaches ParsedRule, selectors become sets."""

from __future__ import annotations

from typing import Any

import pytest

from gingham.calc.rules import (
    namespace_selector_node,
    parse_rule,
    prefix_labels,
    protocol_number,
    split_ports,
)
from gingham.errors import ValidationError
from gingham.model import Rule
from gingham.selector import parse


def _rule(doc: dict[str, Any], namespace: str | None = None):
    return parse_rule(Rule.model_validate(doc), "policy:x:i0", namespace, "ingress[0]")


def test_every_match_field() -> None:
    rule, specs = _rule({
        "action": "Deny", "ipVersion": 4, "protocol": "UDP", "notProtocol": None,
        "source": {"nets": ["198.18.0.0/16"], "notNets": ["198.18.1.0/24"],
                   "ports": [53, "1000:2000"], "notPorts": [1500]},
        "destination": {"nets": ["203.0.113.0/24"], "notPorts": ["2000:2100"]},
    })
    assert rule.action == "deny" and rule.ip_version == 4 and rule.protocol == 17
    assert rule.src_nets == ("198.18.0.0/16",) and rule.not_src_nets == ("198.18.1.0/24",)
    assert rule.src_ports == ((53, 53), (1000, 2000)) and rule.not_src_ports == ((1500, 1500),)
    assert rule.dst_nets == ("203.0.113.0/24",) and rule.not_dst_ports == ((2000, 2100),)
    assert specs == [] and rule.set_ids == frozenset()
    assert rule.rule_id == "policy:x:i0"


def test_icmp_and_not_protocol() -> None:
    rule, _ = _rule({"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8, "code": 0},
                     "notICMP": {"type": 3}})
    assert (rule.protocol, rule.icmp_type, rule.icmp_code) == (1, 8, 0)
    assert (rule.not_icmp_type, rule.not_icmp_code) == (3, None)
    rule, _ = _rule({"action": "Log", "notProtocol": 58})
    assert rule.action == "log" and rule.not_protocol == 58 and rule.protocol is None


def test_selector_scoping_in_namespaced_policy() -> None:
    rule, specs = _rule({"action": "Allow", "source": {"selector": "app == 'a'",
                                                        "notSelector": "bad == 'x'"}}, "prod")
    (sel_spec, not_spec) = specs
    assert rule.src_set_ids == (sel_spec.set_id,) and rule.not_src_set_ids == (not_spec.set_id,)
    assert sel_spec.selector.evaluate({"app": "a", "projectcalico.org/namespace": "prod"})
    assert not sel_spec.selector.evaluate({"app": "a", "projectcalico.org/namespace": "dev"})
    # notSelector is not scoped (as in Calico).
    assert not_spec.selector.evaluate({"bad": "x", "projectcalico.org/namespace": "dev"})


def test_rule_with_only_nets_is_not_scoped() -> None:
    rule, specs = _rule({"action": "Allow", "source": {"nets": ["203.0.113.0/24"]}}, "prod")
    assert specs == [] and rule.src_set_ids == ()


def test_namespace_selector_uses_pcns_labels() -> None:
    _, (spec,) = _rule({"action": "Allow", "source": {"namespaceSelector": "team == 'red'"}},
                          "prod")
    sel = spec.selector
    assert sel.evaluate({"pcns.team": "red", "projectcalico.org/namespace": "other"})
    assert not sel.evaluate({"team": "red", "projectcalico.org/namespace": "prod"})
    assert not sel.evaluate({"pcns.team": "red"})  # not namespaced: no namespace to match
    glob = parse(namespace_selector_node("global()").text)
    assert glob.evaluate({"kind": "x"}) and not glob.evaluate({"projectcalico.org/namespace": "a"})
    assert namespace_selector_node("all()").text == "has(projectcalico.org/namespace)"


def test_prefix_labels_keeps_structure() -> None:
    node = parse("a == 'x' && (has(b) || c in {'1', '2'}) && !has(d)").node
    out = parse(prefix_labels(node, "pcns.").text)
    assert out.evaluate({"pcns.a": "x", "pcns.b": "y"})
    assert not out.evaluate({"pcns.a": "x", "pcns.b": "y", "pcns.d": "z"})
    assert not out.evaluate({"a": "x", "b": "y"})


def test_service_accounts() -> None:
    _, (spec,) = _rule({"action": "Allow",
                           "source": {"serviceAccounts": {"names": ["sa1", "sa2"]}}}, "prod")
    sel = spec.selector
    labels = {"projectcalico.org/serviceaccount": "sa2", "projectcalico.org/namespace": "prod"}
    assert sel.evaluate(labels)
    assert not sel.evaluate({**labels, "projectcalico.org/namespace": "dev"})


def test_named_ports_need_a_port_protocol_and_make_sets() -> None:
    rule, specs = _rule({"action": "Allow", "protocol": "TCP",
                         "destination": {"selector": "app == 'w'", "ports": ["http", 80],
                                         "notPorts": ["admin"]}}, "prod")
    sel_spec, http, admin = specs
    assert rule.dst_set_ids == (sel_spec.set_id,)
    assert rule.dst_named_port_set_ids == (http.set_id,)
    assert rule.not_dst_named_port_set_ids == (admin.set_id,)
    assert http.named_port == ("tcp", "http") and http.kind == "net-port"
    assert http.selector == sel_spec.selector
    assert http.set_id.startswith("n:") and sel_spec.set_id.startswith("s:")
    assert http.set_id != admin.set_id


def test_protocol_and_port_errors_name_the_field() -> None:
    assert protocol_number("sctp", "x") == 132 and protocol_number("6", "x") == 6
    with pytest.raises(ValidationError, match=r"ingress\[0\]\.protocol"):
        protocol_number("bogus", "ingress[0].protocol")
    with pytest.raises(ValidationError, match="out of range"):
        protocol_number(300, "p")
    assert split_ports([80, "90:95", "web"], "ports") == ([(80, 80), (90, 95)], ["web"])
    with pytest.raises(ValidationError, match=r"ports\[0\]"):
        split_ports(["9:1"], "ports")
