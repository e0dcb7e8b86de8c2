"""The nfnetlink encoder without a kernel: what it accepts, what it refuses,
how it frames a batch and reads the answers. (That its bytes are nft's own is
checked against nft in tests/integration/dataplane/test_nft_netlink.py.)"""

from __future__ import annotations

import errno
import itertools
import re
import struct
from pathlib import Path

import pytest

from gingham.calc.messages import ParsedRule
from gingham.dataplane import nft_wire as w
from gingham.dataplane.nft import NFT, Chain, Element, Map, Rule, Set, Table, Transaction
from gingham.dataplane.nft_netlink import NetlinkWriter
from gingham.dataplane.nft_rules import RuleCompiler
from gingham.dataplane.nft_sets import SetShape, element_messages
from gingham.dataplane.nft_types import Unsupported
from gingham.dataplane.policy import render_rule

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "nft"
_RULE_LINE = re.compile(r'^add rule inet gingham \S+ (.*?)(?: comment "[^"]*")?$')


def compile_(body: str) -> list[tuple[str, dict[int, bytes]]]:
    """(expression name, its top-level attributes) for each expression of ``body``."""
    ids = itertools.count(1)
    out = []
    for expr in RuleCompiler(lambda: next(ids)).compile(body).expressions:
        attrs = dict(_attrs(expr[4:]))
        name = attrs[1].rstrip(b"\0").decode()
        out.append((name, dict(_attrs(attrs.get(2 | w.NLA_F_NESTED, b"")))))
    return out


def _attrs(data: bytes) -> list[tuple[int, bytes]]:
    out, off = [], 0
    while off + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, off)
        out.append((kind, data[off + 4:off + length]))
        off += max((length + 3) & ~3, 4)
    return out


def names(body: str) -> list[str]:
    return [name for name, _ in compile_(body)]


def payload_lengths(body: str) -> list[int]:
    return [struct.unpack("!I", a[4])[0] for name, a in compile_(body) if name == "payload"]


def golden_bodies() -> list[str]:
    bodies = set()
    for path in sorted(GOLDEN.glob("*.nft")):
        for line in path.read_text().splitlines():
            m = _RULE_LINE.match(line)
            if m:
                bodies.add(m.group(1))
    return sorted(bodies)


@pytest.mark.parametrize("body", golden_bodies())
def test_every_golden_rule_compiles(body: str) -> None:
    assert compile_(body)


@pytest.mark.parametrize("body", [
    "tcp flags syn / syn,ack accept",  # a selector it does not know
    "ct mark set 1",
    "limit rate 10/second accept",  # nft's default burst is not assumed
    "log level warn prefix \"x\"",
    'iifname { "gh*", "tap*" } . ip saddr @s accept',  # a concatenation against a named set
    "meta l4proto 6 udp dport 53 accept",  # conflicting protocols: nft reports it
    "meta nfproto ipv6 ip saddr 198.18.0.1 accept",
    "counter packets 1 bytes 2",
    "masquerade random",
    "meta l4proto 6 th dport > 1024 accept",
    "ip saddr . tcp dport { 198.18.0.0/24 . 80 } accept",  # ranges in a concatenation
    "queue num 1",
])
def test_forms_it_does_not_know_are_refused(body: str) -> None:
    with pytest.raises(Unsupported):
        compile_(body)


def test_dependencies_are_the_ones_nft_adds() -> None:
    assert names("udp dport 53 accept") == ["meta", "cmp", "payload", "cmp", "immediate"]
    assert names("icmp type 8 accept") == ["meta", "cmp", "meta", "cmp", "payload", "cmp",
                                           "immediate"]
    assert names("meta l4proto 1 icmp type 8") == ["meta", "cmp", "payload", "cmp"]
    assert names("ip saddr 198.18.0.1") == ["meta", "cmp", "payload", "cmp"]
    assert names("th dport 22") == ["payload", "cmp"]


def test_adjacent_equalities_merge_but_inequalities_do_not() -> None:
    assert payload_lengths("meta l4proto 6 th sport 80 th dport 90") == [4]
    assert payload_lengths("meta nfproto ipv4 meta l4proto 1 icmp type 3 icmp code 4") == [2]
    # nft 1.0.6 would make this one 4-byte "!=" (true if either port differs)
    assert payload_lengths("meta l4proto 17 th sport != 53 th dport != 80 drop") == [2, 2]
    # two 32-bit loads stay apart, as nft keeps them
    assert payload_lengths("meta nfproto ipv4 ip saddr 1.2.3.4 ip daddr 5.6.7.8") == [4, 4]


def test_a_prefix_on_a_byte_boundary_loads_only_its_bytes() -> None:
    assert payload_lengths("meta nfproto ipv4 ip saddr 10.0.0.0/8") == [1]
    assert names("meta nfproto ipv4 ip saddr 10.0.0.0/12") == ["meta", "cmp", "payload",
                                                              "bitwise", "cmp"]


def test_the_renderer_never_writes_two_adjacent_port_inequalities() -> None:
    both = ParsedRule("r", "deny", protocol=17, not_src_ports=((53, 53),),
                      not_dst_ports=((80, 80),))
    [spec], _ = render_rule(both)
    assert "th sport != 53 th dport != 80-80" in spec.body
    one = ParsedRule("r", "deny", protocol=17, not_dst_ports=((80, 80),))
    [spec], _ = render_rule(one)
    assert "th dport != 80 " in spec.body


def test_golden_transactions_encode_without_nft() -> None:
    from gingham.dataplane.apply import Applier
    from gingham.dataplane.managers import PolicyDataplane
    from gingham.dataplane.nft_fake import FakeNFT
    from tests.unit.dataplane.test_policy_scenarios import SCENARIOS

    for name, build in SCENARIOS.items():
        dp = PolicyDataplane()
        dp.on_messages(build())
        ap = Applier(FakeNFT(strict=True), dp)
        ap.apply()
        assert ap.last_tx is not None
        msgs = NetlinkWriter("inet", "gingham").encode(ap.last_tx, {})
        assert len(msgs) >= len(ap.last_tx.ops) // 2, name


def test_a_big_element_batch_is_split_to_fit_netlink_attributes() -> None:
    shape = SetShape.of(Set("s6", type="ipv6_addr", flags=("interval",)))
    elems = [Element("s6", f"2001:db8::{i:x}") for i in range(0, 8000, 2)]
    msgs = element_messages("gingham", shape, "add", elems, op=0)
    assert len(msgs) > 1
    total = 0
    for msg in msgs:
        (lists,) = [body for kind, body in _attrs(msg.payload) if kind & 0x3FFF == 3]
        assert len(lists) + 4 <= 0xFFFF
        total += len(_attrs(lists))
    assert total == 2 * len(elems)  # a start and an end per address


def test_unknown_sets_and_objects_are_refused_before_anything_is_sent() -> None:
    writer = NetlinkWriter("inet", "gingham")
    with pytest.raises(Unsupported, match="not seen"):
        writer.encode(Transaction().add(Element("nowhere", "198.18.0.1")), {})
    with pytest.raises(Unsupported):
        writer.encode(Transaction().insert(Rule("c", "accept", index=0)), {})
    with pytest.raises(Unsupported):
        writer.encode(Transaction().add(Set("t", typeof="ip saddr")), {})
    known = {"s": Set("s", type="ipv4_addr")}
    assert writer.encode(Transaction().add(Element("s", "198.18.0.1")), known)
    with pytest.raises(Unsupported):
        NetlinkWriter("ip", "gingham")


def test_a_batch_is_framed_with_one_acknowledgement() -> None:
    msgs = [w.Message(w.NEWTABLE, w.F_CREATE, w.strz(1, "t"), 0),
            w.Message(w.NEWCHAIN, w.F_CREATE, w.strz(1, "t") + w.strz(3, "c"), 1)]
    data = w.encode_batch(1, msgs, 100)
    seen = []
    off = 0
    while off < len(data):
        length, mtype, flags, seq, _ = struct.unpack_from("=IHHII", data, off)
        family, _, res_id = struct.unpack_from("=BBH", data, off + 16)
        seen.append((mtype, flags, seq, family, res_id))
        off += length
    assert seen == [
        (0x10, w.F_REQUEST, 100, 0, 0x0A00),  # BEGIN, subsystem in network order
        (0x0A00 | w.NEWTABLE, w.F_REQUEST | w.F_CREATE, 101, 1, 0),
        (0x0A00 | w.NEWCHAIN, w.F_REQUEST | w.F_CREATE | w.F_ACK, 102, 1, 0),
        (0x11, w.F_REQUEST, 103, 0, 0x0A00),
    ]


def _error(seq: int, code: int) -> bytes:
    return struct.pack("=IHHII", 36, 2, 0, seq, 0) + struct.pack("=i", -code) + bytes(16)


def test_answers_name_the_refused_message() -> None:
    out: list[w.Refusal] = []
    assert not w.NFNetlink._answers(_error(102, errno.ENOENT), 100, 104, out)
    assert w.NFNetlink._answers(_error(104, 0), 100, 104, out)
    assert out == [w.Refusal(1, errno.ENOENT)]
    out.clear()
    assert w.NFNetlink._answers(_error(100, errno.ENOMEM), 100, 104, out)  # the whole batch
    assert out == [w.Refusal(None, errno.ENOMEM)]


def test_the_driver_falls_back_to_nft_and_counts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    real = NFT(netns="unused")
    monkeypatch.setattr(real, "_apply", lambda tx, check: ran.append(tx.render()))
    real.run(Transaction().add(Table()).add(Chain("c")).add(Rule("c", "tcp flags syn accept")))
    assert real.last_via == "nft" and ran
    assert real.last_fallback is not None and "selector" in real.last_fallback
    assert real.counts == {"fallback": 1, "nft": 1}
    real.run(Transaction().add(Set("s", type="ipv4_addr")), netlink=False)
    assert real.counts["fallback"] == 1 and real.last_fallback is None
    assert "s" in real._sets  # learned from what ran, whichever path
    real.run(Transaction().delete(Set("s")), netlink=False)
    assert "s" not in real._sets


def test_interval_changes_nft_would_refuse_are_left_to_nft() -> None:
    from gingham.dataplane.nft_intervals import Intervals

    iv = Set("iv", type="ipv4_addr", flags=("interval",))
    sets: dict[str, Set | Map] = {"iv": iv}
    ranges = Intervals()
    with pytest.raises(Unsupported, match="not known"):  # never listed, not made here
        ranges.check(Transaction().add(Element("iv", "10.0.0.1")), sets, set())
    made = Transaction().add(iv).add(Element("iv", "10.0.0.3")).add(Element("iv", "10.0.0.4"))
    ranges.commit(ranges.check(made, sets, {"iv"}))
    for refused in (Transaction().add(Element("iv", "10.0.0.2/31")),  # its end exists
                    Transaction().delete(Element("iv", "10.0.0.3/31")),  # not a range held
                    Transaction().add(Element("iv", "10.0.0.8")).add(Element("iv", "10.0.0.8/29"))):
        with pytest.raises(Unsupported):
            ranges.check(refused, sets, set())
    # the Applier's way of growing a range: the old ranges go first, in the same batch
    grow = (Transaction().delete(Element("iv", "10.0.0.3")).delete(Element("iv", "10.0.0.4"))
            .add(Element("iv", "10.0.0.2-10.0.0.5")).add(Element("iv", "10.0.0.5")))
    with pytest.raises(Unsupported):  # .5 is inside the new range
        ranges.check(grow, sets, set())
    grow.ops.pop()
    after = ranges.check(grow, sets, set())
    assert after == {"iv": [(bytes([10, 0, 0, 2]), bytes([10, 0, 0, 5]))]}
    assert ranges.check(Transaction().add(Element("iv", "10.0.0.3")), sets, set())  # held: a no-op


def test_a_kept_rule_is_compiled_again_when_its_set_is_new() -> None:
    """nft names a set made in the same batch by its batch id as well."""
    from gingham.dataplane.nft_netlink import _COMPILED

    body = "meta nfproto ipv4 ip saddr @only-here-new accept"
    known = {"only-here-new": Set("only-here-new", type="ipv4_addr")}
    writer = NetlinkWriter("inet", "gingham")
    old = writer.encode(Transaction().add(Rule("c", body)), known)[-1].payload
    assert body in _COMPILED
    new = writer.encode(Transaction().add(known["only-here-new"]).add(Rule("c", body)), {})
    assert new[-1].payload != old and len(new[-1].payload) == len(old) + 8  # the set id
