"""Representative policy scenarios, shared by the golden-file tests and the
integration test that loads every golden script into the real nft.

No tests here: builders only (named test_policy* to stay within this suite's files).
"""

from __future__ import annotations

from collections.abc import Callable

from gingham.calc.messages import (
    ConfigUpdate,
    FailsafePort,
    HostEndpointUpdate,
    InSync,
    IPSetUpdate,
    Message,
    ParsedRule,
    PolicyID,
    PolicyUpdate,
    ProfileUpdate,
    TierInfo,
    WorkloadEndpointID,
    WorkloadEndpointUpdate,
)

P_ALL = PolicyID("default", "every-field", "ns1")
P_SEC = PolicyID("security", "quarantine", None)
P_PASS = PolicyID("security", "pass-web", None)
P_FWD = PolicyID("security", "forward-web", None)
P_PRE = PolicyID("security", "pre-dnat-block", None)
P_RAW = PolicyID("security", "untracked-dns", None)


def rule(i: int, direction: str = "i", **kw: object) -> ParsedRule:
    return ParsedRule(f"policy:{P_ALL}:{direction}{i}", **kw)  # type: ignore[arg-type]


# one rule per ParsedRule field (and a few combinations)
EVERY_FIELD_IN = (
    rule(0, action="allow"),
    rule(1, action="allow", ip_version=4),
    rule(2, action="allow", ip_version=6, protocol=17),
    rule(3, action="deny", not_protocol=6),
    rule(4, action="allow", protocol=6, src_nets=("198.18.0.0/24", "198.18.0.5/32", "2001:db8::/64")),
    rule(5, action="allow", not_src_nets=("198.18.1.0/24", "2001:db8:1::/64")),
    rule(6, action="allow", dst_nets=("198.18.2.0/24",), not_dst_nets=("198.18.2.7/32",)),
    rule(7, action="allow", protocol=6, src_ports=((1024, 65535),), dst_ports=((80, 80), (443, 443), (8000, 8080))),
    rule(8, action="deny", protocol=17, not_src_ports=((53, 53),), not_dst_ports=((1, 1023),)),
    rule(9, action="allow", protocol=6, dst_ports=((8443, 8443),), dst_named_port_set_ids=("n:web",)),
    rule(10, action="allow", protocol=6, src_named_port_set_ids=("n:client",)),
    rule(11, action="deny", protocol=6, not_dst_named_port_set_ids=("n:web",), not_src_named_port_set_ids=("n:client",)),
    rule(12, action="allow", src_set_ids=("s:front", "s:sa-web")),
    rule(13, action="deny", not_src_set_ids=("s:front",), dst_set_ids=("s:back",), not_dst_set_ids=("s:sa-web",)),
    rule(14, action="allow", protocol=1, icmp_type=8),
    rule(15, action="allow", protocol=1, icmp_type=3, icmp_code=4),
    rule(16, action="deny", protocol=58, not_icmp_type=128),
    rule(17, action="deny", protocol=58, icmp_type=1, not_icmp_type=1, not_icmp_code=3),
    rule(18, action="log", protocol=6, dst_ports=((22, 22),)),
    rule(19, action="pass", src_nets=("198.18.3.0/24",)),
)
EVERY_FIELD_OUT = (
    rule(0, "e", action="allow", protocol=17, dst_ports=((53, 53),)),
    rule(1, "e", action="deny", dst_nets=("2001:db8:ffff::/48",)),
)

SETS = (
    IPSetUpdate("s:front", "net", frozenset({"198.18.0.1/32", "198.18.0.2/32", "2001:db8::1/128"})),
    IPSetUpdate("s:back", "net", frozenset({"198.18.4.0/24", "198.18.4.9/32"})),
    IPSetUpdate("s:sa-web", "net", frozenset({"198.18.0.2/32"})),
    IPSetUpdate("n:web", "net-port", frozenset({"198.18.0.2,tcp:8080", "2001:db8::2,tcp:8080"})),
    IPSetUpdate("n:client", "net-port", frozenset({"198.18.0.1,udp:5000"})),
)

WL_A = WorkloadEndpointID("ns1", "a")
WL_B = WorkloadEndpointID("ns1", "b")


def every_field() -> list[Message]:
    return [
        *SETS,
        PolicyUpdate(P_ALL, EVERY_FIELD_IN, EVERY_FIELD_OUT),
        WorkloadEndpointUpdate(
            WL_A, "gh0000000000a", ("198.18.0.1/32",), ("2001:db8::1/128",), None,
            (TierInfo("default", "deny", (P_ALL,), (P_ALL,)),), ("kns.ns1",),
        ),
        ProfileUpdate(
            "kns.ns1",
            (ParsedRule("profile:kns.ns1:i0", "allow"),),
            (ParsedRule("profile:kns.ns1:e0", "allow"),),
        ),
        InSync(),
    ]


def tiers_and_profiles() -> list[Message]:
    """Two tiers (one ending in pass), a namespaced policy, a profile with pass,
    spoofing allowed for one prefix, a missing profile on another workload."""
    return [
        IPSetUpdate("s:front", "net", frozenset({"198.18.0.1/32"})),
        PolicyUpdate(
            P_SEC,
            (ParsedRule(f"policy:{P_SEC}:i0", "deny", src_nets=("198.18.9.0/24",)),),
            (ParsedRule(f"policy:{P_SEC}:e0", "pass"),),
        ),
        PolicyUpdate(
            P_PASS,
            (ParsedRule(f"policy:{P_PASS}:i0", "pass", src_set_ids=("s:front",)),),
            (),
        ),
        PolicyUpdate(
            P_ALL,
            (ParsedRule(f"policy:{P_ALL}:i0", "allow", protocol=6, dst_ports=((80, 80),)),),
            (),
        ),
        ProfileUpdate(
            "kns.ns1",
            (ParsedRule("profile:kns.ns1:i0", "pass", protocol=17),
             ParsedRule("profile:kns.ns1:i1", "allow")),
            (ParsedRule("profile:kns.ns1:e0", "allow"),),
        ),
        WorkloadEndpointUpdate(
            WL_A, "gh0000000000a", ("198.18.0.1/32",), (), None,
            (
                TierInfo("security", "pass", (P_SEC, P_PASS), (P_SEC,)),
                TierInfo("default", "deny", (P_ALL,), ()),
            ),
            ("kns.ns1",),
            allow_spoofed_prefixes=("198.18.100.0/24",),
        ),
        WorkloadEndpointUpdate(
            WL_B, "gh0000000000b", ("198.18.0.2/32",), ("2001:db8::2/128",), None,
            (), (), missing_profiles=("kns.gone",),
        ),
        InSync(),
    ]


def host_config() -> list[Message]:
    """Endpoint-to-host Accept, custom failsafes, one host endpoint with normal,
    applyOnForward, preDNAT and doNotTrack policies."""
    return [
        ConfigUpdate(
            endpoint_to_host_action="Accept",
            failsafe_inbound=(FailsafePort("tcp", 22, "192.0.2.0/24"), FailsafePort("udp", 68),
                              FailsafePort("tcp", 2222, "192.0.2.0/24")),
            failsafe_outbound=(FailsafePort("tcp", 2379), FailsafePort("tcp", 2380, "2001:db8::/32")),
            allow_ipip_from_workloads=True,
            vxlan_port=4790,
        ),
        PolicyUpdate(
            P_SEC,
            (ParsedRule(f"policy:{P_SEC}:i0", "allow", protocol=6, dst_ports=((443, 443),)),),
            (ParsedRule(f"policy:{P_SEC}:e0", "allow"),),
        ),
        PolicyUpdate(
            P_FWD,
            (ParsedRule(f"policy:{P_FWD}:i0", "allow", protocol=6, dst_ports=((80, 80),)),),
            (), apply_on_forward=True,
        ),
        PolicyUpdate(
            P_PRE,
            (ParsedRule(f"policy:{P_PRE}:i0", "deny", src_nets=("203.0.113.0/24",)),),
            (), pre_dnat=True, apply_on_forward=True,
        ),
        PolicyUpdate(
            P_RAW,
            (ParsedRule(f"policy:{P_RAW}:i0", "allow", protocol=17, dst_ports=((53, 53),)),),
            (ParsedRule(f"policy:{P_RAW}:e0", "allow", protocol=17, src_ports=((53, 53),)),),
            untracked=True,
        ),
        HostEndpointUpdate(
            "h1-eth0", "eth0", ("192.0.2.10",), (),
            (TierInfo("security", "deny", (P_SEC,), (P_SEC,)),),
            (TierInfo("security", "deny", (P_RAW,), (P_RAW,)),),
            (TierInfo("security", "deny", (P_PRE,), ()),),
            (TierInfo("security", "deny", (P_FWD, P_PRE), ()),),
            (),
        ),
        InSync(),
    ]


SCENARIOS: dict[str, Callable[[], list[Message]]] = {
    "every_field": every_field,
    "tiers_and_profiles": tiers_and_profiles,
    "host_config": host_config,
}
