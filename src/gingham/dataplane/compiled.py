"""Compiled tiers: the policies of one tier as one lookup per new flow (pure).

An endpoint chain normally jumps to each of a tier's policy chains in turn, so
a new connection to an endpoint with N policies walks N chains even when only
the last one can match it. With many policies in a tier (at least
:data:`COMPILE_MIN_POLICIES` for one direction), the tier's rules, in their
order, are instead arranged by what every packet has and a lookup can key on:
its IP protocol and destination port.

    endpoint chain:  clear pass mark; jump ct-<hash>; tier-end drop if no pass
    ct-<hash>:       meta l4proto . th dport vmap @cm-<hash>     (first)
                     the tier's rules that do not name destination ports, in order
    @cm-<hash>:      { tcp . 80 : goto cs-<a>, tcp . 1000-1999 : goto cs-<b>, … }
    cs-<a>:          the tier's rules that can match tcp port 80, in order

Invariant (why verdicts do not change): a segment chain holds, in the tier's
order, every rule that can match a packet of its protocol and port range:
rules with those ports, rules of that protocol without ports, rules of no
protocol. Every rule keeps its whole match, so leaving out a rule that cannot
match changes nothing; first match in order decides, as before. A packet whose
protocol and port no segment covers goes on in ``ct-`` with every rule except
those naming destination ports (none of which can match it). ``goto`` makes a
segment chain that decides nothing return to the endpoint chain, past the
rest of ``ct-``; Pass sets the mark and returns there too, as from a policy
chain. A policy not programmed (or that cannot be rendered) is a drop in every
segment, at its place in the order: fail closed, as uncompiled.

Rules keep their comments, so per-rule counters are the sum over the copies
(each packet crosses one copy). Everything is named by content: endpoints
with the same tier share the chains and the map (named by the tier's policies),
and a policy edit changes the map's elements that changed and adds the segment
chains they name.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gingham.calc.messages import ParsedRule
from gingham.dataplane import layout, nft
from gingham.dataplane.layout import ChainSpec, RuleSpec
from gingham.dataplane.policy import PORT_PROTOCOLS

COMPILE_MIN_POLICIES = 16
"""A tier with at least this many policies for one direction of an endpoint is compiled."""

Piece = tuple[ParsedRule | None, tuple[RuleSpec, ...]]
"""One rule of the tier, as parsed (None: a fail-closed drop) and as rendered."""

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompiledTier:
    """What one compiled tier needs in the table; :attr:`entry` is the chain to jump to."""

    entry: str
    chains: tuple[ChainSpec, ...]
    map: nft.Map | None
    elements: frozenset[Key]
    # what the next compile of the same tier starts from (see compile_tier's ``previous``)
    pieces: tuple[Piece, ...] = ()
    segments: Mapping[int, tuple[Segment, ...]] = field(default_factory=dict)
    wide: Mapping[int, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Segment:
    """Ports ``lo``..``hi`` of one protocol: the pieces that can match them, and their chain."""

    lo: int
    hi: int
    members: tuple[int, ...]
    chain: ChainSpec


def _ports_of(rule: ParsedRule | None) -> tuple[int, tuple[tuple[int, int], ...]] | None:
    """(protocol, destination port ranges) when the rule matches only those ports."""
    if rule is None or rule.protocol not in PORT_PROTOCOLS:
        return None
    if not rule.dst_ports or rule.dst_named_port_set_ids:
        return None  # named ports are per address: decided inside the rule
    return rule.protocol, rule.dst_ports


def _can_match(rule: ParsedRule | None, proto: int) -> bool:
    """Whether a rule without destination ports can match a packet of ``proto``."""
    return rule is None or rule.protocol is None or rule.protocol == proto




Ports = tuple[int, tuple[tuple[int, int], ...]] | None
Span = tuple[int, int, tuple[int, ...]]


def _wide(pieces: Sequence[Piece], ported: Sequence[Ports], proto: int) -> tuple[int, ...]:
    """The pieces without destination ports that can match ``proto``."""
    return tuple(i for i, p in enumerate(ported) if p is None and _can_match(pieces[i][0], proto))


def _segments(ported: Sequence[Ports], wide: tuple[int, ...], proto: int,
              window: tuple[int, int] = (0, 65535)) -> list[Span]:
    """(first port, last port, indexes of the pieces that can match) for ``proto`` within
    ``window``, adjacent ranges with the same pieces merged; ranges no ported rule covers
    left out. ``ported[i]`` is :func:`_ports_of` of piece ``i``.

    A sweep over the range ends: thousands of single-port policies cost a sort."""
    wlo, whi = window
    starts: dict[int, list[int]] = defaultdict(list)
    ends: dict[int, list[int]] = defaultdict(list)  # first port past the range
    for i, ports in enumerate(ported):
        if ports is not None and ports[0] == proto:
            for lo, hi in ports[1]:
                if lo <= whi and hi >= wlo:
                    starts[max(lo, wlo)].append(i)
                    ends[min(hi, whi) + 1].append(i)
    active: dict[int, int] = {}  # piece -> how many of its ranges hold the port
    out: list[Span] = []
    edges = sorted(starts.keys() | ends.keys())
    for lo, nxt in itertools.pairwise(edges):
        for i in ends.get(lo, ()):
            active[i] -= 1
            if not active[i]:
                del active[i]
        for i in starts.get(lo, ()):
            active[i] = active.get(i, 0) + 1
        if not active:
            continue
        members = tuple(sorted([*active, *wide]))
        if out and out[-1][2] == members and out[-1][1] + 1 == lo:
            out[-1] = (out[-1][0], nxt - 1, members)
        else:
            out.append((lo, nxt - 1, members))
    return out


def _specs(pieces: Sequence[Piece], indexes: Iterable[int]) -> tuple[RuleSpec, ...]:
    return tuple(spec for i in indexes for spec in pieces[i][1])


@functools.lru_cache(maxsize=1 << 16)
def _segment_chain(direction: str, body: tuple[RuleSpec, ...]) -> ChainSpec:
    # an edit of one policy among thousands changes one or two segments: keep the rest
    name = layout.shared_chain_name(f"cs{direction}", body)
    return layout.make_chain(name, body, layout.RANK_POLICY, "compiled tier segment")


def compile_tier(pieces: Sequence[Piece], direction: str, identity: str,
                 previous: CompiledTier | None = None) -> CompiledTier:
    """The chains and the map for one tier's rules (``direction`` names them: ``i``/``o``).

    The map is named by ``identity`` (the tier's policies, in order), not by content: an
    edit of one policy changes a few of its elements, not the map and every chain that
    looks it up. ``previous``: this tier's last compile; when only rules with destination
    ports changed, only the port ranges they held or hold are swept again (the result is
    the same as a whole compile: tests/unit/dataplane/test_compiled.py)."""
    pieces = tuple(pieces)
    ported = [_ports_of(rule) for rule, _ in pieces]
    protos = sorted({p[0] for p in ported if p is not None})
    edit = None if previous is None else _edit(previous, pieces, ported, protos)
    segments: dict[int, tuple[Segment, ...]] = {}
    wide: dict[int, tuple[int, ...]] = {}
    for proto in protos:
        if edit is not None and previous is not None:
            changed, touched = edit
            wide[proto] = previous.wide[proto]
            spans = _splice(previous.segments[proto], wide[proto], ported, proto,
                            touched.get(proto, []))
            old = {(g.lo, g.hi, g.members): g for g in previous.segments[proto]}
        else:
            wide[proto] = _wide(pieces, ported, proto)
            spans, old, changed = _segments(ported, wide[proto], proto), {}, frozenset()
        segments[proto] = tuple(
            g if (g := old.get(span)) is not None and changed.isdisjoint(span[2])
            else Segment(*span, _segment_chain(direction, _specs(pieces, span[2])))
            for span in spans)
    chains: dict[str, ChainSpec] = {}
    elements: set[Key] = set()
    for proto, segs in segments.items():
        name = layout.proto_name(proto)
        for g in segs:
            chains[g.chain.name] = g.chain
            span = str(g.lo) if g.lo == g.hi else f"{g.lo}-{g.hi}"
            elements.add((name, span, f"goto {g.chain.name}"))
    vmap: nft.Map | None = None
    if edit is not None and previous is not None:
        entry, vmap = previous.entry, previous.map
        chains[entry] = next(c for c in previous.chains if c.name == entry)
    else:
        rest = _specs(pieces, (i for i, p in enumerate(ported) if p is None))
        head: tuple[RuleSpec, ...] = ()
        if elements:
            digest = hashlib.sha1(identity.encode())
            vmap = nft.Map(f"cm{direction}-{digest.hexdigest()[:16]}",
                           type="inet_proto . inet_service : verdict", flags=("interval",))
            head = (RuleSpec(f"meta l4proto . th dport vmap @{vmap.name}"),)
        body = head + rest
        entry = layout.shared_chain_name(f"ct{direction}", body)
        chains[entry] = layout.make_chain(entry, body, layout.RANK_POLICY, "compiled tier")
    return CompiledTier(entry, tuple(chains.values()), vmap, frozenset(elements), pieces,
                        segments, wide)


def _edit(previous: CompiledTier, pieces: tuple[Piece, ...], ported: list[Ports],
          protos: list[int]) -> tuple[frozenset[int], dict[int, list[tuple[int, int]]]] | None:
    """The indexes of the changed pieces and, per protocol, the port ranges they held or
    hold, when only pieces with destination ports changed; else None: compile whole."""
    if len(previous.pieces) != len(pieces) or sorted(previous.segments) != protos:
        return None
    changed = [i for i, (a, b) in enumerate(zip(previous.pieces, pieces, strict=True))
               if a is not b and a != b]
    touched: dict[int, list[tuple[int, int]]] = {}
    for i in changed:
        before, after = _ports_of(previous.pieces[i][0]), ported[i]
        if before is None or after is None:
            return None  # a rule without ports is in every segment: compile whole
        for proto, ranges in (before, after):
            touched.setdefault(proto, []).extend(ranges)
    return frozenset(changed), touched


def _splice(old: tuple[Segment, ...], wide: tuple[int, ...], ported: list[Ports], proto: int,
            touched: list[tuple[int, int]]) -> list[Span]:
    """``old`` with the port ranges ``touched`` swept again, each on its own."""
    spans = [(g.lo, g.hi, g.members) for g in old]
    windows: list[list[int]] = []
    for lo, hi in sorted(touched):
        if windows and lo <= windows[-1][1] + 1:
            windows[-1][1] = max(windows[-1][1], hi)
        else:
            windows.append([lo, hi])
    for wlo, whi in windows:
        out = [(lo, min(hi, wlo - 1), members) for lo, hi, members in spans if lo < wlo]
        out += _segments(ported, wide, proto, (wlo, whi))
        out += [(max(lo, whi + 1), hi, members) for lo, hi, members in spans if hi > whi]
        spans = []
        for span in out:  # equal neighbours across the window's edges become one
            if spans and spans[-1][2] == span[2] and spans[-1][1] + 1 == span[0]:
                spans[-1] = (spans[-1][0], span[1], span[2])
            else:
                spans.append(span)
    return spans
