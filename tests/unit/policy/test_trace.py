"""nft monitor trace output, as nft 1.0.6 prints it, to dropped-packet flows."""

from __future__ import annotations

from gingham.policy.trace import TRACE_SCRIPT, TraceParser, parse_packet

PACKET = ('iif "ghf2775be0092" oif "gh456b416f2bf" ether saddr c6:18:54:ce:61:64 ether daddr '
          'ee:ee:ee:ee:ee:ee ip saddr 198.18.189.130 ip daddr 198.18.189.129 ip dscp cs0 ip ecn '
          'not-ect ip ttl 63 ip id 55250 ip protocol tcp ip length 60 tcp sport 35794 tcp dport 80 '
          'tcp flags == syn tcp window 64860 ')
DROPPED = [
    f"trace id 4a96fb2f inet ghtrace trace packet: {PACKET}",
    "trace id 4a96fb2f inet ghtrace trace rule ct state new meta nftrace set 1 (verdict continue)",
    "trace id 4a96fb2f inet ghtrace trace policy accept ",
    f"trace id 4a96fb2f inet gingham fwd-from-wl packet: {PACKET}",
    "trace id 4a96fb2f inet gingham fwd-from-wl rule iifname vmap @from-wl "
    "(verdict jump fw-91727a322bb497e8)",
    "trace id 4a96fb2f inet gingham pro-58e975713708-o rule counter packets 0 bytes 0 accept "
    'comment "profile:kns.x:e0" (verdict accept)',
    f"trace id 4a96fb2f inet gingham fwd-to-wl packet: {PACKET}",
    "trace id 4a96fb2f inet gingham fwd-to-wl rule oifname vmap @to-wl "
    "(verdict jump tw-558c283bedc32aea)",
    "trace id 4a96fb2f inet gingham pol-9fb2682b22cc-i rule counter packets 0 bytes 0 "
    'comment "v:da39a3ee5e6b" (verdict continue)',
    "trace id 4a96fb2f inet gingham tw-558c283bedc32aea rule meta mark & 0x00001000 == "
    '0x00000000 counter packets 0 bytes 0 drop comment "tier-end:default" (verdict drop)',
]
ACCEPTED = [
    "trace id 9afe6f52 inet ghtrace trace packet: " + PACKET.replace("dport 80", "dport 81"),
    "trace id 9afe6f52 inet gingham pro-58e975713708-o rule counter packets 0 bytes 0 accept "
    'comment "profile:kns.x:e0" (verdict accept)',
    "trace id 9afe6f52 inet gingham fwd-to-wl policy accept ",
]


def test_packet_fields() -> None:
    f = parse_packet(PACKET)
    assert f == {"iif": "ghf2775be0092", "oif": "gh456b416f2bf", "src": "198.18.189.130",
                 "dst": "198.18.189.129", "proto": "tcp", "sport": "35794", "dport": "80"}


def test_a_drop_becomes_one_flow_with_its_rule_and_direction() -> None:
    parser = TraceParser()
    out = [parser.feed(line, 5.0) for line in ACCEPTED[:1] + DROPPED + ACCEPTED[1:]]
    flows = [f for f in out if f is not None]
    assert len(flows) == 1
    f = flows[0]
    assert (f.rule_id, f.kind, f.owner, f.direction, f.verdict) == (
        "tier-end:default", "tier-end", "default", "ingress", "denied")
    assert (f.src, f.dst, f.protocol, f.src_port, f.dst_port, f.time) == (
        "198.18.189.130", "198.18.189.129", "tcp", 35794, 80, 5.0)
    assert (f.in_iface, f.out_iface) == ("ghf2775be0092", "gh456b416f2bf")


def test_policy_rule_drop_and_garbage() -> None:
    parser = TraceParser()
    assert parser.feed("not a trace line") is None
    parser.feed(f"trace id 01 inet gingham fwd-from-wl packet: {PACKET}")
    f = parser.feed('trace id 01 inet gingham pol-1-o rule ip daddr @s4-x counter packets 0 '
                    'bytes 0 drop comment "policy:default/x/deny:e2" (verdict drop)')
    assert f is not None and (f.owner, f.direction, f.index) == ("default/x/deny", "egress", 2)


def test_script_is_idempotent_and_avoids_the_fwd_keyword() -> None:
    assert TRACE_SCRIPT.startswith("add table inet ghtrace\ndelete table inet ghtrace\n")
    assert "chain fwd" not in TRACE_SCRIPT
