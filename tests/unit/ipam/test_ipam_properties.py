"""Stateful property test of the whole IPAM on an in-memory store: three hosts
allocate, assign, release (by address, with sequence numbers, by handle) and
run the leak check in any order; the store always agrees with a simple model.

Any IPAM document (block, handle, affinity, pool, reservation, configuration,
leak-check sightings; also a block key nobody claimed yet) may be corrupted at
any point -- bytes that are not JSON, JSON of the wrong shape, a block that
breaks its own invariants, a document of another kind -- and later restored.
Meanwhile no address is ever handed out twice, nothing is allocated inside an
unreadable block's range, the IPAM never writes over an unreadable block,
pool, reservation or configuration, and operations aimed at one fail naming
its key. Once everything is restored the store agrees with the model again,
and releasing everything leaves nothing behind.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gingham.datastore.base import Undecodable
from gingham.errors import AddressInUse, IPAMError, PoolExhausted, ValidationError
from gingham.ipam import IPAM, Allocation, StaleSequence, check, release_from_report
from gingham.ipam import keys as ikeys
from gingham.ipam.block import Block
from gingham.ipam.unreadable import UnreadableDocument
from tests.unit.ipam.helpers import put_node, put_pool, put_reservation
from tests.unit.ipam.memstore import MemStore

HOSTS = ["a", "b", "c"]
POOL = ipaddress.ip_network("198.18.0.0/27")  # 4 blocks of 8
POOL6 = ipaddress.ip_network("2001:db8::/123")
RESERVED = ipaddress.ip_address("198.18.0.9")
POOL_KEYS = [ikeys.POOLS + "p", ikeys.POOLS + "p6"]
RESERVATION_KEY = ikeys.RESERVATIONS + "r"
# Keys the IPAM may replace or delete when they hold garbage: bookkeeping it
# owns (a claim it confirms, a handle it released by scanning, sightings).
REPLACEABLE = (ikeys.AFFINITY, ikeys.HANDLES, ikeys.LEAKCHECK)
GARBAGE = ["not-json", "bad-utf8", "json-list", "empty-object", "another-kind", "wrong-shape",
           "broken-invariant"]


def _garbage(kind: str, key: str, doc: dict[str, Any] | None, other: dict[str, Any],
             pick: int) -> bytes:
    """Bytes that make the document at ``key`` unreadable (``doc``: what is there now)."""
    if kind == "not-json":
        return b"{\"cidr\": "
    if kind == "bad-utf8":
        return b"\xc3\x28"
    if kind == "json-list":
        return b"[]"
    if kind == "another-kind":
        return json.dumps(other).encode()
    if key.startswith(ikeys.CONFIG):
        # {} is a sound configuration (all defaults); these are not
        return json.dumps([{"strictAffinity": "yes"}, {"maxBlocksPerHost": -1},
                           {"maxBlocksPerHost": "2", "strictAffinity": 1}][pick % 3]).encode()
    if kind == "empty-object" or doc is None:
        return b"{}"
    if key.startswith(ikeys.BLOCKS):
        held = [o for o, a in enumerate(doc["allocations"]) if a is not None]
        size = len(doc["allocations"])
        shapes: list[dict[str, Any]] = [
            {"affinity": 5}, {"allocations": "x"}, {"attributes": [5]}, {"seqs": []},
            {"sequence": "7"}, {"cidr": str(ipaddress.ip_network(doc["cidr"]).supernet())}]
        broken: list[dict[str, Any]] = [
            {"unallocated": [*doc["unallocated"], size + pick % 4]},  # outside the block
            {"unallocated": [*doc["unallocated"], *doc["unallocated"][:1]]},  # free twice
            {"unallocated": doc["unallocated"][1:]},  # neither free nor held
        ]
        if held:  # held and free: read as sound, it hands the address out again
            broken.insert(0, {"unallocated": [*doc["unallocated"], held[pick % len(held)]]})
        if not doc["unallocated"]:  # broken[1..2] need a free ordinal
            broken = [*broken[:1], {"seqs": {**doc["seqs"], str(size + 1): 1}}]
        choice = shapes if kind == "wrong-shape" else broken
        return json.dumps({**doc, **choice[pick % len(choice)]}).encode()
    if key.startswith(ikeys.HANDLES):
        return json.dumps([{**doc, "blocks": "x"}, {**doc, "handle": "someone-else"},
                           {**doc, "blocks": {"nonsense": 1}},
                           {**doc, "releasing": "no"}][pick % 4]).encode()
    if key.startswith(ikeys.AFFINITY):
        return json.dumps([{**doc, "state": 5}, {**doc, "since": "x"}][pick % 2]).encode()
    if key.startswith(ikeys.LEAKCHECK):
        return json.dumps({**doc, "seen": "x"}).encode()
    if key == RESERVATION_KEY:
        return json.dumps({**doc, "spec": {"reservedCIDRs": [str(RESERVED), 5]}}).encode()
    return json.dumps([{**doc, "spec": "oops"},
                       {**doc, "spec": {**doc["spec"], "blockSize": "29"}},
                       {**doc, "spec": {**doc["spec"], "disabled": "false"}}][pick % 3]).encode()


class IPAMMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ds = MemStore()
        put_pool(self.ds, "p", str(POOL), 29)
        put_pool(self.ds, "p6", str(POOL6), 125)  # 4 blocks of 8, IPv6
        put_reservation(self.ds, "r", [str(RESERVED)])
        for i, h in enumerate(HOSTS):
            put_node(self.ds, h)
            # stored (not passed in), so that corrupting it is seen
            self.ds.create(ikeys.host_config_key(h), {"maxBlocksPerHost": 1 + (i % 2),
                                                      "strictAffinity": h == "c"})
        self.ipams = {h: IPAM(self.ds, h, rng=random.Random(i), cache_ttl=0)
                      for i, h in enumerate(HOSTS)}
        self.held: dict[str, list[Allocation]] = {}  # handle -> what it holds
        self.owner: dict[str, str] = {}  # handle -> the host that took it
        self.dead: set[str] = set()
        self.released: list[Allocation] = []
        self.n = 0
        # key -> (what was there before, the revision of the garbage written)
        self.corrupted: dict[str, tuple[dict[str, Any] | None, int]] = {}
        # handles whose document may count more than they hold (never less)
        self.loose: set[str] = set()

    def _new_handle(self) -> str:
        self.n += 1
        return f"h{self.n}"

    # -- what corruption hides ------------------------------------------------

    def _garbage_at(self, key: str) -> bool:
        """``key`` still holds the garbage this machine wrote there."""
        if key not in self.corrupted:
            return False
        kv = self.ds.get(key)
        return kv is not None and kv.mod_revision == self.corrupted[key][1]

    def _dark(self, ip: object) -> bool:
        """``ip`` lies in a block whose document is garbage now."""
        return any(self._garbage_at(k) and ip in net
                   for k, net in ((k, _block_cidr(k)) for k in self.corrupted) if net)

    def _taken(self) -> set[object]:
        return {a.ip for allocs in self.held.values() for a in allocs}

    def _expect_unreadable(self, exc: UnreadableDocument) -> None:
        assert self._garbage_at(exc.key), f"{exc} but {exc.key} was not corrupted"

    def _handed_out(self, got: list[Allocation], taken: set[object]) -> None:
        for a in got:
            assert a.ip not in taken, f"{a.ip} handed out twice"
            assert not self._dark(a.ip), f"{a.ip} allocated inside an unreadable block"
            assert a.ip != RESERVED

    # -- rules --------------------------------------------------------------------

    @rule(host=st.sampled_from(HOSTS), v4=st.integers(0, 5), v6=st.integers(0, 3))
    def allocate(self, host: str, v4: int, v6: int) -> None:
        handle = self._new_handle()
        taken = self._taken()
        try:
            got = self.ipams[host].allocate(handle, {"namespace": "", "workload": ""},
                                            num_v4=v4, num_v6=v6)
        except PoolExhausted:
            return
        except UnreadableDocument as exc:  # only an unreadable reservation stops it
            assert exc.key == RESERVATION_KEY
            self._expect_unreadable(exc)
            return
        assert [a.ip.version for a in got] == [4] * v4 + [6] * v6
        self._handed_out(got, taken)
        if not got:
            return
        self.held[handle] = got
        self.owner[handle] = host

    @rule(host=st.sampled_from(HOSTS), offset=st.integers(0, 31))
    def assign(self, host: str, offset: int) -> None:
        ip = POOL.network_address + offset
        handle = self._new_handle()
        taken = self._taken()
        try:
            got = self.ipams[host].assign(ip, handle)
        except AddressInUse:
            assert ip in taken
            return
        except UnreadableDocument as exc:
            self._expect_unreadable(exc)
            return
        except IPAMError as exc:
            pool_gone = self._garbage_at(POOL_KEYS[0]) and "in no IP pool" in str(exc)
            assert ip == RESERVED or pool_gone, exc
            return
        self._handed_out([got], taken)
        self.held[handle] = [got]
        self.owner[handle] = host

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), host=st.sampled_from(HOSTS), by_handle=st.booleans())
    def release(self, data: st.DataObject, host: str, by_handle: bool) -> None:
        handle = data.draw(st.sampled_from(sorted(self.held)))
        allocs = self.held.pop(handle)
        if self._garbage_at(ikeys.handle_key(handle)):
            self.loose.add(handle)  # its counts are not lowered while unreadable
        try:
            if by_handle:
                freed = self.ipams[host].release_by_handle(handle)
            else:
                freed = self.ipams[host].release(allocs)
        except UnreadableDocument as exc:
            self._expect_unreadable(exc)
            # what lies in unreadable blocks stays held; the rest was released
            self.held[handle] = [a for a in allocs if self._dark(a.ip)]
            self.released += [a for a in allocs if not self._dark(a.ip)]
            assert exc.key.startswith(ikeys.BLOCKS)
            self.loose.add(handle)
            return
        assert sorted(freed, key=str) == sorted((a.ip for a in allocs), key=str)
        self.released += allocs

    @precondition(lambda self: bool(self.released))
    @rule(data=st.data())
    def stale_release(self, data: st.DataObject) -> None:
        old = data.draw(st.sampled_from(self.released))
        holder = next((a for allocs in self.held.values() for a in allocs if a.ip == old.ip),
                      None)
        if self._dark(old.ip):
            with pytest.raises(UnreadableDocument):
                self.ipams["a"].release([old])
        elif holder is None:
            assert self.ipams["a"].release([old]) == []
        else:
            with pytest.raises(StaleSequence):
                self.ipams["a"].release([old])

    @rule(data=st.data(), kind=st.sampled_from(GARBAGE), pick=st.integers(0, 11))
    def corrupt(self, data: st.DataObject, kind: str, pick: int) -> None:
        present = [kv.key for kv in self.ds.list(ikeys.IPAM)[0]]
        unclaimed = [ikeys.block_key(b) for pool, size in ((POOL, 29), (POOL6, 125))
                     for b in pool.subnets(new_prefix=size)]
        keys = sorted({*present, *unclaimed, *POOL_KEYS, RESERVATION_KEY} - set(self.corrupted))
        if not keys:
            return  # everything is garbage already
        key = data.draw(st.sampled_from(keys))
        kv = self.ds.get(key)
        doc = None if kv is None else dict(kv.value)
        others = [k for k in present + POOL_KEYS
                  if _family(k) != _family(key) and not self._garbage_at(k)]
        other = self.ds.get(others[pick % len(others)]) if others else None
        garbage = _garbage(kind, key, doc, dict(other.value) if other else {"x": 1}, pick)
        self.corrupted[key] = (doc, self.ds.put_raw(key, garbage))
        if key.startswith(ikeys.CONFIG) or key.startswith(ikeys.LEAKCHECK):
            return  # a sound document of another kind is no garbage there
        assert not _readable(key, self.ds.get(key).value), garbage  # type: ignore[union-attr]

    @precondition(lambda self: bool(self.corrupted))
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.corrupted)))
        self._restore(key)

    def _restore(self, key: str) -> None:
        still = self._garbage_at(key)
        original, _ = self.corrupted.pop(key)
        if not still:
            return  # replaced or removed by the IPAM (bookkeeping it owns)
        if original is None:
            self.ds.delete(key)
        else:
            self.ds.put_raw(key, json.dumps(original).encode())

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
        # exactly the addresses taken by dead hosts are leaks, but for those an
        # unreadable block hides (they are problems, not findings)
        check(self.ds, now=0.0, grace=0.0)
        report = check(self.ds, now=1.0, grace=0.0)
        reported = sorted(x.ip for x in report.leaks if x.kind == "address")
        expected = sorted(str(a.ip) for h, allocs in self.held.items()
                          if self.owner[h] in self.dead for a in allocs if not self._dark(a.ip))
        assert reported == expected
        hidden = [k for k in self.corrupted if k.startswith(ikeys.BLOCKS) and self._garbage_at(k)]
        for key in hidden:
            assert any(p.startswith(key) for p in report.problems), (key, report.problems)
        if hidden:
            assert not [x for x in report.leaks if x.kind == "handle"]
        outcome = release_from_report(self.ds, report)  # also returns empty blocks
        assert outcome.skipped == [], outcome.skipped
        for h in [h for h in self.held if self.owner[h] in self.dead]:
            if self._garbage_at(ikeys.handle_key(h)):
                self.loose.add(h)
            self.released += [a for a in self.held[h] if not self._dark(a.ip)]
            self.held[h] = [a for a in self.held[h] if self._dark(a.ip)]
            if not self.held[h]:
                del self.held[h]

    @invariant()
    def store_matches_model(self) -> None:
        items = self.ds.list(ikeys.BLOCKS)[0]
        blocks = []
        ranges = []
        for kv in items:
            net = _block_cidr(kv.key)
            assert net is not None
            ranges.append(net)
            if self._garbage_at(kv.key):
                continue
            # every block the IPAM writes is sound, and at its own key
            block = Block.from_json(kv.value)
            assert ikeys.block_key(block.cidr) == kv.key
            blocks.append(block)
        in_store: dict[object, tuple[str, int]] = {}
        for b in blocks:
            for o, attrs in b.allocated():
                ip = b.ip_of(o)
                assert ip not in in_store, f"{ip} in two blocks"
                in_store[ip] = (attrs.handle, b.seqs[o])
        model = {a.ip: (h, a.sequence) for h, allocs in self.held.items() for a in allocs}
        assert in_store == {ip: v for ip, v in model.items() if not self._dark(ip)}
        for i, net in enumerate(ranges):  # unreadable blocks keep their range
            for other in ranges[i + 1:]:
                assert not net.overlaps(other)
        # garbage the IPAM must never write over: it may be the only record
        for key in self.corrupted:
            if not key.startswith(REPLACEABLE):
                assert self._garbage_at(key), f"{key} was written over"
        held_by = Counter(h for h, _ in model.values())
        docs = {kv.key[len(ikeys.HANDLES):]: kv for kv in self.ds.list(ikeys.HANDLES)[0]}
        for h in set(docs) | set(held_by):
            doc = docs.get(h)
            if doc is not None and self._garbage_at(doc.key):
                continue
            assert doc is not None, f"handle {h} holds {held_by[h]} but has no document"
            counted = sum(doc.value["blocks"].values())
            if h in self.loose:
                assert counted >= held_by[h], (h, counted, held_by[h])  # never too low
            else:
                assert counted == held_by[h], (h, counted, held_by[h])

    def teardown(self) -> None:
        """Restore everything; then the store agrees with the model exactly, and giving
        every address back (and one leak check for what counts went stale) leaves nothing."""
        for key in sorted(self.corrupted):
            self._restore(key)
        self.store_matches_model()
        for handle in sorted(self.held):
            freed = self.ipams["a"].release_by_handle(handle)
            assert sorted(freed, key=str) == sorted((a.ip for a in self.held[handle]), key=str)
        self.held.clear()
        self.store_matches_model()
        for h in HOSTS:  # every host gone: their blocks and claims go back too
            if h not in self.dead:
                self.ds.delete(ikeys.NODES + h)
        check(self.ds, now=10.0, grace=0.0)
        report = check(self.ds, now=11.0, grace=0.0)
        assert report.problems == ()
        assert release_from_report(self.ds, report).skipped == []
        left = [kv.key for kv in self.ds.list(ikeys.IPAM)[0]
                if not kv.key.startswith((ikeys.CONFIG, ikeys.LEAKCHECK))]
        assert left == [], left


def _family(key: str) -> str:
    """The kind of document a key holds (a document of another family is garbage there)."""
    families = (ikeys.BLOCKS, ikeys.HANDLES, ikeys.AFFINITY, ikeys.CONFIG, ikeys.LEAKCHECK,
                ikeys.POOLS, ikeys.RESERVATIONS)
    return next(f for f in families if key.startswith(f))


def _block_cidr(key: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not key.startswith(ikeys.BLOCKS):
        return None
    head, _, length = key[len(ikeys.BLOCKS):].rpartition("-")
    return ipaddress.ip_network(f"{head}/{length}")


def _readable(key: str, value: dict[str, Any]) -> bool:
    """Whether the IPAM would take ``value`` at ``key`` as a sound document."""
    if isinstance(value, Undecodable):
        return False
    from gingham.datastore.base import KeyValue
    from gingham.ipam import handles
    from gingham.ipam.claims import parse_affinity
    from gingham.ipam.pools import pool_from_resource, reservations_from_resource
    from gingham.ipam.unreadable import read_block

    kv = KeyValue(key, value, 1, 1)
    try:
        if key.startswith(ikeys.BLOCKS):
            read_block(kv)
        elif key.startswith(ikeys.HANDLES):
            handles.parse(kv)
        elif key.startswith(ikeys.AFFINITY):
            return not parse_affinity(kv).why
        elif key == RESERVATION_KEY:
            reservations_from_resource(value)
        elif key in POOL_KEYS:
            pool_from_resource(value)
    except (ValidationError, UnreadableDocument):
        return False
    return True


@pytest.fixture(autouse=True)
def quiet_ipam_log() -> Any:
    # every corruption is logged (once); thousands of lines would drown a failure
    logger = logging.getLogger("gingham.ipam")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


TestIPAMMachine = IPAMMachine.TestCase
TestIPAMMachine.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
