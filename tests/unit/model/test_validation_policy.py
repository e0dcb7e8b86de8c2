"""Every validation rule of policies and rules fails with the right path."""

from __future__ import annotations

from typing import Any

import pytest

from gingham.errors import ValidationError
from gingham.model import (
    GlobalNetworkPolicy,
    ManifestError,
    NetworkPolicy,
    parse_resource,
    to_dict,
)

from .helpers import doc, ok, problems


def gnp(**spec: Any) -> dict[str, Any]:
    return doc("GlobalNetworkPolicy", spec, name="allow-dns")


def rule(**fields: Any) -> dict[str, Any]:
    return gnp(ingress=[{"action": "Allow", **fields}])


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown top field", {**gnp(), "extra": 1}, "extra", "unknown field"),
    ("unknown spec field", gnp(selectr="a == 'b'"), "spec.selectr", "unknown field"),
    ("unknown rule field", rule(foo=1), "spec.ingress[0].foo", "unknown field"),
    ("missing action", gnp(ingress=[{}]), "spec.ingress[0].action", "required"),
    ("action case", gnp(ingress=[{"action": "allow"}]), "spec.ingress[0].action", "'Allow'"),
    ("order type", gnp(order="10"), "spec.order", "valid number"),
    ("order nan", gnp(order=float("nan")), "spec.order", "finite"),
    ("bool type", doc("GlobalNetworkPolicy", {"doNotTrack": "yes", "applyOnForward": True}),
     "spec.doNotTrack", "valid boolean"),
    ("selector syntax", gnp(selector="role == "), "spec.selector", "position 8"),
    ("rule selector syntax", rule(source={"selector": "a ="}), "spec.ingress[0].source.selector",
     "invalid selector"),
    ("namespaceSelector syntax", gnp(namespaceSelector="has("), "spec.namespaceSelector",
     "invalid selector"),
    ("serviceAccount selector", rule(source={"serviceAccounts": {"selector": "&&"}}),
     "spec.ingress[0].source.serviceAccounts.selector", "invalid selector"),
    ("port range", rule(protocol="TCP", destination={"ports": [80, 70000]}),
     "spec.ingress[0].destination.ports[1]", "port 70000 out of range"),
    ("port range order", rule(protocol="TCP", destination={"ports": ["2000:1000"]}),
     "spec.ingress[0].destination.ports[0]", "2000 is above 1000"),
    ("port range text", rule(protocol="TCP", destination={"ports": ["a:b"]}),
     "spec.ingress[0].destination.ports[0]", "invalid port range"),
    ("port bool", rule(protocol="TCP", destination={"ports": [True]}),
     "spec.ingress[0].destination.ports[0]", "invalid port"),
    ("port name", rule(protocol="TCP", destination={"ports": ["-web-"]}),
     "spec.ingress[0].destination.ports[0]", "invalid port"),
    ("ports need protocol", rule(destination={"ports": [80]}),
     "spec.ingress[0].destination.ports", "TCP, UDP or SCTP"),
    ("notPorts need protocol", rule(protocol="ICMP", source={"notPorts": [80]}),
     "spec.ingress[0].source.notPorts", "TCP, UDP or SCTP"),
    ("protocol zero", rule(protocol=0), "spec.ingress[0].protocol", "1-255"),
    ("protocol 256", rule(notProtocol=256), "spec.ingress[0].notProtocol", "1-255"),
    ("protocol name", rule(protocol="GRE"), "spec.ingress[0].protocol", "invalid protocol"),
    ("icmp type", rule(protocol="ICMP", icmp={"type": 255}), "spec.ingress[0].icmp.type",
     "0-254"),
    ("icmp code", rule(protocol="ICMP", icmp={"type": 3, "code": 256}),
     "spec.ingress[0].icmp.code", "0-255"),
    ("icmp code without type", rule(protocol="ICMP", notICMP={"code": 1}),
     "spec.ingress[0].notICMP.code", "needs an ICMP type"),
    ("icmp needs icmp protocol", rule(protocol="TCP", icmp={"type": 8}),
     "spec.ingress[0].icmp", "protocol ICMP or ICMPv6"),
    ("icmp protocol version", rule(protocol="ICMPv6", ipVersion=4),
     "spec.ingress[0].protocol", "ipVersion 4"),
    ("ipVersion value", rule(ipVersion=5), "spec.ingress[0].ipVersion", "4 or 6"),
    ("ipVersion string", rule(ipVersion="4"), "spec.ingress[0].ipVersion", "4 or 6"),
    ("nets vs ipVersion", rule(ipVersion=6, source={"nets": ["2001:db8::/32", "192.0.2.0/24"]}),
     "spec.ingress[0].source.nets[1]", "not an IPv6 network"),
    ("bad cidr", rule(destination={"notNets": ["192.0.2.0/33"]}),
     "spec.ingress[0].destination.notNets[0]", "invalid CIDR"),
    ("cidr type", rule(destination={"nets": [17]}), "spec.ingress[0].destination.nets[0]",
     "must be a string"),
    ("services alone", rule(destination={"services": {"name": "a"}, "nets": ["192.0.2.0/24"]}),
     "spec.ingress[0].destination.services", "cannot be combined"),
    ("types value", gnp(types=["Inbound"]), "spec.types[0]", "'Ingress' or 'Egress'"),
    ("types duplicate", gnp(types=["Ingress", "Egress", "Ingress"]), "spec.types[2]",
     "more than once"),
    ("doNotTrack needs applyOnForward", gnp(doNotTrack=True), "spec.applyOnForward",
     "must be true"),
    ("preDNAT needs applyOnForward", gnp(preDNAT=True), "spec.applyOnForward", "must be true"),
    ("preDNAT and doNotTrack", gnp(preDNAT=True, doNotTrack=True, applyOnForward=True),
     "spec.preDNAT", "cannot both"),
    ("preDNAT egress rules", gnp(preDNAT=True, applyOnForward=True,
                                 egress=[{"action": "Allow"}]), "spec.egress", "egress rules"),
    ("preDNAT egress type", gnp(preDNAT=True, applyOnForward=True, types=["Egress"]),
     "spec.types", "type Egress"),
    ("rule limit", gnp(ingress=[{"action": "Allow"}] * 1025), "spec.ingress",
     "at most 1024"),
    ("name", doc("GlobalNetworkPolicy", {}, name="Bad_Name"), "metadata.name", "invalid name"),
    ("namespace on global", doc("GlobalNetworkPolicy", {}, namespace="a"),
     "metadata.namespace", "cluster-scoped"),
    ("label key", {**gnp(), "metadata": {"name": "a", "labels": {"bad key": "v"}}},
     "metadata.labels['bad key']", "invalid label key"),
    ("label value", {**gnp(), "metadata": {"name": "a", "labels": {"k": "-v"}}},
     "metadata.labels['k']", "invalid label value"),
    ("label value type", {**gnp(), "metadata": {"name": "a", "labels": {"k": 1}}},
     "metadata.labels.k", "valid string"),
    ("tier name", gnp(tier="Sec"), "spec.tier", "invalid name"),
    ("np has no doNotTrack", doc("NetworkPolicy", {"doNotTrack": True}, namespace="a"),
     "spec.doNotTrack", "unknown field"),
    ("np has no namespaceSelector", doc("NetworkPolicy", {"namespaceSelector": "all()"},
                                        namespace="a"), "spec.namespaceSelector",
     "unknown field"),
    ("tier action", doc("Tier", {"defaultAction": "Allow"}), "spec.defaultAction",
     "'Deny' or 'Pass'"),
    ("profile rule", doc("Profile", {"egress": [{"action": "Drop"}]}), "spec.egress[0].action",
     "'Allow'"),
]


@pytest.mark.parametrize(("document", "path", "fragment"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rejected_with_path(document: dict[str, Any], path: str, fragment: str) -> None:
    found = problems(document)
    assert path in found, found
    assert fragment in found[path]


def test_every_problem_of_a_document_is_listed() -> None:
    bad = gnp(order="1", selector="a ==", ingress=[
        {"action": "Allow", "protocol": "TCP", "destination": {"ports": [70000, "x:y"]}},
        {"action": "Nope", "foo": 1},
    ])
    found = problems(bad)
    assert set(found) >= {
        "spec.order", "spec.selector", "spec.ingress[0].destination.ports[0]",
        "spec.ingress[0].destination.ports[1]", "spec.ingress[1].action", "spec.ingress[1].foo",
    }


def test_error_names_document_and_is_a_validation_error() -> None:
    bad = rule(protocol="TCP", destination={"ports": [80, 70000]})
    with pytest.raises(ValidationError) as info:
        parse_resource(bad, index=1)
    assert isinstance(info.value, ManifestError)
    assert info.value.location == "doc 2 (GlobalNetworkPolicy allow-dns)"
    assert str(info.value) == ("doc 2 (GlobalNetworkPolicy allow-dns): "
                               "spec.ingress[0].destination.ports[1]: "
                               "port 70000 out of range 0-65535")


def test_types_default_as_calico_does() -> None:
    def types(**spec: Any) -> tuple[str, ...]:
        policy = ok(gnp(**spec))
        assert isinstance(policy, GlobalNetworkPolicy)
        return policy.spec.types

    allow = [{"action": "Allow"}]
    assert types() == ("Ingress",)
    assert types(ingress=allow) == ("Ingress",)
    assert types(egress=allow) == ("Egress",)
    assert types(ingress=allow, egress=allow) == ("Ingress", "Egress")
    assert types(types=["Egress"], ingress=allow) == ("Egress",)
    assert types(preDNAT=True, applyOnForward=True, ingress=allow) == ("Ingress",)


def test_defaults_and_normalisation() -> None:
    policy = ok(rule(protocol="tcp", notProtocol="icmpv6", source={
        "nets": ["192.0.2.77/24", "2001:DB8::1"], "selector": ""},
        destination={"ports": ["80", "90:90", " 100:200 "]}))
    assert isinstance(policy, GlobalNetworkPolicy)
    spec = policy.spec
    assert spec.tier == "default" and spec.order is None and spec.selector == "all()"
    assert not spec.do_not_track and not spec.pre_dnat and not spec.apply_on_forward
    r = spec.ingress[0]
    assert r.protocol == "TCP" and r.not_protocol == "ICMPv6"
    assert r.source.nets == ("192.0.2.0/24", "2001:db8::1/128")
    assert r.source.selector is None
    assert r.destination.ports == (80, 90, "100:200")


def test_policy_names_with_and_without_tier_prefix() -> None:
    prefixed = ok(doc("GlobalNetworkPolicy", {"tier": "security"}, name="security.block"))
    plain = ok(doc("GlobalNetworkPolicy", {"tier": "security"}, name="block"))
    default = ok(doc("NetworkPolicy", {}, name="web", namespace="shop"))
    assert isinstance(prefixed, GlobalNetworkPolicy) and isinstance(plain, GlobalNetworkPolicy)
    assert isinstance(default, NetworkPolicy)
    assert prefixed.tier == plain.tier == "security"
    assert prefixed.bare_name == plain.bare_name == "block"
    assert prefixed.qualified_name == plain.qualified_name == "security.block"
    assert default.tier == "default" and default.qualified_name == "default.web"


def test_order_1024_rules_is_the_limit() -> None:
    ok(gnp(ingress=[{"action": "Allow"}] * 1024, egress=[{"action": "Deny"}] * 1024))


def test_models_are_frozen() -> None:
    policy = ok(gnp())
    with pytest.raises(Exception):  # noqa: B017 - pydantic's own frozen error
        policy.kind = "Tier"  # type: ignore[misc]


def test_policies_sort_by_order_absent_last_then_name() -> None:
    from gingham.model import order_key

    names = [("b", 10), ("a", 10), ("z", None), ("c", 1.5), ("y", None), ("d", 100)]
    policies = [ok(doc("GlobalNetworkPolicy", {} if o is None else {"order": o}, name=n))
                for n, o in names]
    ordered = sorted(policies, key=lambda p: p.sort_key)  # type: ignore[attr-defined]
    assert [p.name for p in ordered] == ["c", "a", "b", "d", "y", "z"]
    assert order_key(None, "a") > order_key(1e300, "z")


def test_kubectl_metadata_is_accepted() -> None:
    policy = ok({**gnp(), "metadata": {
        "name": "a", "uid": "1", "resourceVersion": "7", "generation": 2,
        "creationTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x"],
        "managedFields": [{"manager": "kubectl"}], "ownerReferences": [{"kind": "X"}]}})
    assert policy.metadata.resource_version == "7"
    assert parse_resource(to_dict(policy)) == policy
