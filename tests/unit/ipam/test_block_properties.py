"""Property tests of the pure block allocator: any interleaving of allocations
and releases keeps the free list and the allocation map consistent."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gingham.errors import AddressInUse, ValidationError
from gingham.ipam.block import Attributes, Block, StaleSequence

HANDLES = st.sampled_from(["h0", "h1", "h2", "h3"])


class BlockMachine(RuleBasedStateMachine):
    """Model: a dict ordinal -> (handle, seq). The block must agree with it."""

    def __init__(self) -> None:
        super().__init__()
        self.block = Block.new("198.18.0.0/28", "host:a")
        self.model: dict[int, tuple[str, int]] = {}
        self.released_seq: dict[int, int] = {}
        self.reserved = {3, 9}

    def _skip(self, o: int) -> bool:
        return o in self.reserved

    @rule(count=st.integers(0, 20), handle=HANDLES, ns=st.sampled_from(["", "n1"]))
    def assign(self, count: int, handle: str, ns: str) -> None:
        free_before = self.block.free_count(self._skip)
        taken = self.block.assign(count, Attributes(handle, namespace=ns), self._skip)
        assert len(taken) == min(count, free_before)
        for o in taken:
            assert o not in self.model, "handed out an address twice"
            assert o not in self.reserved
            self.model[o] = (handle, self.block.seqs[o])

    @rule(ordinal=st.integers(0, 15), handle=HANDLES)
    def assign_ordinal(self, ordinal: int, handle: str) -> None:
        if ordinal in self.model:
            with pytest.raises(AddressInUse):
                self.block.assign_ordinal(ordinal, Attributes(handle))
        else:
            self.block.assign_ordinal(ordinal, Attributes(handle))
            self.model[ordinal] = (handle, self.block.seqs[ordinal])

    @rule(ordinal=st.integers(0, 15), use_seq=st.booleans())
    def release(self, ordinal: int, use_seq: bool) -> None:
        seq = self.model[ordinal][1] if use_seq and ordinal in self.model else None
        held = self.block.release(ordinal, seq)
        if ordinal in self.model:
            assert held is not None and held.handle == self.model[ordinal][0]
            self.released_seq[ordinal] = self.model.pop(ordinal)[1]
        else:
            assert held is None

    @precondition(lambda self: bool(self.released_seq))
    @rule(data=st.data())
    def stale_release_is_refused(self, data: st.DataObject) -> None:
        ordinal = data.draw(st.sampled_from(sorted(self.released_seq)))
        old = self.released_seq[ordinal]
        if ordinal in self.model:
            with pytest.raises(StaleSequence):
                self.block.release(ordinal, old)
            assert ordinal in self.model and self.block.allocations[ordinal] is not None

    @rule(handle=HANDLES)
    def release_handle(self, handle: str) -> None:
        freed = self.block.release_handle(handle)
        expected = sorted(o for o, (h, _) in self.model.items() if h == handle)
        assert sorted(freed) == expected
        for o in freed:
            self.released_seq[o] = self.model.pop(o)[1]

    @rule()
    def json_round_trip(self) -> None:
        self.block = Block.from_json(self.block.to_json())

    @invariant()
    def consistent(self) -> None:
        assert self.block.problems() == []
        held = {o: (a.handle, self.block.seqs[o]) for o, a in self.block.allocated()}
        assert held == self.model
        assert sorted(self.block.unallocated) == sorted(set(range(16)) - set(self.model))
        # attributes are compacted: each entry is referenced
        used = {i for i in self.block.allocations if i is not None}
        assert used == set(range(len(self.block.attributes)))

    @invariant()
    def sequences_unique(self) -> None:
        seqs = list(self.block.seqs.values())
        assert len(seqs) == len(set(seqs))


TestBlockMachine = BlockMachine.TestCase
TestBlockMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@given(st.lists(st.integers(0, 63), max_size=80))
def test_released_addresses_are_reused_last(ops: list[int]) -> None:
    b = Block.new("2001:db8::/122")
    b.assign(64, Attributes("x"))
    for o in ops:
        b.release(o)
    order = list(dict.fromkeys(ops))
    assert b.unallocated == order
    assert b.assign(len(order), Attributes("y")) == order


def test_addresses_and_ordinals() -> None:
    b = Block.new("198.18.1.0/26")
    assert b.ip_of(0) == ipaddress.ip_address("198.18.1.0")  # Calico hands out .0 too
    assert b.ordinal_of(ipaddress.ip_address("198.18.1.63")) == 63


def test_bad_documents_name_the_field() -> None:
    good = Block.new("198.18.0.0/30").to_json()
    with pytest.raises(ValidationError, match=r"block\.cidr"):
        Block.from_json({**good, "cidr": "nope"})
    with pytest.raises(ValidationError, match=r"allocations\[1\]"):
        Block.from_json({**good, "allocations": [None, "x", None, None]})
    with pytest.raises(ValidationError, match="allocations"):
        Block.from_json({**good, "allocations": [None]})
    with pytest.raises(ValidationError, match=r"attributes\[0\]"):
        Block.from_json({**good, "attributes": [{"nohandle": 1}]})


def test_block_too_large_is_refused() -> None:
    with pytest.raises(ValidationError, match="blockSize"):
        Block.new("198.18.0.0/16")


def _used_block() -> dict[str, Any]:
    b = Block.new("198.18.0.0/30")
    b.assign(2, Attributes("h", "ns", "w", "host"))
    return b.to_json()


@pytest.mark.parametrize(("change", "where"), [
    ({"affinity": 5}, "affinity"),
    ({"allocations": "x"}, "allocations"),
    ({"allocations": [0, True, None, None]}, "allocations[1]"),
    ({"unallocated": [2, True]}, "unallocated"),
    ({"attributes": [5, 6]}, "attributes[0]"),
    ({"attributes": [{"handle": "h", "secondary": {"namespace": 7}}]}, "secondary.namespace"),
    ({"attributes": [{"handle": "", "secondary": {}}]}, "attributes[0]"),
    ({"seqs": []}, "seqs"),
    ({"seqs": {"0": 1, "one": 2}}, "seqs['one']"),
    ({"seqs": {"0": 1, "1": "2"}}, "seqs['1']"),
    ({"sequence": "2"}, "sequence"),
    ({"deleted": "no"}, "deleted"),
    ({"cidr": "198.18.0.0/16"}, "cidr"),
    # sound types, broken invariants (each could hand an address out twice)
    ({"unallocated": [2, 3, 0]}, "allocated and free"),
    ({"unallocated": [2, 3, 3]}, "duplicate ordinals"),
    ({"unallocated": [2, 3, 7]}, "outside the block"),
    ({"unallocated": [2]}, "neither allocated nor free"),
    ({"allocations": [0, 4, None, None]}, "attribute index"),
    ({"seqs": {"0": 1}}, "no sequence number"),
    ({"seqs": {"0": 1, "1": 2, "9": 3}}, "outside the block"),
    ({"seqs": {"0": 1, "1": 99}}, "ahead of the block's counter"),
    ({"seqs": {"0": 1, "1": 2, "2": 2}}, "kept for free ordinals"),
])
def test_malformed_blocks_are_refused_naming_why(change: dict[str, Any], where: str) -> None:
    good = _used_block()
    Block.from_json(good)
    with pytest.raises(ValidationError, match=re.escape(where)):
        Block.from_json({**good, **change})


@given(st.lists(st.sampled_from(["take", "release"]), max_size=30), st.integers(0, 7))
def test_every_block_this_code_writes_reads_back(ops: list[str], pick: int) -> None:
    b = Block.new("198.18.0.0/29", "host:a", first_sequence=1 << 16)
    for op in ops:
        if op == "take":
            b.assign(1, Attributes(f"h{pick}", "ns", "w", "a"))
        elif b.used:
            b.release(next(o for o, _ in b.allocated()))
    assert Block.from_json(json.loads(json.dumps(b.to_json()))) == b
