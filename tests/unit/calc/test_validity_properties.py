"""Property: invalidating stored documents never lets more traffic through (issue 12).

Random policy scenarios (the oracle's generator) are decided by the reference
evaluator twice: with every document valid, and with some documents turned
invalid the ways a newer writer, a buggy client or an attacker would (an
unknown field, a selector that does not parse, bytes that are not JSON),
either after they were seen valid or before they ever were. What the graph
enforces is the output of its validity filter, so the evaluator decides on
exactly that; the set of allowed flows must never grow.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gingham.calc.inputs import ResourceKey
from gingham.calc.validity import POLICY_KINDS, ValidityFilter
from gingham.model import InvalidResource, decode_document, kind_info, parse_resource
from gingham.policy.explain import matrix
from gingham.policy.world import World
from tests.integration.oracle.scenarios import PROBES, REFS, render, scenarios
from tests.integration.oracle.sensitivity import IPS, endpoints

Flow = tuple[str, str, str, int]


def key_of(doc: dict[str, Any]) -> ResourceKey:
    info = kind_info(doc["kind"], doc["apiVersion"])
    meta = doc["metadata"]
    return ResourceKey(info.name, meta["name"], meta.get("namespace"))


def allowed(resources: list[Any]) -> set[Flow]:
    world = World.build(resources)
    out: set[Flow] = set()
    for protocol, port in PROBES:
        for src, row in matrix(world, list(REFS), port, protocol).items():
            out.update((src, dst, protocol, port) for dst, ok in row.items() if ok)
    return out


def spoil(doc: dict[str, Any], how: int) -> InvalidResource:
    """``doc`` made invalid in one of the ways stored documents go bad."""
    if how == 0:
        return InvalidResource("not a JSON object: not JSON")
    bad = copy.deepcopy(doc)
    spec = bad.setdefault("spec", {}) if doc["kind"] != "Namespace" else bad["metadata"]
    if how == 1:
        spec["fieldFromTheFuture"] = {"x": 1}
    elif how == 2 and "selector" in spec:
        spec["selector"] = "app == ((("
    else:
        bad["metadata"]["name"] = 17
    result = decode_document(bad)
    assert isinstance(result, InvalidResource), bad
    return result


class Store:
    """What an agent's graph would hold: the filter's effective resources by key."""

    def __init__(self) -> None:
        self.filter = ValidityFilter()
        self.effective: dict[ResourceKey, Any] = {}

    def feed(self, key: ResourceKey, value: Any) -> None:
        for k, eff in self.filter.update(key, value):
            self.effective[k] = eff

    def resources(self) -> list[Any]:
        return [v for v in self.effective.values() if v is not None]


def base_documents(scenario: Any) -> list[tuple[ResourceKey, dict[str, Any]]]:
    docs = endpoints({r: dict(v) for r, v in scenario.labels.items()})
    docs += render(scenario.manifests(), IPS)
    return [(key_of(d), d) for d in docs]


@st.composite
def junk_policy(draw: st.DrawFn) -> tuple[ResourceKey, InvalidResource]:
    """A policy that never validated, with more or less of it readable."""
    ns = draw(st.sampled_from((None, "oa", "ob")))
    kind = "NetworkPolicy" if ns else "GlobalNetworkPolicy"
    spec: dict[str, Any] = draw(st.sampled_from((
        {},
        {"selector": "all()"},
        {"selector": "app == 'web'", "types": ["Egress"]},
        {"selector": ")))", "types": "sideways"},
    )))
    key = ResourceKey(kind, draw(st.sampled_from(("j1", "j2"))), ns)
    return key, InvalidResource("spec: unknown field", {"spec": spec})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), data=st.data())
def test_invalid_documents_never_widen_what_is_allowed(scenario: Any, data: Any) -> None:
    items = base_documents(scenario)
    baseline = allowed([parse_resource(doc) for _, doc in items])
    indices = range(len(items))
    spoiled = data.draw(st.sets(st.sampled_from(indices), max_size=4), label="spoiled")
    # Only policies and tiers fail closed before they were ever valid; every
    # other kind is absent until then (docs/RELIABILITY.md).
    can_be_never_valid = [
        i for i in spoiled
        if items[i][0].kind in POLICY_KINDS | {"Tier"}
    ]
    never_valid = data.draw(st.sets(st.sampled_from(can_be_never_valid)) if can_be_never_valid
                            else st.just(set()), label="never valid")
    how = {i: data.draw(st.integers(0, 3), label=f"how {i}") for i in spoiled}
    junk = data.draw(st.lists(junk_policy(), max_size=2), label="junk")

    store = Store()
    for i, (key, doc) in enumerate(items):
        store.feed(key, spoil(doc, how[i]) if i in never_valid else parse_resource(doc))
    for i in sorted(spoiled - never_valid):
        store.feed(items[i][0], spoil(items[i][1], how[i]))
    for key, value in junk:
        store.feed(key, value)

    after = allowed(store.resources())
    assert after <= baseline, sorted(after - baseline)
    if not never_valid and not junk:
        assert after == baseline  # last valid versions: nothing changed at all
