"""Render policy rules and endpoint chains as nft rule bodies (pure).

A :class:`~gingham.calc.messages.ParsedRule` becomes one or more nft rules:

- Per address family when the rule needs one: an IP-set reference or a net
  is family specific (``ip saddr @s4-…`` only matches IPv4), so a rule with
  set references and no ``ip_version`` is rendered once for IPv4 and once for
  IPv6; a rule whose nets are all IPv4 only for IPv4. A rule with no
  family-specific match is rendered once for both.
- Per alternative of an OR that nft cannot put in one rule: numeric ports OR
  each named-port set (``ip daddr . meta l4proto . th dport @p4-…``).

All renderings of one rule carry the same comment (the rule id), so per-rule
counters are the sum over the nft rules with that comment.

Verdicts (see :mod:`gingham.dataplane.layout` for why): allow -> ``accept``,
deny -> ``drop``, pass -> set :data:`~gingham.dataplane.layout.PASS_MARK` and
``return`` (in a profile: plain ``return``), log -> ``log prefix`` and continue.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gingham.calc.messages import ParsedRule, PolicyID, TierInfo
from gingham.dataplane import layout
from gingham.dataplane.layout import PASS_MARK, RuleSpec
from gingham.errors import ValidationError
from gingham.names import PACKET_LOG_PREFIX

PORT_PROTOCOLS = frozenset({6, 17, 132, 136})
_LOG_PREFIX_MAX = 127
_CLEAR_PASS = f"meta mark set meta mark and {~PASS_MARK & 0xFFFFFFFF:#010x}"
_PASS_CLEAR = f"meta mark and {PASS_MARK:#x} == 0"


@dataclass(frozen=True, slots=True)
class SetRef:
    """An IP set a rendered rule refers to (so the set manager can create it)."""

    set_id: str
    kind: str  # "net" | "net-port"
    family: int


# ------------------------------------------------------------------ helpers


def _nets_by_family(nets: Iterable[str], where: str) -> dict[int, tuple[str, ...]]:
    try:
        return _nets_by_family_cached(tuple(nets))
    except ValueError as exc:
        raise ValidationError(str(exc), where) from None


@functools.lru_cache(maxsize=4096)
def _nets_by_family_cached(nets: tuple[str, ...]) -> dict[int, tuple[str, ...]]:
    # rules repeat the same nets across policies: parse and collapse each list once
    out: dict[int, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {4: [], 6: []}
    for text in nets:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise ValueError(f"bad net {text!r}: {exc}") from None
        out[net.version].append(net)
    # nft refuses overlapping intervals in one anonymous set: collapse first.
    return {
        fam: tuple(_net_text(n) for n in ipaddress.collapse_addresses(nets))  # type: ignore[type-var]
        for fam, nets in out.items()
        if nets
    }


def _net_text(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _anon(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _ports(ranges: Iterable[tuple[int, int]], where: str) -> list[str]:
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if not (0 <= lo <= hi <= 65535):
            raise ValidationError(f"bad port range {lo}-{hi}", where)
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in merged]


def log_prefix(rule_id: str) -> str:
    text = f"{PACKET_LOG_PREFIX}{rule_id}: "
    if len(text) <= _LOG_PREFIX_MAX and '"' not in text:
        return text
    return PACKET_LOG_PREFIX + layout.short_comment(rule_id)[: _LOG_PREFIX_MAX - 10] + ": "


def _verdict(rule: ParsedRule, in_profile: bool, untracked: bool = False) -> str:
    if rule.action == "allow":
        if untracked:
            return f"counter meta mark set meta mark or {layout.UNTRACKED_MARK:#x} notrack accept"
        return "counter accept"
    if rule.action == "deny":
        return "counter drop"
    if rule.action == "pass":
        if in_profile:
            return "counter return"
        return f"counter meta mark set meta mark or {PASS_MARK:#x} return"
    if rule.action == "log":
        return f'counter log prefix "{log_prefix(rule.rule_id)}"'
    raise ValidationError(f"unknown action {rule.action!r}", rule.rule_id)


# ------------------------------------------------------------------ one rule


def _families(rule: ParsedRule, where: str) -> list[int | None]:
    """The families this rule must be rendered for; [None] = one family-agnostic rule."""
    fams = {4, 6}
    if rule.ip_version is not None:
        if rule.ip_version not in (4, 6):
            raise ValidationError(f"ip_version must be 4 or 6, got {rule.ip_version}", where)
        fams = {rule.ip_version}
    if rule.protocol == 1:
        fams &= {4}
    elif rule.protocol == 58:
        fams &= {6}
    for nets in (rule.src_nets, rule.dst_nets):
        if nets:
            fams &= set(_nets_by_family(nets, where))
    specific = bool(
        rule.ip_version is not None
        or rule.protocol in (1, 58)
        or rule.src_nets
        or rule.dst_nets
        or rule.not_src_nets
        or rule.not_dst_nets
        or rule.set_ids
        or rule.icmp_type is not None
        or rule.not_icmp_type is not None
    )
    if not specific:
        return [None]
    return sorted(fams)  # type: ignore[return-value]


def render_rule(
    rule: ParsedRule, in_profile: bool = False, untracked: bool = False
) -> tuple[list[RuleSpec], set[SetRef]]:
    """nft rule bodies for one parsed rule, and the IP sets they reference.

    ``untracked``: the rule belongs to a doNotTrack policy (raw priority):
    Allow also sets ``notrack`` and :data:`~gingham.dataplane.layout.UNTRACKED_MARK`.

    Raises :class:`ValidationError` (naming the rule id) for a rule that cannot
    be expressed, e.g. ports without a port-carrying protocol.
    """
    where = f"rule {rule.rule_id}"
    _check(rule, where)
    comment = layout.short_comment(rule.rule_id)
    verdict = _verdict(rule, in_profile, untracked)
    out: list[RuleSpec] = []
    refs: set[SetRef] = set()
    for fam in _families(rule, where):
        for body in _render_family(rule, fam, where, refs):
            out.append(RuleSpec(f"{body} {verdict}".strip(), comment))
    return out, refs


def _check(rule: ParsedRule, where: str) -> None:
    has_ports = bool(
        rule.src_ports or rule.dst_ports or rule.not_src_ports or rule.not_dst_ports
    )
    if has_ports and rule.protocol not in PORT_PROTOCOLS:
        raise ValidationError(
            "ports need protocol tcp, udp, sctp or udplite", f"{where}: protocol"
        )
    icmp = (rule.icmp_type, rule.icmp_code, rule.not_icmp_type, rule.not_icmp_code)
    if any(v is not None for v in icmp) and rule.protocol not in (1, 58):
        raise ValidationError("icmp type/code need protocol icmp or icmpv6", f"{where}: icmp")
    if rule.icmp_code is not None and rule.icmp_type is None:
        raise ValidationError("icmp code needs an icmp type", f"{where}: icmp.code")
    if rule.not_icmp_code is not None and rule.not_icmp_type is None:
        raise ValidationError("icmp code needs an icmp type", f"{where}: notICMP.code")


def _render_family(
    rule: ParsedRule, fam: int | None, where: str, refs: set[SetRef]
) -> list[str]:
    parts: list[str] = []
    ip = "ip" if fam == 4 else "ip6"
    if fam is not None:
        parts.append(f"meta nfproto ipv{fam}")
    if rule.protocol is not None:
        parts.append(f"meta l4proto {rule.protocol}")
    if rule.not_protocol is not None:
        parts.append(f"meta l4proto != {rule.not_protocol}")

    for field_, neg, nets in (
        ("saddr", False, rule.src_nets),
        ("saddr", True, rule.not_src_nets),
        ("daddr", False, rule.dst_nets),
        ("daddr", True, rule.not_dst_nets),
    ):
        if not nets or fam is None:
            continue
        mine = _nets_by_family(nets, where).get(fam, ())
        if mine:
            parts.append(f"{ip} {field_} {'!= ' if neg else ''}{_anon(mine)}")

    for field_, neg, ids in (
        ("saddr", False, rule.src_set_ids),
        ("saddr", True, rule.not_src_set_ids),
        ("daddr", False, rule.dst_set_ids),
        ("daddr", True, rule.not_dst_set_ids),
    ):
        for sid in ids:
            assert fam is not None
            refs.add(SetRef(sid, "net", fam))
            parts.append(f"{ip} {field_} {'!= ' if neg else ''}@{layout.net_set_name(sid, fam)}")

    not_src = _ports(rule.not_src_ports, where) if rule.not_src_ports else []
    not_dst = _ports(rule.not_dst_ports, where) if rule.not_dst_ports else []
    if len(not_src) == len(not_dst) == 1 and "-" not in not_src[0] + not_dst[0]:
        # nft 1.0.6 merges `th sport != A th dport != B` into ONE 4-byte
        # inequality, true when either port differs (a known nft bug); a
        # one-port range is not merged, so each port is tested on its own
        not_dst = [f"{not_dst[0]}-{not_dst[0]}"]
    for field_, items in (("sport", not_src), ("dport", not_dst)):
        if items:
            parts.append(f"th {field_} != {_anon(items)}")
    for addr, port, ids in (
        ("saddr", "sport", rule.not_src_named_port_set_ids),
        ("daddr", "dport", rule.not_dst_named_port_set_ids),
    ):
        for sid in ids:
            assert fam is not None
            refs.add(SetRef(sid, "net-port", fam))
            name = layout.port_set_name(sid, fam)
            parts.append(f"{ip} {addr} . meta l4proto . th {port} != @{name}")

    icmp = "icmp" if fam == 4 else "icmpv6"
    if rule.icmp_type is not None:
        parts.append(f"{icmp} type {rule.icmp_type}")
        if rule.icmp_code is not None:
            parts.append(f"{icmp} code {rule.icmp_code}")
    if rule.not_icmp_type is not None:
        if rule.not_icmp_code is None:
            parts.append(f"{icmp} type != {rule.not_icmp_type}")
        else:
            parts.append(
                f"{icmp} type . {icmp} code != {{ {rule.not_icmp_type} . {rule.not_icmp_code} }}"
            )

    src_alts = _port_alternatives(
        "saddr", "sport", rule.src_ports, rule.src_named_port_set_ids, fam, where, refs
    )
    dst_alts = _port_alternatives(
        "daddr", "dport", rule.dst_ports, rule.dst_named_port_set_ids, fam, where, refs
    )
    head = " ".join(parts)
    out = []
    for s, d in itertools.product(src_alts, dst_alts):
        out.append(" ".join(p for p in (head, s, d) if p))
    return out


def _port_alternatives(
    addr: str,
    port: str,
    ranges: tuple[tuple[int, int], ...],
    named: tuple[str, ...],
    fam: int | None,
    where: str,
    refs: set[SetRef],
) -> list[str]:
    """ORed port matches: numeric ranges in one anonymous set, each named-port set apart."""
    alts: list[str] = []
    if ranges:
        alts.append(f"th {port} {_anon(_ports(ranges, where))}")
    ip = "ip" if fam == 4 else "ip6"
    for sid in named:
        assert fam is not None
        refs.add(SetRef(sid, "net-port", fam))
        alts.append(f"{ip} {addr} . meta l4proto . th {port} @{layout.port_set_name(sid, fam)}")
    return alts or [""]


def render_rules(
    rules: Iterable[ParsedRule], in_profile: bool = False, untracked: bool = False
) -> tuple[list[RuleSpec], set[SetRef]]:
    out: list[RuleSpec] = []
    refs: set[SetRef] = set()
    for r in rules:
        specs, rrefs = render_rule(r, in_profile, untracked)
        out += specs
        refs |= rrefs
    return out, refs


# ------------------------------------------------------------------ endpoint chains


def endpoint_rules(
    *,
    tiers: Sequence[TierInfo],
    inbound: bool,
    profile_ids: Sequence[str],
    missing_profiles: Sequence[str],
    has_policy: Callable[[PolicyID], bool],
    has_profile: Callable[[str], bool],
    profile_chain: Callable[[str, bool], str] = layout.profile_chain,
    normal: bool = True,
    tier_end_drop: bool | None = None,
    log_drops: bool = False,
    compiled: Callable[[Sequence[PolicyID], bool], str | None] | None = None,
) -> list[RuleSpec]:
    """The rules of one endpoint's chain for one direction.

    ``inbound`` = traffic towards the endpoint (its ingress policy).
    Anti-spoofing is not here: it runs before conntrack, in the ``raw-wl`` base
    chain (see :mod:`gingham.dataplane.layout`), so these chains hold policy only.
    A referenced policy or profile whose chain is not programmed renders as a
    drop (fail closed); the manager re-renders when it appears.
    ``normal=False`` (preDNAT, doNotTrack, applyOnForward chains): no
    profiles and no final drop; what no policy decided returns to the base
    chain. ``tier_end_drop`` (default: ``normal``) keeps the tiers' default
    action (applyOnForward chains keep it). ``log_drops``: the chain's own
    drops (tier end, no profile) also log, rate-limited, with the prefix
    ``gingham <marker>: ``. ``compiled``: the chain that evaluates a tier's policies
    as one lookup (:mod:`gingham.dataplane.compiled`), or None to jump to each in turn.
    """
    if tier_end_drop is None:
        tier_end_drop = normal
    out: list[RuleSpec] = []
    for tier in tiers:
        pols = tier.ingress_policies if inbound else tier.egress_policies
        if not pols:
            continue
        out.append(RuleSpec(_CLEAR_PASS))
        entry = compiled(pols, inbound) if compiled is not None else None
        if entry is not None:
            out.append(RuleSpec(f"jump {entry}"))
        for pid in pols if entry is None else ():
            if has_policy(pid):
                chain = layout.policy_chain(pid, inbound)
                out.append(RuleSpec(f"{_PASS_CLEAR} jump {chain}"))
            else:
                out.append(
                    RuleSpec(
                        f"{_PASS_CLEAR} counter drop",
                        comment=layout.short_comment(f"missing-policy:{pid}"),
                    )
                )
        if tier_end_drop and tier.default_action != "pass":
            out += layout.drop_rules(
                _PASS_CLEAR, layout.short_comment(f"tier-end:{tier.name}"), log_drops)
    out.append(RuleSpec(_CLEAR_PASS))
    if not normal:
        return out
    if not missing_profiles:
        for prof in profile_ids:
            if has_profile(prof):
                out.append(RuleSpec(f"jump {profile_chain(prof, inbound)}"))
            else:
                out.append(
                    RuleSpec("counter drop", comment=layout.short_comment(f"missing-profile:{prof}"))
                )
    out += layout.drop_rules("", "no-profile-allowed", log_drops)
    return out
