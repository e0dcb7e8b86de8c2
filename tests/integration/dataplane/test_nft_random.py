"""FakeNFT against the kernel on random transaction sequences (hypothesis).

Each example builds a sequence of small transactions from a fixed universe of
chains, sets, a verdict map, elements and rules, runs every transaction on
both backends, and requires the same outcome (success, or the same error
kind) and the same listed state after each step. Rules are addressed by
position, each backend resolving the position to its own handle, because a
failed kernel transaction consumes handles and the fake's does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gingham.dataplane.nft import (
    NFT,
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

pytestmark = pytest.mark.integration

CHAINS = ["a", "b", "c", "in"]
SETS: dict[str, Set | Map] = {
    "s1": Set("s1", type="ipv4_addr", flags=("interval",)),
    "s2": Set("s2", type="ipv4_addr"),
    "m1": Map("m1", type="ifname : verdict"),
    "s3": Set("s3", typeof="ip saddr . tcp dport"),
}
BODIES = [
    "accept", "drop", "counter", "jump b", "jump c", "goto a",
    "ip saddr @s1 accept", "ip daddr @s2 drop", "iifname vmap @m1",
    "ip saddr . tcp dport @s3 accept",
]
KEYS = ["198.18.0.1", "198.18.0.4", "198.18.0.0/30", "198.18.1.0/24"]
MAP_KEYS = ["gh1", "gh2"]
VERDICTS = ["accept", "drop", "jump a", "jump b", "goto c"]

Op = tuple[Any, ...]

ops = st.one_of(
    st.tuples(st.just("table"), st.sampled_from(["add", "delete", "flush"])),
    st.tuples(st.just("chain"), st.sampled_from(["add", "create", "delete", "flush"]),
              st.sampled_from(CHAINS)),
    st.tuples(st.just("base"), st.sampled_from(["add", "create", "delete", "flush"]),
              st.sampled_from(["input", "output"]), st.sampled_from(["accept", "drop"])),
    st.tuples(st.just("set"), st.sampled_from(["add", "create", "delete", "flush"]),
              st.sampled_from(list(SETS))),
    st.tuples(st.just("elem"), st.sampled_from(["add", "create", "delete"]),
              st.sampled_from(["s1", "s2"]), st.sampled_from(KEYS)),
    st.tuples(st.just("elem"), st.sampled_from(["add", "create", "delete"]),
              st.just("s3"), st.sampled_from([("198.18.0.1", "80"), ("198.18.0.2", "http")])),
    st.tuples(st.just("mapelem"), st.sampled_from(["add", "create", "delete"]),
              st.sampled_from(MAP_KEYS), st.sampled_from(VERDICTS)),
    st.tuples(st.just("rule"), st.sampled_from(["add", "insert"]), st.sampled_from(CHAINS),
              st.sampled_from(BODIES), st.sampled_from([None, "x"]),
              st.sampled_from([None, 0, 1])),
    st.tuples(st.just("rulepos"), st.sampled_from(["delete", "replace"]),
              st.sampled_from(CHAINS), st.integers(0, 2), st.sampled_from(BODIES)),
)
sequences = st.lists(st.lists(ops, min_size=1, max_size=3), min_size=1, max_size=8)


def _handle(nft: NFTInterface, chain: str, pos: int) -> int:
    try:
        rules = nft.list_rules(chain)
    except NFTError:
        return 999999
    if pos < len(rules) and rules[pos].handle is not None:
        return rules[pos].handle
    return 999999  # absent on this backend: both must say not-found


def _materialise(nft: NFTInterface, ops_: list[Op]) -> Transaction:
    tx = Transaction()
    for op in ops_:
        kind, verb = op[0], op[1]
        if kind == "table":
            getattr(tx, verb)(Table())
        elif kind == "chain":
            getattr(tx, verb)(Chain(op[2]))
        elif kind == "base":
            getattr(tx, verb)(Chain("in", type="filter", hook=op[2], priority=0, policy=op[3]))
        elif kind == "set":
            getattr(tx, verb)(SETS[op[2]])
        elif kind == "elem":
            getattr(tx, verb)(Element(op[2], op[3]))
        elif kind == "mapelem":
            getattr(tx, verb)(Element("m1", op[2], None if verb == "delete" else op[3]))
        elif kind == "rule":
            _, _, chain, body, comment, anchor = op
            handle = None if anchor is None else _handle(nft, chain, anchor)
            getattr(tx, verb)(Rule(chain, body, comment=comment, handle=handle))
        else:
            _, _, chain, pos, body = op
            getattr(tx, verb)(Rule(chain, body, handle=_handle(nft, chain, pos)))
    return tx


def _outcome(nft: NFTInterface, tx: Transaction) -> str | None:
    try:
        nft.run(tx)
    except NFTError as exc:
        return exc.kind
    return None


def _state(nft: NFTInterface) -> Any:
    if not nft.table_exists():
        return None
    chains = sorted(c.name for c in nft.list_chains())
    return {
        "chains": {c: [(r.rule, r.comment) for r in nft.list_rules(c)] for c in chains},
        "sets": {
            s.name: sorted((e.key, e.value) for e in nft.list_elements(s.name))
            for s in nft.list_sets()
        },
    }


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=sequences)
def test_fake_matches_kernel(netns: Callable[[str], str], seq: list[list[Op]]) -> None:
    real = _REAL.setdefault("nft", NFT(netns=netns("rand")))
    real.delete_table()
    fake = FakeNFT()
    real.run(Transaction().add(Table()))
    fake.run(Transaction().add(Table()))
    for step, ops_ in enumerate(seq):
        script = _materialise(fake, ops_).render()
        got_fake = _outcome(fake, _materialise(fake, ops_))
        got_real = _outcome(real, _materialise(real, ops_))
        assert got_fake == got_real, f"step {step}:\n{script}"
        assert _state(fake) == _state(real), f"step {step}:\n{script}"


_REAL: dict[str, NFT] = {}


@pytest.fixture(autouse=True)
def _forget_real() -> Any:
    yield
    _REAL.clear()
