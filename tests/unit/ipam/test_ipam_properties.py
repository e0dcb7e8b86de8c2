"""Stateful property test of the whole IPAM on an in-memory store: three hosts
allocate, assign, release (by address, with sequence numbers, by handle) and
run the leak check in any order; the store always agrees with a simple model."""

from __future__ import annotations

import ipaddress
import random
from collections import Counter

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gingham.errors import AddressInUse, IPAMError, PoolExhausted
from gingham.ipam import IPAM, Allocation, HostConfig, StaleSequence, check, release_from_report
from gingham.ipam import keys as ikeys
from gingham.ipam.block import Block
from tests.unit.ipam.helpers import put_node, put_pool, put_reservation
from tests.unit.ipam.memstore import MemStore

HOSTS = ["a", "b", "c"]
POOL = ipaddress.ip_network("198.18.0.0/27")  # 4 blocks of 8
RESERVED = ipaddress.ip_address("198.18.0.9")


class IPAMMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ds = MemStore()
        put_pool(self.ds, "p", str(POOL), 29)
        put_pool(self.ds, "p6", "2001:db8::/123", 125)  # 4 blocks of 8, IPv6
        put_reservation(self.ds, "r", [str(RESERVED)])
        for h in HOSTS:
            put_node(self.ds, h)
        self.ipams = {h: IPAM(self.ds, h, rng=random.Random(i), cache_ttl=0,
                              config=HostConfig(max_blocks_per_host=1 + (i % 2),
                                                strict_affinity=(h == "c")))
                      for i, h in enumerate(HOSTS)}
        self.held: dict[str, list[Allocation]] = {}  # handle -> what it holds
        self.owner: dict[str, str] = {}  # handle -> the host that took it
        self.dead: set[str] = set()
        self.released: list[Allocation] = []
        self.n = 0

    def _new_handle(self) -> str:
        self.n += 1
        return f"h{self.n}"

    @rule(host=st.sampled_from(HOSTS), v4=st.integers(0, 5), v6=st.integers(0, 3))
    def allocate(self, host: str, v4: int, v6: int) -> None:
        handle = self._new_handle()
        try:
            got = self.ipams[host].allocate(handle, {"namespace": "", "workload": ""},
                                            num_v4=v4, num_v6=v6)
        except PoolExhausted:
            return
        assert [a.ip.version for a in got] == [4] * v4 + [6] * v6
        if not got:
            return
        self.held[handle] = got
        self.owner[handle] = host

    @rule(host=st.sampled_from(HOSTS), offset=st.integers(0, 31))
    def assign(self, host: str, offset: int) -> None:
        ip = POOL.network_address + offset
        handle = self._new_handle()
        taken = {a.ip for allocs in self.held.values() for a in allocs}
        try:
            got = self.ipams[host].assign(ip, handle)
        except AddressInUse:
            assert ip in taken
            return
        except IPAMError as exc:
            assert ip == RESERVED, exc
            return
        assert ip not in taken and ip != RESERVED
        self.held[handle] = [got]
        self.owner[handle] = host

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), host=st.sampled_from(HOSTS), by_handle=st.booleans())
    def release(self, data: st.DataObject, host: str, by_handle: bool) -> None:
        handle = data.draw(st.sampled_from(sorted(self.held)))
        allocs = self.held.pop(handle)
        if by_handle:
            freed = self.ipams[host].release_by_handle(handle)
        else:
            freed = self.ipams[host].release(allocs)
        assert sorted(freed, key=str) == sorted((a.ip for a in allocs), key=str)
        self.released += allocs

    @precondition(lambda self: bool(self.released))
    @rule(data=st.data())
    def stale_release(self, data: st.DataObject) -> None:
        old = data.draw(st.sampled_from(self.released))
        holder = next((a for allocs in self.held.values() for a in allocs if a.ip == old.ip),
                      None)
        if holder is None:
            assert self.ipams["a"].release([old]) == []
        else:
            with pytest.raises(StaleSequence):
                self.ipams["a"].release([old])

    @rule(host=st.sampled_from(HOSTS))
    def host_dies_or_returns(self, host: str) -> None:
        key = ikeys.NODES + host
        if host in self.dead:
            put_node(self.ds, host)
            self.dead.discard(host)
        else:
            self.ds.delete(key)
            self.dead.add(host)

    @rule()
    def leak_check(self) -> None:
        # exactly the addresses taken by dead hosts are leaks
        check(self.ds, now=0.0, grace=0.0)
        report = check(self.ds, now=1.0, grace=0.0)
        reported = sorted(x.ip for x in report.leaks if x.kind == "address")
        expected = sorted(str(a.ip) for h, allocs in self.held.items()
                          if self.owner[h] in self.dead for a in allocs)
        assert reported == expected
        outcome = release_from_report(self.ds, report)  # also returns empty blocks
        assert outcome.skipped == [], outcome.skipped
        for h in [h for h in self.held if self.owner[h] in self.dead]:
            self.released += self.held.pop(h)

    @invariant()
    def store_matches_model(self) -> None:
        blocks = [Block.from_json(kv.value) for kv in self.ds.list(ikeys.BLOCKS)[0]]
        in_store: dict[object, tuple[str, int]] = {}
        for b in blocks:
            assert b.problems() == []
            for o, attrs in b.allocated():
                ip = b.ip_of(o)
                assert ip not in in_store, f"{ip} in two blocks"
                in_store[ip] = (attrs.handle, b.seqs[o])  # type: ignore[index]
        model = {a.ip: (h, a.sequence) for h, allocs in self.held.items() for a in allocs}
        assert in_store == model
        for i, b in enumerate(blocks):
            for other in blocks[i + 1:]:
                assert not b.cidr.overlaps(other.cidr)  # type: ignore[arg-type]
        counts = {kv.key[len(ikeys.HANDLES):]: sum(kv.value["blocks"].values())
                  for kv in self.ds.list(ikeys.HANDLES)[0]}
        assert counts == dict(Counter(h for h, _ in model.values()))


TestIPAMMachine = IPAMMachine.TestCase
TestIPAMMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
