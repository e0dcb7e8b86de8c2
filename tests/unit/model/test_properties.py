"""Property tests: generated rules round-trip; arbitrary input never escapes as a crash."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gingham.model import ManifestError, dump_yaml, load_manifests, parse_resource, to_dict

SELECTORS = ["all()", "app == 'web'", "has(role) && role != \"db\"", "a in {'x', 'y'}",
             "!has(quarantine)", "tier starts with 'f' || global()"]
PORT_PROTOCOLS = ["TCP", "UDP", "SCTP", "tcp", 6, 17, 132]
ICMP_PROTOCOLS = [("ICMP", 4), ("ICMPv6", 6), ("icmp", 4), (1, 4), (58, 6)]
OTHER_PROTOCOLS = ["UDPLite", 47, 50]


@st.composite
def nets(draw: st.DrawFn, version: int | None) -> list[str]:
    v = version or draw(st.sampled_from([4, 6]))
    bits = 32 if v == 4 else 128
    base = 0xC6120000 if v == 4 else 0x20010DB8 << 96  # inside 198.18.0.0/15 or 2001:db8::/32
    span = 17 if v == 4 else 96
    out = []
    for _ in range(draw(st.integers(0, 3))):
        prefix = draw(st.integers(bits - span + 1, bits))
        addr = base + draw(st.integers(0, 2**span - 1))
        net = ipaddress.ip_network((addr, prefix), strict=False) if v == 4 else \
            ipaddress.IPv6Network((addr, prefix), strict=False)
        out.append(str(net) if draw(st.booleans()) else f"{ipaddress.ip_address(addr)}/{prefix}")
    return out


ports = st.one_of(
    st.integers(0, 65535),
    st.integers(0, 65535).map(str),
    st.tuples(st.integers(0, 65535), st.integers(0, 65535)).map(
        lambda t: f"{min(t)}:{max(t)}"),
    st.sampled_from(["http", "metrics", "dns-tcp", "web_8080"]),
)


@st.composite
def entity(draw: st.DrawFn, version: int | None, with_ports: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["nets"] = draw(nets(version))
    if draw(st.booleans()):
        out["notNets"] = draw(nets(version))
    for key in ("selector", "notSelector", "namespaceSelector"):
        if draw(st.integers(0, 3)) == 0:
            out[key] = draw(st.sampled_from(SELECTORS))
    if with_ports:
        for key in ("ports", "notPorts"):
            if draw(st.booleans()):
                out[key] = draw(st.lists(ports, max_size=4))
    if draw(st.integers(0, 4)) == 0:
        out["serviceAccounts"] = {"names": draw(st.lists(st.sampled_from(["a", "b"]))),
                                  "selector": draw(st.sampled_from(SELECTORS))}
    return out


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {"action": draw(st.sampled_from(["Allow", "Deny", "Log", "Pass"]))}
    version: int | None = draw(st.sampled_from([None, 4, 6]))
    kind = draw(st.sampled_from(["none", "ports", "icmp", "other"]))
    if kind == "ports":
        rule["protocol"] = draw(st.sampled_from(PORT_PROTOCOLS))
    elif kind == "icmp":
        protocol, icmp_version = draw(st.sampled_from(ICMP_PROTOCOLS))
        rule["protocol"] = protocol
        version = icmp_version if version is not None else None
        for key in ("icmp", "notICMP"):
            if draw(st.booleans()):
                icmp: dict[str, int] = {"type": draw(st.integers(0, 254))}
                if draw(st.booleans()):
                    icmp["code"] = draw(st.integers(0, 255))
                rule[key] = icmp
    elif kind == "other":
        rule["protocol"] = draw(st.sampled_from(OTHER_PROTOCOLS))
    if draw(st.booleans()):
        rule["notProtocol"] = draw(st.sampled_from(PORT_PROTOCOLS + OTHER_PROTOCOLS))
    if version is not None:
        rule["ipVersion"] = version
    for side in ("source", "destination"):
        if draw(st.booleans()):
            rule[side] = draw(entity(version, kind == "ports"))
    if draw(st.integers(0, 5)) == 0:
        rule["metadata"] = {"annotations": {"why": draw(st.text(max_size=10))}}
    return rule


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["order"] = draw(st.one_of(st.integers(0, 10**6),
                                       st.floats(0, 1e6, allow_nan=False)))
    if draw(st.booleans()):
        spec["selector"] = draw(st.sampled_from(SELECTORS))
    for direction in ("ingress", "egress"):
        if draw(st.booleans()):
            spec[direction] = draw(st.lists(rules(), max_size=4))
    if draw(st.booleans()):
        spec["types"] = draw(st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    namespaced = draw(st.booleans())
    meta: dict[str, Any] = {"name": "p"}
    if namespaced:
        meta["namespace"] = "shop"
    return {"apiVersion": "projectcalico.org/v3",
            "kind": "NetworkPolicy" if namespaced else "GlobalNetworkPolicy",
            "metadata": meta, "spec": spec}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies())
def test_generated_policies_round_trip(document: dict[str, Any]) -> None:
    policy = parse_resource(document)
    again = parse_resource(to_dict(policy))
    assert again == policy
    assert to_dict(again) == to_dict(policy)
    assert load_manifests(dump_yaml([policy])) == [policy]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    # Keys cannot spell a pydantic type tag, so such a tag in a path can only be a leak.
    | st.dictionaries(st.text(alphabet="abcxyz_-", max_size=6), children, max_size=3),
    max_leaves=10,
)
FIELDS = ["action", "protocol", "notProtocol", "icmp", "notICMP", "ipVersion", "source",
          "destination", "metadata", "bogus"]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4))
def test_arbitrary_rules_are_accepted_or_rejected_cleanly(rule: dict[str, Any]) -> None:
    document = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                "metadata": {"name": "p"}, "spec": {"ingress": [rule]}}
    try:
        policy = parse_resource(document)
    except ManifestError as exc:
        assert exc.problems
        assert all(p.path.startswith("spec.ingress[0]") for p in exc.problems), exc.problems
    else:
        assert parse_resource(to_dict(policy)) == policy


def _corpus_documents() -> list[dict[str, Any]]:
    from pathlib import Path

    from gingham.model.yamlio import load_yaml_documents

    corpus = Path(__file__).resolve().parents[2] / "corpus"
    docs: list[dict[str, Any]] = []
    for path in sorted(corpus.rglob("*.yaml")):
        for doc in load_yaml_documents(path.read_text()):
            docs.extend(doc["items"] if doc.get("kind") == "List" else [doc])
    return docs


CORPUS_DOCS = _corpus_documents()
_INTERNAL_TAGS = ("function-", "tagged-union", "json-or-python", "union[")
_INTERNAL_SEGMENTS = {"int", "str", "float", "bool", "list", "dict", "tuple", "none"}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _paths(child, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in doc.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(doc)]


@settings(max_examples=200, deadline=None)
@given(st.data(), json_values)
def test_corrupted_corpus_documents_fail_cleanly(data: st.DataObject, junk: Any) -> None:
    """Any value anywhere in a real manifest: accepted, or rejected with a plain field path."""
    document = data.draw(st.sampled_from(CORPUS_DOCS))
    path = data.draw(st.sampled_from(_paths(document)[1:]))
    corrupted = _replace(document, path, junk)
    try:
        resource = parse_resource(corrupted)
    except ManifestError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert not any(tag in problem.path for tag in _INTERNAL_TAGS), problem
            assert not _INTERNAL_SEGMENTS & set(problem.path.split(".")), problem
            assert problem.message
    else:
        assert parse_resource(to_dict(resource)) == resource
