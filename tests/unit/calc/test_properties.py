"""Path independence of the calculation graph (hypothesis, bounded).

A scenario is a list of input states (key -> value). Whatever path reaches a
state - forward, reversed, with every update delivered twice, or straight
from nothing (squashed: only the final value per key) - the dataplane state
accumulated from the flushed messages must be the same, every flush must keep
references intact (checked by DataplaneState), and deleting everything must
leave nothing behind in the dataplane or in the graph's indexes.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.calc import CalcGraph
from gingham.calc.inputs import ResourceKey
from tests.unit.calc.builders import (
    DataplaneState,
    hep,
    k8s_policy,
    namespace,
    namespace_profile,
    netset,
    policy,
    profile,
    tier,
    wep,
)
from tests.unit.calc.reference import expected, observed

# Every key with the values it may take; None (absent) is always possible too.
_IN = {"action": "Allow", "protocol": "TCP",
       "source": {"selector": "role == 'client'"}, "destination": {"ports": ["http", 80]}}
_NS_SEL = {"action": "Allow", "source": {"namespaceSelector": "team == 'red'"}}
_NOT = {"action": "Deny", "source": {"notSelector": "app == 'web'", "nets": ["203.0.113.0/24"]}}
_SA = {"action": "Allow", "source": {"serviceAccounts": {"names": ["sa1"]}}}
_NETSET = {"action": "Deny", "destination": {"selector": "kind == 'ext'"}}

CHOICES: list[list[tuple[ResourceKey, Any]]] = [
    [wep("a", "w1", ips=["198.18.0.1/32"], labels={"app": "web"}, profiles=["kns.a"],
         ports=[("http", "TCP", 8080)]),
     wep("a", "w1", ips=["198.18.0.1/32", "2001:db8::1/128"], labels={"app": "db"},
         profiles=["kns.a", "extra"])],
    [wep("a", "w2", ips=["198.18.0.2/32"], labels={"role": "client"}, profiles=["kns.a"],
         sa="sa1"),
     wep("a", "w2", node="host-b", ips=["198.18.0.2/32"], labels={"app": "web"},
         profiles=["kns.a"])],
    [wep("b", "w3", ips=["198.18.0.3/32"], labels={"app": "web"}, profiles=["kns.b"]),
     wep("b", "w3", ips=["198.18.0.1/32"], labels={"role": "client"}, profiles=["kns.b"],
         ports=[("http", "TCP", 80)])],
    [wep("a", "r1", node="host-b", ips=["198.18.1.1/32"], labels={"role": "client"},
         profiles=["kns.a"], ports=[("http", "TCP", 8080)]),
     wep("a", "r1", node="host-b", ips=["198.18.0.1/32"], labels={"app": "web"},
         profiles=["kns.a"], ports=[("http", "TCP", 9000)])],
    [wep("b", "r2", node="host-c", ips=["198.18.2.1/32"], labels={"role": "client"},
         profiles=["kns.b"], sa="sa1")],
    [namespace_profile("a", {"team": "red"}), namespace_profile("a", {"team": "blue"})],
    [namespace_profile("b", {"team": "red"}), namespace_profile("b", {})],
    # "extra" comes after kns.a in w1's profiles: kns.a's pcns.team must win.
    [profile("extra", labels={"role": "client", "pcns.team": "red"}),
     profile("extra", labels={"pcns.team": "blue"}, ingress=[_NETSET])],
    # No profiles listed: the namespace's labels still apply.
    [wep("a", "r3", node="host-b", ips=["198.18.3.1/32"], labels={"role": "client"})],
    [policy("web", ns="a", selector="app == 'web'", ingress=[_IN, _NS_SEL]),
     policy("web", ns="a", selector="app == 'web'", order=3, ingress=[_IN]),
     policy("web", ns="a", selector="app == 'db'", ingress=[_NOT], tier="sec")],
    [policy("glob", selector="all()", ingress=[_NS_SEL, _SA], egress=[_NETSET], order=1),
     policy("glob", selector="has(role)", types=["Egress"], egress=[_NOT]),
     policy("glob", selector="app == 'web'", namespace_selector="team == 'red'",
            ingress=[_IN])],
    [policy("sec1", tier="sec", selector="all()", egress=[_IN], types=["Egress"]),
     policy("sec1", tier="sec", selector="role == 'client'", ingress=[_SA], order=2)],
    [tier("sec", 10), tier("sec", None, "Pass")],
    [netset("ext", ["203.0.113.0/24"], labels={"kind": "ext"}),
     netset("ext", ["203.0.113.0/25", "198.18.0.1/32"], labels={"kind": "other"})],
    [netset("nsext", ["198.51.100.0/24"], ns="a", labels={"kind": "ext"})],
    [hep("eth0", labels={"role": "client"}), hep("eth0", ips=["192.0.2.11"], labels={})],
    # The Namespace and the Profile kns.a both define kns.a: the Namespace wins.
    [namespace("a", {"team": "blue"}), namespace("a", {"team": "red", "x": "y"})],
    [k8s_policy("knp", "a", {"podSelector": {"matchLabels": {"app": "web"}},
                             "ingress": [{"from": [{"podSelector": {}}],
                                          "ports": [{"port": "http"}]}]}),
     k8s_policy("knp", "a", {"podSelector": {}, "policyTypes": ["Egress"],
                             "egress": [{"to": [{"namespaceSelector": {}}]}]})],
]
KEYS = [options[0][0] for options in CHOICES]

State = dict[ResourceKey, Any]

state_strategy = st.lists(
    st.one_of(st.none(), st.integers(0, 2)), min_size=len(CHOICES), max_size=len(CHOICES)
).map(lambda picks: _state(picks))


def _state(picks: list[int | None]) -> State:
    out: State = {}
    for options, pick in zip(CHOICES, picks, strict=True):
        key = options[0][0]
        out[key] = None if pick is None else options[pick % len(options)][1]
    return out


def _transition(graph: CalcGraph, dp: DataplaneState, old: State, new: State,
                order: list[str], twice: bool) -> None:
    for key in order:
        if old.get(key) is not new.get(key):
            graph.on_update(key, new.get(key))
            if twice:
                graph.on_update(key, new.get(key))
    dp.apply(graph.flush())


def _squashed(state: State) -> tuple[Any, ...]:
    graph, dp = CalcGraph("host-a"), DataplaneState()
    _transition(graph, dp, {}, state, KEYS, False)
    return dp.snapshot()


def _replay(states: list[State], order: list[str], twice: bool) -> None:
    graph, dp = CalcGraph("host-a"), DataplaneState()
    current: State = {}
    for state in states:
        _transition(graph, dp, current, state, order, twice)
        current = state
        assert dp.snapshot() == _squashed(state)
        assert observed(dp.snapshot()) == expected(state, "host-a")
    _transition(graph, dp, current, {}, order, twice)
    assert dp.snapshot() == ({}, {}, {}, {})
    assert all(v == 0 for v in graph.stats().values()), graph.stats()


@settings(max_examples=120, deadline=None)
@given(states=st.lists(state_strategy, min_size=1, max_size=4),
       order=st.permutations(KEYS), twice=st.booleans())
def test_forward_reversed_doubled_match_squashed(
    states: list[State], order: list[str], twice: bool
) -> None:
    _replay(states, order, twice)
    _replay(list(reversed(states)), list(reversed(order)), twice)


@settings(max_examples=80, deadline=None)
@given(state=state_strategy, detour=state_strategy, order=st.permutations(KEYS))
def test_detour_returns_to_same_output(state: State, detour: State, order: list[str]) -> None:
    """C -> B -> C, flushing in between or not, ends exactly where C began."""
    graph, dp = CalcGraph("host-a"), DataplaneState()
    _transition(graph, dp, {}, state, order, False)
    before = dp.snapshot()
    # Without a flush in between the detour must be invisible.
    for key in order:
        graph.on_update(key, detour.get(key))
    for key in order:
        graph.on_update(key, state.get(key))
    out = graph.flush()
    dp.apply(out)
    assert dp.snapshot() == before
    assert out == []
