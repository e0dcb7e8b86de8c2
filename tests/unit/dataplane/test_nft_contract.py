"""The nft contract: every test here runs against FakeNFT (this module) and
against the real nft in a throwaway namespace (tests/integration/dataplane/
test_nft_kernel.py imports these tests and overrides the ``nft`` fixture).

A test compares only what both must agree on: objects, order of rules,
normalised elements, error kinds and the line an error names.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gingham.dataplane.nft import (
    Chain,
    Element,
    Map,
    NFTError,
    NFTInterface,
    Rule,
    Set,
    Table,
    Transaction,
)
from gingham.dataplane.nft_fake import FakeNFT


@pytest.fixture
def nft() -> Iterator[NFTInterface]:
    yield FakeNFT()


def base_tx() -> Transaction:
    tx = Transaction()
    tx.add(Table(comment="gingham test"))
    tx.add(Chain("filter-fwd", type="filter", hook="forward", priority=0, policy="accept"))
    tx.add(Chain("wl-to"))
    tx.add(Chain("wl-from"))
    tx.add(Set("ips4", type="ipv4_addr", flags=("interval",)))
    tx.add(Set("ips6", type="ipv6_addr"))
    tx.add(Set("ipport", typeof="ip daddr . tcp dport"))
    tx.add(Map("to-wl", type="ifname : verdict"))
    tx.add(Element("ips4", "198.18.0.0/24"))
    tx.add(Element("ips4", "198.19.0.5/32"))
    tx.add(Element("ips6", "2001:db8:0:0::1"))
    tx.add(Element("ipport", ("198.18.0.7", "80")))
    tx.add(Element("to-wl", '"gh0123456789a"', "jump wl-to"))
    tx.add(Rule("filter-fwd", "oifname vmap @to-wl", comment="dispatch"))
    tx.add(Rule("wl-to", "ip saddr @ips4 counter accept", comment="allow-ips4"))
    tx.add(Rule("wl-to", "drop"))
    return tx


def run_err(nft: NFTInterface, tx: Transaction) -> NFTError:
    with pytest.raises(NFTError) as info:
        nft.run(tx)
    return info.value


def test_build_and_list(nft: NFTInterface) -> None:
    assert not nft.table_exists()
    nft.run(base_tx())
    assert nft.table_exists()
    chains = {c.name: c for c in nft.list_chains()}
    assert set(chains) == {"filter-fwd", "wl-to", "wl-from"}
    fwd = chains["filter-fwd"]
    assert (fwd.type, fwd.hook, fwd.priority, fwd.policy) == ("filter", "forward", 0, "accept")
    assert not chains["wl-to"].is_base
    sets = {s.name: s for s in nft.list_sets()}
    assert set(sets) == {"ips4", "ips6", "ipport", "to-wl"}
    assert isinstance(sets["to-wl"], Map)
    assert sets["ips4"].flags == ("interval",)
    assert {e.key for e in nft.list_elements("ips4")} == {("198.18.0.0/24",), ("198.19.0.5",)}
    assert [e.key for e in nft.list_elements("ips6")] == [("2001:db8::1",)]
    assert [e.key for e in nft.list_elements("ipport")] == [("198.18.0.7", "80")]
    [vm] = nft.list_elements("to-wl")
    assert (vm.key, vm.value) == (("gh0123456789a",), ("jump wl-to",))
    rules = nft.list_rules("wl-to")
    assert [r.comment for r in rules] == ["allow-ips4", None]
    assert rules[1].rule == "drop"
    assert all(r.handle is not None for r in rules)
    assert nft.list_rules("wl-from") == []


def test_failed_transaction_changes_nothing(nft: NFTInterface) -> None:
    nft.run(base_tx())
    before = (nft.list_chains(), nft.list_rules("wl-to"), nft.list_elements("ips4"))
    tx = Transaction()
    tx.add(Chain("extra"))
    tx.add(Element("ips4", "203.0.113.9"))
    tx.add(Rule("wl-to", "accept"))
    tx.add(Rule("no-such-chain", "accept"))
    err = run_err(nft, tx)
    assert err.kind == "not-found"
    assert err.line_number == 4
    assert "no-such-chain" in err.script_line
    after = (nft.list_chains(), nft.list_rules("wl-to"), nft.list_elements("ips4"))
    assert after == before


def test_missing_table(nft: NFTInterface) -> None:
    err = run_err(nft, Transaction().add(Chain("x")))
    assert err.kind == "not-found"
    assert nft.list_chains() == []
    assert nft.list_sets() == []
    assert nft.delete_table() is False


@pytest.mark.parametrize(
    "rule",
    ["ip saddr @no-such-set accept", "jump no-such-chain", "iifname vmap @no-such-map"],
)
def test_rule_with_missing_reference(nft: NFTInterface, rule: str) -> None:
    nft.run(base_tx())
    assert run_err(nft, Transaction().add(Rule("wl-from", rule))).kind == "not-found"


def test_duplicates(nft: NFTInterface) -> None:
    nft.run(base_tx())
    assert run_err(nft, Transaction().create(Chain("wl-to"))).kind == "exists"
    assert run_err(nft, Transaction().create(Set("ips6", type="ipv6_addr"))).kind == "exists"
    assert run_err(nft, Transaction().create(Table())).kind == "exists"
    assert run_err(nft, Transaction().add(Set("ips6", type="ipv4_addr"))).kind == "exists"
    assert run_err(nft, Transaction().add(Set("to-wl", type="ifname"))).kind == "exists"
    assert run_err(nft, Transaction().create(Element("ips6", "2001:db8::1"))).kind == "exists"
    # add of what exists is a no-op
    nft.run(Transaction().add(Table()).add(Chain("wl-to")).add(Set("ips6", type="ipv6_addr")))
    nft.run(Transaction().add(Element("ips6", "2001:db8::1")))
    assert len(nft.list_elements("ips6")) == 1


def test_map_element_with_other_value(nft: NFTInterface) -> None:
    nft.run(base_tx())
    err = run_err(nft, Transaction().add(Element("to-wl", "gh0123456789a", "drop")))
    assert err.kind == "exists"
    nft.run(
        Transaction()
        .delete(Element("to-wl", "gh0123456789a"))
        .add(Element("to-wl", "gh0123456789a", "jump wl-from"))
    )
    [e] = nft.list_elements("to-wl")
    assert e.value == ("jump wl-from",)


def test_verdict_map_to_missing_chain(nft: NFTInterface) -> None:
    nft.run(base_tx())
    err = run_err(nft, Transaction().add(Element("to-wl", "gh1", "jump nowhere")))
    assert err.kind == "not-found"


def test_deleting_absent_things(nft: NFTInterface) -> None:
    nft.run(base_tx())
    for obj in (Chain("nope"), Set("nope"), Element("ips4", "192.0.2.99")):
        assert run_err(nft, Transaction().delete(obj)).kind == "not-found", obj
    assert run_err(nft, Transaction().delete(Rule("wl-to", handle=9999))).kind == "not-found"
    assert run_err(nft, Transaction().flush(Chain("nope"))).kind == "not-found"
    assert run_err(nft, Transaction().flush(Set("nope"))).kind == "not-found"
    assert run_err(nft, Transaction().add(Element("nope", "192.0.2.1"))).kind == "not-found"


def test_deleting_referenced_chain_and_set(nft: NFTInterface) -> None:
    nft.run(base_tx())
    # wl-to: jumped to by a verdict-map element
    assert run_err(nft, Transaction().delete(Chain("wl-to"))).kind == "busy"
    # ips4 used by a rule in wl-to
    assert run_err(nft, Transaction().delete(Set("ips4"))).kind == "busy"
    nft.run(Transaction().add(Rule("wl-to", "jump wl-from")))
    assert run_err(nft, Transaction().delete(Chain("wl-from"))).kind == "busy"
    # unreferenced once the referring rules and element are gone
    nft.run(
        Transaction()
        .flush(Chain("wl-to"))
        .delete(Chain("wl-from"))
        .delete(Set("ips4"))
        .delete(Element("to-wl", "gh0123456789a"))
        .delete(Chain("wl-to"))
    )
    assert {c.name for c in nft.list_chains()} == {"filter-fwd"}


def test_delete_chain_with_rules_unreferenced(nft: NFTInterface) -> None:
    # This kernel deletes a chain's own rules with it (older ones said EBUSY;
    # FakeNFT(strict=True) keeps that older behaviour).
    nft.run(base_tx())
    nft.run(Transaction().add(Chain("tmp")).add(Rule("tmp", "accept")))
    nft.run(Transaction().delete(Chain("tmp")))
    assert "tmp" not in {c.name for c in nft.list_chains()}


def test_rule_positions(nft: NFTInterface) -> None:
    nft.run(base_tx())
    nft.run(Transaction().add(Rule("wl-from", "ip saddr 198.18.0.2 drop")))
    nft.run(Transaction().insert(Rule("wl-from", "ip saddr 198.18.0.1 drop")))
    nft.run(Transaction().add(Rule("wl-from", "ip saddr 198.18.0.4 drop")))
    [r1, r2, r4] = nft.list_rules("wl-from")
    nft.run(
        Transaction()
        .add(Rule("wl-from", "ip saddr 198.18.0.3 drop", handle=r2.handle))  # after r2
        .insert(Rule("wl-from", "ip saddr 198.18.0.0 drop", index=0))  # before first
        .add(Rule("wl-from", "ip saddr 198.18.0.5 drop", comment="last"))
    )
    got = [r.rule.split()[2] for r in nft.list_rules("wl-from")]
    assert got == [f"198.18.0.{i}" for i in range(6)]
    assert r1.handle is not None
    nft.run(
        Transaction()
        .replace(Rule("wl-from", "ip saddr 198.18.0.111 accept", comment="new", handle=r1.handle))
        .delete(Rule("wl-from", handle=r4.handle))
    )
    rules = nft.list_rules("wl-from")
    assert [r.rule.split()[2] for r in rules] == [
        "198.18.0.0", "198.18.0.111", "198.18.0.2", "198.18.0.3", "198.18.0.5"
    ]
    assert rules[1].handle == r1.handle
    assert rules[1].comment == "new"
    assert rules[-1].comment == "last"


def test_flush_table_keeps_sets(nft: NFTInterface) -> None:
    nft.run(base_tx())
    nft.run(Transaction().flush(Table()))
    assert nft.list_rules("wl-to") == []
    assert len(nft.list_elements("ips4")) == 2
    nft.run(Transaction().flush(Set("ips4")).flush(Map("to-wl", type="ifname : verdict")))
    assert nft.list_elements("ips4") == []
    assert nft.list_elements("to-wl") == []


def test_intervals(nft: NFTInterface) -> None:
    nft.run(base_tx())
    assert run_err(nft, Transaction().add(Element("ips4", "198.18.0.128/25"))).kind == "overlap"
    err = run_err(nft, Transaction().add(Element("ips6", "2001:db8::/64")))
    assert err.kind == "other"
    nft.run(Transaction().add(Element("ips4", "203.0.113.0/24")))
    nft.run(Transaction().delete(Element("ips4", "198.18.0.0/24")))
    assert {e.key for e in nft.list_elements("ips4")} == {("203.0.113.0/24",), ("198.19.0.5",)}


def test_base_chain_changes(nft: NFTInterface) -> None:
    nft.run(base_tx())
    tx = Transaction().add(
        Chain("filter-fwd", type="filter", hook="forward", priority=0, policy="drop")
    )
    nft.run(tx)
    [fwd] = [c for c in nft.list_chains() if c.name == "filter-fwd"]
    assert fwd.policy == "drop"
    tx = Transaction().add(Chain("filter-fwd", type="filter", hook="input", priority=0))
    assert run_err(nft, tx).kind == "unsupported"
    tx = Transaction().add(Chain("wl-to", type="filter", hook="input", priority=0))
    assert run_err(nft, tx).kind == "exists"
    tx = Transaction().add(Chain("wl-to", type="filter", hook="input", priority=0, policy="drop"))
    assert run_err(nft, tx).kind == "unsupported"


def test_check_applies_nothing(nft: NFTInterface) -> None:
    nft.run(Transaction().add(Table()))
    nft.check(Transaction().add(Chain("c1")).add(Rule("c1", "accept")))
    assert nft.list_chains() == []
    with pytest.raises(NFTError) as info:
        nft.check(Transaction().add(Rule("c1", "accept")))
    assert info.value.kind == "not-found"


def test_counters(nft: NFTInterface) -> None:
    nft.run(base_tx())
    counters = nft.counters()
    assert [(c.chain, c.comment, c.packets, c.bytes) for c in counters] == [
        ("wl-to", "allow-ips4", 0, 0)
    ]


def test_delete_table(nft: NFTInterface) -> None:
    nft.run(base_tx())
    assert nft.delete_table() is True
    assert not nft.table_exists()
    assert nft.delete_table() is False
    nft.run(base_tx())  # a fresh table builds again
    assert len(nft.list_chains()) == 3


def test_concatenation_and_ipv6_normalisation(nft: NFTInterface) -> None:
    nft.run(base_tx())
    nft.run(
        Transaction()
        .add(Element("ipport", ("198.18.0.8", "443")))
        .add(Element("ips6", "2001:0db8:0000::00ff"))
    )
    assert {e.key for e in nft.list_elements("ipport")} == {
        ("198.18.0.7", "80"), ("198.18.0.8", "443")
    }
    assert {e.key for e in nft.list_elements("ips6")} == {("2001:db8::1",), ("2001:db8::ff",)}
    nft.run(Transaction().delete(Element("ips6", "2001:db8::ff")))
    assert len(nft.list_elements("ips6")) == 1


def test_protocol_and_service_names(nft: NFTInterface) -> None:
    # nft lists protocols by their /etc/protocols name and services by number
    tx = Transaction().add(Table())
    tx.add(Set("pp", type="ipv4_addr . inet_proto . inet_service"))
    tx.add(Element("pp", ("198.18.0.5", "6", "80")))
    tx.add(Element("pp", ("198.18.0.5", "icmpv6", "0")))
    tx.add(Element("pp", ("198.18.0.5", "132", "http")))
    nft.run(tx)
    assert {e.key for e in nft.list_elements("pp")} == {
        ("198.18.0.5", "tcp", "80"), ("198.18.0.5", "ipv6-icmp", "0"), ("198.18.0.5", "sctp", "80")
    }
    nft.run(Transaction().delete(Element("pp", ("198.18.0.5", "tcp", "80"))))
    assert len(nft.list_elements("pp")) == 2


def test_snapshot_is_the_listings_at_once(nft: NFTInterface) -> None:
    assert nft.snapshot() is None
    nft.run(base_tx())
    snap = nft.snapshot()
    assert snap is not None
    assert list(snap.chains.values()) == nft.list_chains()
    assert snap.rules == {c.name: nft.list_rules(c.name) for c in nft.list_chains()}
    assert list(snap.sets.values()) == nft.list_sets()
    assert {k: sorted(v, key=str) for k, v in snap.elements.items()} == {
        s.name: sorted(nft.list_elements(s.name), key=str) for s in nft.list_sets()
    }
    assert snap.counters == nft.counters()
