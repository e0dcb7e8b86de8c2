"""Rule and endpoint-chain rendering: the decisions the golden files do not spell out."""

from __future__ import annotations

import pytest

from gingham.calc.messages import ParsedRule, PolicyID, TierInfo
from gingham.dataplane import layout
from gingham.dataplane.policy import endpoint_rules, log_prefix, render_rule
from gingham.errors import ValidationError


def bodies(r: ParsedRule, in_profile: bool = False) -> list[str]:
    return [s.body for s in render_rule(r, in_profile)[0]]


def test_no_family_specific_match_gives_one_rule() -> None:
    assert bodies(ParsedRule("r", "allow", protocol=6, dst_ports=((80, 80),))) == [
        "meta l4proto 6 th dport 80 counter accept"
    ]


def test_set_reference_splits_by_family_and_reports_sets() -> None:
    specs, refs = render_rule(ParsedRule("r", "deny", src_set_ids=("s:a",)))
    assert [s.body for s in specs] == [
        "meta nfproto ipv4 ip saddr @s4-s_a counter drop",
        "meta nfproto ipv6 ip6 saddr @s6-s_a counter drop",
    ]
    assert {(r.set_id, r.kind, r.family) for r in refs} == {("s:a", "net", 4), ("s:a", "net", 6)}
    assert all(s.comment == "r" for s in specs)


def test_nets_of_one_family_render_only_that_family() -> None:
    out = bodies(ParsedRule("r", "allow", src_nets=("198.18.0.0/16",), src_set_ids=("s:a",)))
    assert out == ["meta nfproto ipv4 ip saddr 198.18.0.0/16 ip saddr @s4-s_a counter accept"]


def test_contradictory_families_render_nothing() -> None:
    # v4 source and v6 destination can never both match
    assert bodies(ParsedRule("r", "allow", src_nets=("198.18.0.0/16",), dst_nets=("2001:db8::/32",))) == []
    assert bodies(ParsedRule("r", "allow", ip_version=6, protocol=1, icmp_type=8)) == []


def test_overlapping_nets_and_ports_are_merged() -> None:
    out = bodies(ParsedRule("r", "allow", protocol=17,
                            dst_nets=("198.18.0.0/24", "198.18.0.7/32", "198.18.1.0/24"),
                            dst_ports=((80, 90), (85, 100), (101, 101), (200, 200))))
    assert out == ["meta nfproto ipv4 meta l4proto 17 ip daddr 198.18.0.0/23 th dport { 80-101, 200 } counter accept"]


def test_named_ports_are_ored_with_numeric_ports() -> None:
    out = bodies(ParsedRule("r", "allow", protocol=6, ip_version=4, dst_ports=((80, 80),),
                            dst_named_port_set_ids=("n:a", "n:b")))
    assert out == [
        "meta nfproto ipv4 meta l4proto 6 th dport 80 counter accept",
        "meta nfproto ipv4 meta l4proto 6 ip daddr . meta l4proto . th dport @p4-n_a counter accept",
        "meta nfproto ipv4 meta l4proto 6 ip daddr . meta l4proto . th dport @p4-n_b counter accept",
    ]


def test_src_and_dst_alternatives_are_crossed() -> None:
    out = bodies(ParsedRule("r", "allow", protocol=6, ip_version=4, src_ports=((1, 1),),
                            src_named_port_set_ids=("n:s",), dst_ports=((2, 2),),
                            dst_named_port_set_ids=("n:d",)))
    assert len(out) == 4


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        (ParsedRule("pol:x:i3", "allow", dst_ports=((80, 80),)), "protocol"),
        (ParsedRule("pol:x:i3", "allow", protocol=1, dst_ports=((80, 80),)), "protocol"),
        (ParsedRule("pol:x:i3", "allow", protocol=6, icmp_type=8), "icmp"),
        (ParsedRule("pol:x:i3", "allow", protocol=1, icmp_code=0), "icmp.code"),
        (ParsedRule("pol:x:i3", "allow", protocol=6, dst_ports=((0, 70000),)), ""),
        (ParsedRule("pol:x:i3", "allow", src_nets=("198.18.0.300/32",)), ""),
        (ParsedRule("pol:x:i3", "allow", ip_version=5), ""),
    ],
)
def test_bad_rules_name_the_rule(rule: ParsedRule, where: str) -> None:
    with pytest.raises(ValidationError) as err:
        render_rule(rule)
    assert "pol:x:i3" in str(err.value)
    assert where in str(err.value)


def test_verdicts() -> None:
    assert bodies(ParsedRule("r", "allow"))[0].endswith("counter accept")
    assert bodies(ParsedRule("r", "deny"))[0].endswith("counter drop")
    assert bodies(ParsedRule("r", "pass"))[0].endswith(
        f"meta mark set meta mark or {layout.PASS_MARK:#x} return")
    assert bodies(ParsedRule("r", "pass"), in_profile=True) == ["counter return"]
    assert bodies(ParsedRule("r", "log")) == ['counter log prefix "gingham r: "']


def test_log_prefix_fits_the_kernel_limit() -> None:
    long_id = "policy:default/" + "n" * 200 + ":i0"
    p = log_prefix(long_id)
    assert len(p) <= 127
    assert p != log_prefix(long_id.replace(":i0", ":i1"))


def test_short_comment_is_stable_and_distinct() -> None:
    a, b = "x" * 200 + "a", "x" * 200 + "b"
    assert len(layout.short_comment(a)) <= 128
    assert layout.short_comment(a) == layout.short_comment(a)
    assert layout.short_comment(a) != layout.short_comment(b)
    assert layout.short_comment('say "hi"') != 'say "hi"'


P1, P2, P3 = PolicyID("t1", "a"), PolicyID("t1", "b"), PolicyID("default", "c", "ns")


def ep_rules(tiers: tuple[TierInfo, ...], inbound: bool = True, profiles: tuple[str, ...] = ("p",),
             missing: tuple[str, ...] = (), known: set[object] | None = None) -> list[str]:
    known = known if known is not None else {P1, P2, P3, "p"}
    specs = endpoint_rules(tiers=tiers, inbound=inbound, profile_ids=profiles,
                           missing_profiles=missing, has_policy=lambda p: p in known,
                           has_profile=lambda p: p in known)
    return [s.body for s in specs]


def test_tier_structure_and_pass_mark() -> None:
    out = ep_rules((TierInfo("t1", "pass", (P1, P2), ()), TierInfo("default", "deny", (P3,), ())))
    clear = f"meta mark set meta mark and {~layout.PASS_MARK & 0xFFFFFFFF:#010x}"
    unset = f"meta mark and {layout.PASS_MARK:#x} == 0"
    assert out == [
        clear,
        f"{unset} jump {layout.policy_chain(P1, True)}",
        f"{unset} jump {layout.policy_chain(P2, True)}",
        clear,
        f"{unset} jump {layout.policy_chain(P3, True)}",
        f"{unset} counter drop",
        clear,
        f"jump {layout.profile_chain('p', True)}",
        "counter drop",
    ]


def test_direction_without_policies_goes_straight_to_profiles() -> None:
    out = ep_rules((TierInfo("t1", "deny", (P1,), ()),), inbound=False)
    assert out[-2:] == [f"jump {layout.profile_chain('p', False)}", "counter drop"]
    assert not any("pol-" in b for b in out)


def test_missing_referents_fail_closed() -> None:
    out = ep_rules((TierInfo("t1", "deny", (P1,), ()),), known={"p"})
    assert not any("jump pol-" in b for b in out)
    assert sum("drop" in b for b in out) >= 2
    out = ep_rules((), profiles=(), missing=("kns.gone",))
    assert out[-1] == "counter drop" and not any("jump" in b for b in out)
    out = ep_rules((), profiles=("q",))
    assert not any("jump" in b for b in out)


def test_endpoint_chains_hold_no_anti_spoofing() -> None:
    """Anti-spoofing moved before conntrack (raw-wl): a from-workload chain is policy only."""
    specs = endpoint_rules(tiers=(), inbound=False, profile_ids=(), missing_profiles=(),
                           has_policy=lambda p: True, has_profile=lambda p: True)
    assert not any("saddr" in s.body or s.comment == "anti-spoof" for s in specs)
