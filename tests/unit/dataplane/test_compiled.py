"""Compiled tiers (gingham.dataplane.compiled): the lookup never leaves out a rule that
could match, never reorders rules, and the managers keep the kernel objects in step.

What the kernel does with them is decided by packets: every test of
tests/integration/dataplane/test_policy_kernel.py runs a second time with every
tier compiled."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.calc.messages import (
    InSync,
    ParsedRule,
    PolicyID,
    PolicyRemove,
    PolicyUpdate,
    WorkloadEndpointRemove,
)
from gingham.dataplane import layout
from gingham.dataplane.apply import Applier
from gingham.dataplane.compiled import CompiledTier, Piece, compile_tier
from gingham.dataplane.managers import PolicyDataplane
from gingham.dataplane.nft_fake import FakeNFT
from gingham.dataplane.policy import render_rule
from tests.unit.dataplane.test_managers import profile, wl

PROTOS = (6, 17, 1, None)


@st.composite
def rules(draw: st.DrawFn) -> list[ParsedRule]:
    out = []
    for i in range(draw(st.integers(0, 12))):
        proto = draw(st.sampled_from(PROTOS))
        ports: tuple[tuple[int, int], ...] = ()
        if proto in (6, 17) and draw(st.booleans()):
            los = draw(st.lists(st.integers(0, 70), min_size=1, max_size=3))
            ports = tuple((lo, min(65535, lo + draw(st.sampled_from((0, 0, 5, 65535))))) for lo in los)
        action = draw(st.sampled_from(("allow", "deny", "pass", "log")))
        out.append(ParsedRule(f"policy:p:i{i}", action, protocol=proto, dst_ports=ports))
    return out


def _pieces(rs: list[ParsedRule]) -> list[Piece]:
    return [(r, tuple(render_rule(r)[0])) for r in rs]


def _path(tier: CompiledTier, proto: int, port: int) -> list[str]:
    """The rule comments a packet meets in the compiled tier, in order."""
    chains = {c.name: c for c in tier.chains}
    entry = chains[tier.entry].rules
    for key in tier.elements:
        name, span, verdict = key
        lo, _, hi = span.partition("-")
        if name == layout.proto_name(proto) and int(lo) <= port <= int(hi or lo):
            return [str(r.comment) for r in chains[verdict.split()[1]].rules]
    return [str(r.comment) for r in entry if r.comment]


def _could_match(rule: ParsedRule, proto: int, port: int) -> bool:
    if rule.protocol is not None and rule.protocol != proto:
        return False
    return not rule.dst_ports or any(lo <= port <= hi for lo, hi in rule.dst_ports)


@settings(max_examples=300, deadline=None)
@given(rules(), st.sampled_from((6, 17, 1)), st.integers(0, 80))
def test_a_packet_meets_every_rule_that_could_match_it_in_order(
    rs: list[ParsedRule], proto: int, port: int
) -> None:
    tier = compile_tier(_pieces(rs), "i", "t")
    path = _path(tier, proto, port)
    order = [r.rule_id for r in rs]
    assert path == sorted(path, key=order.index)  # never reordered
    assert {r.rule_id for r in rs if _could_match(r, proto, port)} <= set(path)


@st.composite
def edits(draw: st.DrawFn) -> tuple[list[ParsedRule], list[ParsedRule]]:
    """A tier's rules, and the same with a few rules replaced (as policy edits do)."""
    before = draw(rules())
    after = list(before)
    for _ in range(draw(st.integers(0, 3)) if before else 0):
        i = draw(st.integers(0, len(before) - 1))
        new = draw(rules())
        if new:
            after[i] = ParsedRule(before[i].rule_id, new[0].action, protocol=new[0].protocol,
                                  dst_ports=new[0].dst_ports)
    return before, after


def _same(a: CompiledTier, b: CompiledTier) -> None:
    assert (a.entry, a.map, a.elements) == (b.entry, b.map, b.elements)
    assert {c.name: c for c in a.chains} == {c.name: c for c in b.chains}


@settings(max_examples=400, deadline=None)
@given(edits())
def test_compiling_from_the_last_compile_gives_what_compiling_whole_does(
    case: tuple[list[ParsedRule], list[ParsedRule]],
) -> None:
    before, after = case
    previous = compile_tier(_pieces(before), "i", "t")
    again = compile_tier(_pieces(after), "i", "t", previous=previous)
    _same(again, compile_tier(_pieces(after), "i", "t"))


def test_thousands_of_single_port_policies_make_one_segment_each() -> None:
    rs = [ParsedRule(f"policy:p{i}:i0", "allow", protocol=6, src_nets=("203.0.113.1/32",),
                     dst_ports=((1000 + i, 1000 + i),)) for i in range(5000)]
    rs.append(ParsedRule("policy:last:i0", "allow", protocol=6, dst_ports=((80, 80),)))
    tier = compile_tier(_pieces(rs), "i", "t")
    assert len(tier.elements) == 5001
    assert _path(tier, 6, 80) == ["policy:last:i0"]
    assert _path(tier, 6, 1234) == ["policy:p234:i0"]
    assert _path(tier, 17, 80) == []


def _policies(n: int, port: int = 80) -> list[PolicyUpdate]:
    return [PolicyUpdate(PolicyID("default", f"p{i}", "ns1"), (ParsedRule(
        f"policy:default/ns1/p{i}:i0", "allow", protocol=6, dst_ports=((port + i, port + i),)),), ())
        for i in range(n)]


def test_managers_program_a_compiled_tier_and_remove_all_of_it() -> None:
    fake = FakeNFT()
    ap = Applier(fake, PolicyDataplane())
    pols = _policies(20)
    ids = tuple(p.policy_id for p in pols)
    endpoint = wl("a", "198.18.0.1", ids)
    ap.dataplane.on_messages([*pols, profile(), endpoint, InSync()])
    ap.apply()
    snap = fake.snapshot()
    assert snap is not None
    (vmap,) = [n for n in snap.sets if layout.is_compiled_map(n)]
    assert len(snap.elements[vmap]) == 20
    (tw,) = [c for c in snap.chains if c.startswith("tw-")]
    assert any(r.rule.startswith("jump cti-") for r in fake.list_rules(tw))
    assert not any("pol-" in r.rule for r in fake.list_rules(tw))
    # a policy edit: the map's elements follow, the segment chains they named go
    ap.dataplane.on_message(_policies(1, port=8080)[0])
    ap.apply()
    snap = fake.snapshot()
    assert snap is not None
    (vmap2,) = [n for n in snap.sets if layout.is_compiled_map(n)]
    assert vmap2 == vmap and ("tcp", "8080") in {e.key for e in snap.elements[vmap2]}
    assert ("tcp", "80") not in {e.key for e in snap.elements[vmap2]}
    # the endpoint goes: nothing of the compiled tier is left
    ap.dataplane.on_messages([WorkloadEndpointRemove(endpoint.endpoint_id),
                              *(PolicyRemove(p) for p in ids)])
    ap.apply()
    snap = fake.snapshot()
    assert snap is not None
    assert not [n for n in snap.sets if layout.is_compiled_map(n)]
    assert not [c for c in snap.chains if c.startswith(layout.COMPILED_CHAIN_PREFIXES)]
    # and a fresh applier over the same table resyncs to nothing
    assert Applier(fake, ap.dataplane).apply().commands == 0  # type: ignore[union-attr]


def test_a_tier_below_the_threshold_jumps_to_each_policy() -> None:
    fake = FakeNFT()
    ap = Applier(fake, PolicyDataplane())
    pols = _policies(3)
    ap.dataplane.on_messages([*pols, profile(), wl("a", "198.18.0.1",
                                                   tuple(p.policy_id for p in pols)), InSync()])
    ap.apply()
    snap = fake.snapshot()
    assert snap is not None
    assert not [n for n in snap.sets if layout.is_compiled_map(n)]


def test_endpoints_sharing_a_tier_compile_it_once_per_change(monkeypatch: Any) -> None:
    import gingham.dataplane.managers.endpoints as endpoints

    calls: list[str] = []

    def counted(pieces: Any, direction: str, identity: str, **kw: Any) -> CompiledTier:
        calls.append(identity)
        return compile_tier(pieces, direction, identity, **kw)

    monkeypatch.setattr(endpoints, "compile_tier", counted)
    ap = Applier(FakeNFT(), PolicyDataplane())
    pols = _policies(20)
    ids = tuple(p.policy_id for p in pols)
    ap.dataplane.on_messages([*pols, profile(), *(wl(f"w{i}", f"198.18.0.{i}", ids)
                                                  for i in range(1, 6)), InSync()])
    assert len(calls) == 1
    ap.dataplane.on_message(_policies(1, port=8080)[0])
    assert len(calls) == 2
