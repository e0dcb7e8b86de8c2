"""Rendering of transactions to nft scripts, input validation and the fake's
``nft list table``-like dump (golden text)."""

from __future__ import annotations

import pytest

from gingham.dataplane.nft import (
    Chain,
    Element,
    Map,
    NFTError,
    Rule,
    Set,
    Table,
    Transaction,
    normalize_key,
)
from gingham.dataplane.nft_fake import FakeNFT
from gingham.dataplane.nft_parse import (
    counters_from_json,
    elements_from_json,
    rules_by_chain,
    rules_from_text,
)

GOLDEN_SCRIPT = """\
add table inet gingham { comment "t" ; }
add chain inet gingham in { type filter hook input priority -5 ; policy drop ; }
create chain inet gingham wl
add set inet gingham s4 { type ipv4_addr ; flags interval,timeout ; timeout 30s ; size 10 ; }
add map inet gingham vm { typeof iifname : verdict ; comment "c" ; }
add element inet gingham vm { "gh1" comment "x" : jump wl }
add element inet gingham s4 { 198.18.0.0/16 timeout 5s }
add rule inet gingham in iifname vmap @vm comment "dispatch"
insert rule inet gingham in index 0 ct state established accept
add rule inet gingham in position 7 drop
replace rule inet gingham in handle 7 accept
delete rule inet gingham in handle 7
delete element inet gingham s4 { 198.18.0.0/16 }
flush set inet gingham s4
flush chain inet gingham wl
delete chain inet gingham wl
delete table inet gingham
"""


def test_render_golden() -> None:
    tx = (
        Transaction()
        .add(Table(comment="t"))
        .add(Chain("in", type="filter", hook="input", priority=-5, policy="drop"))
        .create(Chain("wl"))
        .add(Set("s4", type="ipv4_addr", flags=("interval", "timeout"), timeout="30s", size=10))
        .add(Map("vm", typeof="iifname : verdict", comment="c"))
        .add(Element("vm", '"gh1"', "jump wl", comment="x"))
        .add(Element("s4", "198.18.0.0/16", timeout="5s"))
        .add(Rule("in", "iifname vmap @vm", comment="dispatch"))
        .insert(Rule("in", "ct state established accept", index=0))
        .add(Rule("in", "drop", handle=7))
        .replace(Rule("in", "accept", handle=7))
        .delete(Rule("in", handle=7))
        .delete(Element("s4", "198.18.0.0/16"))
        .flush(Set("s4"))
        .flush(Chain("wl"))
        .delete(Chain("wl"))
        .delete(Table())
    )
    assert tx.render() == GOLDEN_SCRIPT
    assert len(tx) == 17
    assert tx.render("ip", "other").startswith('add table ip other { comment "t" ; }\n')


@pytest.mark.parametrize(
    "make",
    [
        lambda: Chain("fwd x"),
        lambda: Chain("fwd"),
        lambda: Set("map", type="ipv4_addr"),
        lambda: Rule("counter", "accept"),
        lambda: Chain("1abc"),
        lambda: Chain("c", type="filter"),
        lambda: Chain("c", policy="drop"),
        lambda: Rule("c", "accept; add table ip evil"),
        lambda: Rule("c", "accept\nflush ruleset"),
        lambda: Rule("c", "accept", comment='say "hi"'),
        lambda: Rule("c", "accept", handle=1, index=0),
        lambda: Set("s", type="ipv4_addr", typeof="ip saddr"),
        lambda: Map("m", type="ipv4_addr"),
        lambda: Element("s", ""),
        lambda: Element("s", "1.2.3.4, 5.6.7.8"),
        lambda: Element("s", "1.2.3.4 }; flush ruleset"),
        lambda: Transaction().delete(Rule("c")),
        lambda: Transaction().replace(Rule("c", "accept")),
        lambda: Transaction().add(Rule("c")),
        lambda: Transaction().insert(Chain("c")),
        lambda: Transaction().create(Rule("c", "accept")),
        lambda: Transaction().flush(Element("s", "1.2.3.4")),
    ],
)
def test_bad_input_is_refused(make: object) -> None:
    with pytest.raises(NFTError):
        make()  # type: ignore[operator]


def test_normalize_key() -> None:
    assert normalize_key(['"gh1"', "198.18.0.1/32", "2001:0db8::0/32", "080", "jump  x"]) == (
        "gh1", "198.18.0.1", "2001:db8::/32", "80", "jump x"
    )
    assert normalize_key(["198.18.0.1-198.18.0.009"]) == ("198.18.0.1-198.18.0.009",)
    assert normalize_key(["198.18.0.1-198.18.0.9"]) == ("198.18.0.1-198.18.0.9",)
    assert normalize_key(["1000-2000", "accept"]) == ("1000-2000", "accept")


def test_elements_from_json() -> None:
    obj = {
        "elem": [
            {"prefix": {"addr": "198.18.0.0", "len": 16}},
            {"range": ["198.19.0.1", "198.19.0.9"]},
            {"elem": {"val": "198.18.5.5", "timeout": 10, "expires": 9, "comment": "c"}},
            {"concat": ["198.18.0.7", 80]},
        ]
    }
    got = elements_from_json("s", obj)
    assert [e.key for e in got] == [
        ("198.18.0.0/16",), ("198.19.0.1-198.19.0.9",), ("198.18.5.5",), ("198.18.0.7", "80")
    ]
    assert (got[2].comment, got[2].timeout) == ("c", "10s")
    vmap = {"elem": [["gh1", {"jump": {"target": "wl"}}], ["gh2", {"drop": None}]]}
    assert [(e.key, e.value) for e in elements_from_json("m", vmap)] == [
        (("gh1",), ("jump wl",)), (("gh2",), ("drop",))
    ]


def test_rules_from_text() -> None:
    text = (
        "table inet gingham { # handle 3\n"
        "\tchain c { # handle 2\n"
        "\t\ttype filter hook input priority filter; policy accept;\n"
        '\t\tip saddr 198.18.0.1 counter packets 3 bytes 180 accept comment "a b" # handle 5\n'
        "\t\tdrop # handle 6\n"
        "\t}\n"
        "}\n"
    )
    rules = rules_from_text("c", text)
    assert [(r.rule, r.comment, r.handle) for r in rules] == [
        ("ip saddr 198.18.0.1 counter packets 3 bytes 180 accept", "a b", 5),
        ("drop", None, 6),
    ]
    text = text.replace("}\n}", "}\n\tset s { # handle 9\n\t\ttype ipv4_addr\n\t}\n"
                        "\tchain d { # handle 4\n\t\taccept # handle 7\n\t}\n}")
    assert {c: [r.handle for r in rs] for c, rs in rules_by_chain(text).items()} == {
        "c": [5, 6], "d": [7]
    }


def test_counters_from_json() -> None:
    doc = {
        "nftables": [
            {"metainfo": {}},
            {"rule": {"chain": "c", "handle": 4, "expr": [{"accept": None}]}},
            {"rule": {"chain": "c", "handle": 5, "comment": "x",
                      "expr": [{"counter": {"packets": 2, "bytes": 120}}, {"accept": None}]}},
        ]
    }
    [c] = counters_from_json(doc)
    assert (c.chain, c.handle, c.comment, c.packets, c.bytes) == ("c", 5, "x", 2, 120)


GOLDEN_DUMP = """\
table inet gingham {
\tset ips {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 198.18.0.0/24, 198.19.0.5 }
\t}

\tmap vm {
\t\ttype ifname : verdict
\t\telements = { "gha" : jump wl,
\t\t\t     "ghb" : drop }
\t}

\tchain forward {
\t\ttype filter hook forward priority filter; policy drop;
\t\toifname vmap @vm
\t}

\tchain wl {
\t\tip saddr @ips counter packets 0 bytes 0 accept comment "allow"
\t}
}
"""


def test_fake_dump_golden() -> None:
    fake = FakeNFT()
    fake.run(
        Transaction()
        .add(Table())
        .add(Set("ips", type="ipv4_addr", flags=("interval",)))
        .add(Map("vm", type="ifname : verdict"))
        .add(Chain("forward", type="filter", hook="forward", priority=0, policy="drop"))
        .add(Chain("wl"))
        .add(Element("ips", "198.19.0.5"))
        .add(Element("ips", "198.18.0.0/24"))
        .add(Element("vm", "ghb", "drop"))
        .add(Element("vm", "gha", "jump wl"))
        .add(Rule("forward", "oifname vmap @vm"))
        .add(Rule("wl", "ip saddr @ips counter accept", comment="allow"))
    )
    assert fake.dump() == GOLDEN_DUMP
    assert len(fake.transactions) == 1


def test_fake_strict_refuses_nonempty_chain_delete() -> None:
    fake = FakeNFT(strict=True)
    fake.run(Transaction().add(Table()).add(Chain("c")).add(Rule("c", "accept")))
    with pytest.raises(NFTError) as info:
        fake.run(Transaction().delete(Chain("c")))
    assert info.value.kind == "busy"
    fake.run(Transaction().flush(Chain("c")).delete(Chain("c")))
    assert fake.list_chains() == []


def test_fake_handles_follow_kernel_allocation() -> None:
    # one counter per table: chains, sets and rules in script order
    fake = FakeNFT()
    fake.run(
        Transaction().add(Table()).add(Chain("a")).add(Chain("b"))
        .add(Set("s", type="ipv4_addr")).add(Rule("a", "accept")).add(Rule("a", "drop"))
    )
    assert [r.handle for r in fake.list_rules("a")] == [4, 5]


def test_error_message_is_bounded() -> None:
    err = NFTError("nft: boom", kind="other", stderr="x" * 100_000, line_number=3,
                   script_line="add rule inet gingham c accept")
    assert len(str(err)) < 3000
    assert "line 3: add rule inet gingham c accept" in str(err)
    assert len(err.stderr) == 100_000
