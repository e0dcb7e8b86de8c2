"""Kubernetes NetworkPolicy and Namespace conversion to Calico's forms."""

from __future__ import annotations

from typing import Any

import pytest

from gingham.model import (
    KubernetesNetworkPolicy,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    k8s_policy_to_calico,
    label_selector_to_calico,
    namespace_to_profile,
    parse_resource,
    selector_for_namespace_labels,
    to_dict,
)

from .helpers import doc

K8S = "networking.k8s.io/v1"


def convert(spec: dict[str, Any], name: str = "web", namespace: str | None = "shop"
            ) -> NetworkPolicy:
    knp = parse_resource(doc("NetworkPolicy", spec, name=name, namespace=namespace, api=K8S))
    assert isinstance(knp, KubernetesNetworkPolicy)
    return k8s_policy_to_calico(knp)


def rules(policy: NetworkPolicy, direction: str = "ingress") -> list[dict[str, Any]]:
    return list(to_dict(policy)["spec"][direction])


def test_name_tier_order_namespace() -> None:
    policy = convert({"podSelector": {}})
    assert policy.name == "knp.default.web" and policy.namespace == "shop"
    assert policy.tier == "default" and policy.spec.order == 1000
    assert policy.spec.selector == "all()"
    assert convert({}, namespace=None).namespace == "default"


@pytest.mark.parametrize(("selector", "expected"), [
    ({}, "all()"),
    ({"matchLabels": {"app": "web"}}, "app == 'web'"),
    ({"matchLabels": {"app": "web", "tier": "fe"}}, "app == 'web' && tier == 'fe'"),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]},
     "env in { 'a', 'b' }"),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]},
     "env not in { 'dev' }"),
    ({"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "Exists"}]},
     "has(app.kubernetes.io/name)"),
    ({"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]}, "!has(canary)"),
    ({"matchLabels": {"a": "b"},
      "matchExpressions": [{"key": "c", "operator": "Exists"}]}, "a == 'b' && has(c)"),
])
def test_label_selectors(selector: dict[str, Any], expected: str) -> None:
    assert label_selector_to_calico(selector) == expected
    assert convert({"podSelector": selector}).spec.selector == expected


def test_label_selectors_evaluate_like_kubernetes() -> None:
    from gingham.selector import parse

    sel = parse(label_selector_to_calico({"matchExpressions": [
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "canary", "operator": "DoesNotExist"},
    ]}))
    assert sel.evaluate({}) is True  # NotIn matches an absent label, as in Kubernetes
    assert sel.evaluate({"env": "prod"}) is True
    assert sel.evaluate({"env": "dev"}) is False
    assert sel.evaluate({"canary": "1"}) is False


def test_namespace_selector_helper_uses_pcns_labels() -> None:
    assert selector_for_namespace_labels({"matchLabels": {"team": "a"}}) == "pcns.team == 'a'"
    assert selector_for_namespace_labels(LabelSelector()) == "all()"
    assert selector_for_namespace_labels({"matchExpressions": [
        {"key": "env", "operator": "Exists"}]}) == "has(pcns.env)"


def test_policy_types_default_like_kubernetes() -> None:
    allow_all = [{}]
    assert convert({}).spec.types == ("Ingress",)
    assert convert({"ingress": allow_all}).spec.types == ("Ingress",)
    assert convert({"egress": allow_all}).spec.types == ("Ingress", "Egress")
    assert convert({"egress": []}).spec.types == ("Ingress",)
    assert convert({"policyTypes": ["Egress"]}).spec.types == ("Egress",)


def test_deny_all_and_allow_all() -> None:
    deny = convert({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    assert deny.spec.ingress == () and deny.spec.egress == ()
    assert deny.spec.types == ("Ingress", "Egress")
    allow = convert({"ingress": [{}]})
    assert rules(allow) == [{"action": "Allow"}]


def test_empty_from_and_absent_from_both_mean_everyone() -> None:
    absent = convert({"ingress": [{"ports": [{"port": 80}]}]})
    empty = convert({"ingress": [{"from": [], "ports": [{"port": 80}]}]})
    expected = [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}]
    assert rules(absent) == rules(empty) == expected


def test_rules_of_types_not_listed_are_dropped() -> None:
    policy = convert({"policyTypes": ["Egress"], "ingress": [{}], "egress": [{}]})
    assert policy.spec.ingress == () and rules(policy, "egress") == [{"action": "Allow"}]


def test_peers() -> None:
    policy = convert({"ingress": [{"from": [
        {"podSelector": {"matchLabels": {"app": "fe"}}},
        {"namespaceSelector": {"matchLabels": {"team": "mon"}}},
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "dns"}}},
        {"ipBlock": {"cidr": "203.0.113.7/24", "except": ["203.0.113.128/25"]}},
    ]}]})
    assert rules(policy) == [
        # Kubernetes peers are pods only: never a NetworkSet with matching labels.
        {"action": "Allow", "source": {"selector": f"(app == 'fe') && {PODS}"}},
        {"action": "Allow", "source": {"selector": PODS, "namespaceSelector": "team == 'mon'"}},
        {"action": "Allow", "source": {"selector": f"(k8s-app == 'dns') && {PODS}",
                                       "namespaceSelector": "all()"}},
        {"action": "Allow", "source": {"nets": ["203.0.113.0/24"],
                                       "notNets": ["203.0.113.128/25"]}},
    ]


PODS = "has(projectcalico.org/orchestrator)"


def test_egress_peer_and_ports_go_to_destination() -> None:
    policy = convert({"policyTypes": ["Egress"], "egress": [{
        "to": [{"ipBlock": {"cidr": "2001:db8::/32"}}],
        "ports": [{"protocol": "UDP", "port": 53}],
    }]})
    assert rules(policy, "egress") == [{
        "action": "Allow", "protocol": "UDP",
        "destination": {"nets": ["2001:db8::/32"], "ports": [53]},
    }]


def test_ports_missing_protocol_named_end_port() -> None:
    policy = convert({"ingress": [{"ports": [
        {"port": 80},
        {"protocol": "TCP", "port": "https"},
        {"protocol": "UDP", "port": 5000, "endPort": 5100},
        {"protocol": "UDP", "port": 6000, "endPort": 6000},
        {"protocol": "SCTP"},
    ]}]})
    assert rules(policy) == [
        {"action": "Allow", "protocol": "TCP", "destination": {"ports": [80, "https"]}},
        {"action": "Allow", "protocol": "UDP", "destination": {"ports": ["5000:5100", 6000]}},
        {"action": "Allow", "protocol": "SCTP"},
    ]


def test_protocol_without_port_opens_all_its_ports() -> None:
    policy = convert({"ingress": [{"ports": [{"port": 80}, {"protocol": "TCP"}]}]})
    assert rules(policy) == [{"action": "Allow", "protocol": "TCP"}]


def test_each_peer_times_each_protocol() -> None:
    policy = convert({"ingress": [{
        "from": [{"podSelector": {}}, {"ipBlock": {"cidr": "192.0.2.0/24"}}],
        "ports": [{"port": 80}, {"protocol": "UDP", "port": 53}],
    }]})
    assert len(policy.spec.ingress) == 4
    assert [(r.protocol, r.source.selector, r.source.nets) for r in policy.spec.ingress] == [
        ("TCP", PODS, ()), ("UDP", PODS, ()),
        ("TCP", None, ("192.0.2.0/24",)), ("UDP", None, ("192.0.2.0/24",)),
    ]


def test_converted_policy_round_trips() -> None:
    policy = convert({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        {"from": [{"podSelector": {}}], "ports": [{"port": 8080}]}]})
    assert parse_resource(to_dict(policy)) == policy


def test_namespace_to_profile() -> None:
    ns = parse_resource(doc("Namespace", name="shop", api="v1", metadata={
        "name": "shop", "labels": {"team": "retail"}}))
    assert isinstance(ns, Namespace)
    profile = namespace_to_profile(ns)
    assert profile.name == "kns.shop"
    assert profile.spec.labels_to_apply == {
        "pcns.team": "retail",
        "pcns.kubernetes.io/metadata.name": "shop",
        "pcns.projectcalico.org/name": "shop",
    }
    assert [r.action for r in profile.spec.ingress] == ["Allow"]
    assert [r.action for r in profile.spec.egress] == ["Allow"]
    assert parse_resource(to_dict(profile)) == profile
