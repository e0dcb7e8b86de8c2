"""One bad IPAM document costs its key only (issue 12), on the memory and sqlite backends.

Each test puts garbage (``put_raw``: bytes that are not JSON, JSON of the wrong
shape, a document of another kind) under one key and checks that everything
else keeps working, that nothing is allocated inside an unreadable block's
range, that the bad document is never written over, and that operations aimed
at it fail naming its key.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import Datastore, open_datastore
from gingham.datastore.keys import resource_key
from gingham.errors import GinghamError, PoolExhausted
from gingham.ipam import (
    IPAM,
    HostConfig,
    check,
    list_blocks,
    release_from_report,
    unreadable,
    usage,
    who_holds,
)
from gingham.ipam import keys as ikeys
from gingham.ipam.block import Block
from gingham.ipam.info import scan_blocks
from tests.fixtures.datastore import backend_url
from tests.unit.ipam.helpers import put_node, put_pool, put_reservation, put_workload

GRACE = 60.0


@pytest.fixture(params=[pytest.param("memory", id="memory"),
                        pytest.param("sqlite", id="sqlite")])
def ds(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Datastore]:
    for url in backend_url(request, tmp_path):
        store = open_datastore(url, create=True)
        try:
            yield store
        finally:
            store.close()


@pytest.fixture(autouse=True)
def fresh_log_memory() -> Iterator[None]:
    """What was logged is remembered per process by key and revision; the stores of
    different tests reuse both."""
    unreadable._logged.clear()
    yield
    unreadable._logged.clear()


def ipam(ds: Datastore, host: str, **cfg: Any) -> IPAM:
    return IPAM(ds, host, rng=random.Random(3), cache_ttl=0,
                config=HostConfig(**cfg) if cfg else None)


def raw(ds: Datastore, key: str) -> tuple[Any, int]:
    """What is stored at ``key`` (value and revision): to prove it was not written."""
    kv = ds.get(key)
    assert kv is not None
    value = kv.value
    return (getattr(value, "raw", None), kv.mod_revision) if not value else \
        (json.dumps(value, sort_keys=True), kv.mod_revision)


def corrupt_block(ds: Datastore, cidr: object, data: bytes = b"{not json") -> str:
    key = ikeys.block_key(cidr)
    ds.put_raw(key, data)
    return key


def block_of(ds: Datastore, cidr: object) -> Block:
    kv = ds.get(ikeys.block_key(cidr))
    assert kv is not None
    return Block.from_json(kv.value)


def ips(allocs: list[Any]) -> set[str]:
    """Addresses of allocations, or of plain addresses, as strings."""
    return {str(getattr(a, "ip", a)) for a in allocs}


# -- the allocator's loops --------------------------------------------------


def _wrong_shapes(doc: dict[str, Any], other: dict[str, Any]) -> dict[str, bytes]:
    """Garbage for one block document: ``other`` is a sound block of another CIDR.

    "another-blocks-document" is this very block claiming to be a block of
    another range: used, it would hand out addresses of a range nobody claimed.
    """
    held = doc["allocations"].index(next(a for a in doc["allocations"] if a is not None))
    return {
        "not-json": b"\xff\xfe garbage",
        "json-list": b"[1, 2, 3]",
        "affinity-5": json.dumps({**doc, "affinity": 5}).encode(),
        "allocations-x": json.dumps({**doc, "allocations": "x"}).encode(),
        "attributes-not-objects": json.dumps({**doc, "attributes": [5]}).encode(),
        "seqs-list": json.dumps({**doc, "seqs": []}).encode(),
        "sequence-string": json.dumps({**doc, "sequence": "7"}).encode(),
        "another-blocks-document": json.dumps({**doc, "cidr": other["cidr"]}).encode(),
        "a-handle-document": json.dumps({"handle": "x", "blocks": {}, "releasing": False})
        .encode(),
        # sound types, broken invariants: each would hand an address out twice
        "held-and-free": json.dumps({**doc, "unallocated": [*doc["unallocated"], held]})
        .encode(),
        "free-twice": json.dumps({**doc, "unallocated": [*doc["unallocated"],
                                                         doc["unallocated"][0]]}).encode(),
        "free-outside-block": json.dumps({**doc, "unallocated": [*doc["unallocated"], 9]})
        .encode(),
    }


WRONG = ["not-json", "json-list", "affinity-5", "allocations-x", "attributes-not-objects",
         "seqs-list", "sequence-string", "another-blocks-document", "a-handle-document",
         "held-and-free", "free-twice", "free-outside-block"]


@pytest.mark.parametrize("kind", WRONG)
def test_own_unreadable_block_is_skipped_and_never_reused(ds: Datastore, kind: str) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)  # four blocks of four
    h1 = ipam(ds, "h1")
    first = h1.allocate("a", num_v4=2)
    cidr = first[0].block
    other = next(b for b in ipaddress.ip_network("198.18.0.0/28").subnets(new_prefix=30)
                 if b != cidr)  # no block yet
    doc = ds.get(ikeys.block_key(cidr)).value  # type: ignore[union-attr]
    key = corrupt_block(ds, cidr, _wrong_shapes(doc, {"cidr": str(other)})[kind])
    before = raw(ds, key)
    got = h1.allocate("b", num_v4=4)  # the bad block's two free addresses are not used
    assert all(g.ip not in cidr for g in got)
    assert not ips(got) & ips(first)
    assert raw(ds, key) == before, "an unreadable block was written over"
    assert [b.cidr for b in list_blocks(ds)] == [got[0].block]


def test_borrowing_skips_an_unreadable_block(ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    h1 = ipam(ds, "h1", max_blocks_per_host=1)
    h2 = ipam(ds, "h2", max_blocks_per_host=2)
    h1.allocate("full", num_v4=4)
    x = h2.allocate("x", num_v4=1)[0].block
    y = h2.allocate("y", num_v4=4)  # its first block's rest and a second block
    second = next(g.block for g in y if g.block != x)
    h2.release([g for g in y if g.block == second])  # room in both of h2's blocks
    corrupt_block(ds, x)
    got = h1.allocate("borrow", num_v4=2)
    assert {g.block for g in got} == {second}


def test_claims_never_overlap_an_unreadable_block_of_another_size(ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 29)
    [old] = ipam(ds, "h2").allocate("old")
    key = corrupt_block(ds, old.block, b"")
    before = raw(ds, key)
    put_pool(ds, "p", "198.18.0.0/28", 30)  # blocks of another size from now on
    h1 = ipam(ds, "h1", strict_affinity=True)
    got = h1.allocate("new", num_v4=8)
    assert all(g.ip not in old.block for g in got)
    with pytest.raises(PoolExhausted):
        h1.allocate("more")
    assert raw(ds, key) == before


def test_a_garbage_key_naming_a_huge_range_stops_no_claim(ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    ds.put_raw(ikeys.BLOCKS + "0.0.0.0-0", b"garbage")  # no block can be this large
    ds.put_raw(ikeys.BLOCKS + "not-a-cidr", b"garbage")
    got = ipam(ds, "h1").allocate("a", num_v4=2)
    assert [b.cidr for b in list_blocks(ds)] == [got[0].block]


def test_assign_in_an_unreadable_block_names_it_and_leaves_nothing(ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    [held] = ipam(ds, "h1").allocate("a")
    key = corrupt_block(ds, held.block)
    before = raw(ds, key)
    with pytest.raises(GinghamError, match=key) as err:
        ipam(ds, "h2").assign(held.ip, "thief")
    assert getattr(err.value, "key", None) == key
    assert ds.get(ikeys.handle_key("thief")) is None
    assert raw(ds, key) == before
    # an address elsewhere is still assigned
    assert ipam(ds, "h2").assign("198.18.0.9", "fine").ip == ipaddress.ip_address("198.18.0.9")


def test_release_by_address_frees_the_rest_and_names_the_bad_block(ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    h1 = ipam(ds, "h1", max_blocks_per_host=2)
    got = h1.allocate("a", num_v4=6)  # two blocks
    bad, good = got[0].block, got[5].block
    assert bad != good
    key = corrupt_block(ds, bad)
    with pytest.raises(GinghamError, match=key):
        h1.release(got)
    assert block_of(ds, good).is_empty()
    assert ds.get(key) is not None and not ds.get(key).value  # type: ignore[union-attr]


def test_release_by_handle_keeps_the_handle_while_a_block_is_unreadable(ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    h1 = ipam(ds, "h1", max_blocks_per_host=2)
    got = h1.allocate("a", num_v4=6)
    bad, good = got[0].block, got[5].block
    kv = ds.get(ikeys.block_key(bad))
    assert kv is not None
    saved = json.dumps(kv.value).encode()
    key = corrupt_block(ds, bad)
    with pytest.raises(GinghamError, match=key):
        h1.release_by_handle("a")
    assert block_of(ds, good).is_empty()
    handle = ds.get(ikeys.handle_key("a"))
    assert handle is not None and handle.value["releasing"] is True
    with pytest.raises(GinghamError):  # no new address joins a handle being released
        h1.allocate("a")
    ds.put_raw(key, saved)  # repaired: calling again finishes the job
    assert ips(h1.release_by_handle("a")) == {str(g.ip) for g in got if g.block == bad}
    assert ds.get(ikeys.handle_key("a")) is None
    assert all(b.used == 0 for b in list_blocks(ds))


@pytest.mark.parametrize("garbage", [b"nope", b'{"handle": "a", "blocks": "x"}',
                                     b'{"handle": "a", "blocks": {"bogus": 1}}',
                                     b'{"handle": "other", "blocks": {}}'])
def test_release_by_handle_with_an_unreadable_handle_searches_every_block(
        ds: Datastore, garbage: bytes) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    h1 = ipam(ds, "h1", max_blocks_per_host=2)
    got = h1.allocate("a", num_v4=6)
    keep = h1.allocate("keep")
    ds.put_raw(ikeys.handle_key("a"), garbage)
    assert ips(h1.release_by_handle("a")) == ips(got)
    assert ds.get(ikeys.handle_key("a")) is None
    assert sorted(str(ip) for b in list_blocks(ds) for ip in b.allocated_ips) == \
        sorted(ips(keep))


def test_an_unreadable_handle_is_not_written_over_by_an_allocation(ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    h1 = ipam(ds, "h1")
    [first] = h1.allocate("a")
    key = ikeys.handle_key("a")
    ds.put_raw(key, b"\x00\x01")
    before = raw(ds, key)
    with pytest.raises(GinghamError, match=key):
        h1.allocate("a")
    assert raw(ds, key) == before
    assert [str(ip) for b in list_blocks(ds) for ip in b.allocated_ips] == [str(first.ip)]
    h1.release([first])  # lowering a count in it is skipped, the address freed
    assert raw(ds, key) == before and list_blocks(ds)[0].used == 0


def test_ensure_spare_works_with_an_unreadable_block(ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/27", 29)
    h1 = ipam(ds, "h1")
    got = h1.allocate("a", num_v4=7)
    other = ipam(ds, "h2").allocate("b")[0].block
    corrupt_block(ds, other)
    claimed = h1.ensure_spare(min_free=4)
    assert claimed is not None and claimed not in {g.block for g in got} | {other}


# -- pools, reservations, configuration, nodes ------------------------------


@pytest.mark.parametrize("garbage", [
    b"{{{", b'{"kind": "IPPool", "metadata": {"name": "bad"}, "spec": "oops"}',
    b'{"kind": "IPPool", "metadata": {"name": "bad"}, "spec": {"cidr": 5}}',
    b'{"kind": "IPPool", "metadata": {"name": "bad"}, '
    b'"spec": {"cidr": "198.18.1.0/24", "blockSize": "26"}}',
    b'{"kind": "IPPool", "metadata": {"name": "bad"}, '
    b'"spec": {"cidr": "198.18.1.0/24", "allowedUses": "Workload"}}',
    b'{"kind": "Node", "metadata": {"name": "bad"}, "spec": {"cidr": "198.18.1.0/24"}}',
])
def test_an_unreadable_pool_is_skipped(ds: Datastore, garbage: bytes) -> None:
    put_pool(ds, "good", "198.18.0.0/28", 30)
    ds.put_raw(resource_key("IPPool", "bad"), garbage)
    got = ipam(ds, "h1").allocate("a", num_v4=3)
    assert all(g.ip in ipaddress.ip_network("198.18.0.0/28") for g in got)
    [u] = usage(ds)
    assert str(u.cidr) == "198.18.0.0/28" and u.in_use == 3


def test_a_pool_whose_selector_cannot_be_evaluated_is_skipped(ds: Datastore) -> None:
    put_pool(ds, "bad", "198.18.1.0/28", 30, nodeSelector="zone == ((")
    put_pool(ds, "good", "198.18.0.0/28", 30, nodeSelector="zone == 'a'")
    put_node(ds, "h1", {"zone": "a"})
    [got] = ipam(ds, "h1").allocate("a")
    assert got.ip in ipaddress.ip_network("198.18.0.0/28")


@pytest.mark.parametrize("garbage", [
    b"garbage", b'{"kind": "Node", "metadata": "x"}',
    b'{"kind": "Node", "metadata": {"name": "h1", "labels": ["zone"]}}'])
def test_an_unreadable_node_uses_only_pools_for_every_node(ds: Datastore,
                                                           garbage: bytes) -> None:
    put_pool(ds, "everyone", "198.18.0.0/28", 30)
    put_pool(ds, "not-b", "198.18.1.0/28", 30, nodeSelector="zone != 'b'")
    ds.put_raw(ikeys.NODES + "h1", garbage)
    got = ipam(ds, "h1").allocate("a", num_v4=5)
    # "zone != 'b'" matches a node without labels: unreadable labels are not "none"
    assert all(g.ip in ipaddress.ip_network("198.18.0.0/28") for g in got)


@pytest.mark.parametrize("garbage", [
    b"not json", b'{"kind": "IPReservation", "metadata": {"name": "r"}, "spec": "x"}',
    b'{"kind": "IPReservation", "metadata": {"name": "r"}, '
    b'"spec": {"reservedCIDRs": ["198.18.0.0/30", 5]}}'])
def test_an_unreadable_reservation_stops_allocation_naming_it(ds: Datastore,
                                                              garbage: bytes) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    put_reservation(ds, "r", ["198.18.0.0/30"])
    key = resource_key("IPReservation", "r")
    ds.put_raw(key, garbage)
    h1 = ipam(ds, "h1")
    for attempt in (lambda: h1.allocate("a"), lambda: h1.assign("198.18.0.1", "b")):
        with pytest.raises(GinghamError, match=key) as err:
            attempt()
        assert getattr(err.value, "key", None) == key
    assert list_blocks(ds) == [] and ds.list(ikeys.HANDLES)[0] == []
    # the views still work, and say what they left out
    assert [str(u.cidr) for u in usage(ds)] == ["198.18.0.0/28"]


@pytest.mark.parametrize(("global_doc", "host_doc", "expected"), [
    # the host's document is unreadable: strict, the limit from the global one
    (b'{"maxBlocksPerHost": 1}', b"junk", HostConfig(True, 1)),
    (b'{"maxBlocksPerHost": 1, "strictAffinity": false}', b"[]", HostConfig(True, 1)),
    # one field unreadable: that field only
    (b'{"maxBlocksPerHost": 1, "strictAffinity": "no"}', None, HostConfig(True, 1)),
    (b'{"maxBlocksPerHost": "x", "strictAffinity": false}', None, HostConfig(False, 20)),
    (b'{"maxBlocksPerHost": 3}', b'{"maxBlocksPerHost": -1}', HostConfig(False, 3)),
    # a readable per-host field wins over an unreadable global one
    (b"junk", b'{"strictAffinity": false, "maxBlocksPerHost": 1}', HostConfig(False, 1)),
])
def test_unreadable_configuration_falls_back_to_its_safe_side(
        ds: Datastore, global_doc: bytes, host_doc: bytes | None,
        expected: HostConfig) -> None:
    ds.put_raw(ikeys.CONFIG_GLOBAL, global_doc)
    if host_doc is not None:
        ds.put_raw(ikeys.host_config_key("h1"), host_doc)
    assert IPAM(ds, "h1").config() == expected


def test_unreadable_host_configuration_never_borrows(ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/29", 30)
    ds.create(ikeys.CONFIG_GLOBAL, {"maxBlocksPerHost": 1})
    ds.put_raw(ikeys.host_config_key("h1"), b"junk")
    h1 = IPAM(ds, "h1", rng=random.Random(1), cache_ttl=0)
    h1.allocate("a", num_v4=4)
    ipam(ds, "h2").allocate("b")  # room in h2's block
    with pytest.raises(PoolExhausted, match="strict affinity"):
        h1.allocate("c")


# -- views --------------------------------------------------------------------


def test_views_skip_an_unreadable_block(ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    [a] = ipam(ds, "h1").allocate("a")
    [b] = ipam(ds, "h2").allocate("b")
    doc = ds.get(ikeys.block_key(b.block)).value  # type: ignore[union-attr]
    key = corrupt_block(ds, b.block, json.dumps({**doc, "affinity": 5}).encode())
    assert [x.cidr for x in list_blocks(ds)] == [a.block]
    _infos, bad = scan_blocks(ds)
    assert [x.doc.key for x in bad] == [key] and bad[0].cidr == b.block
    assert "affinity" in bad[0].doc.reason
    [u] = usage(ds)
    assert (u.in_use, u.unreadable_blocks, u.unknown, u.free) == (1, 1, 4, 11)
    holder = who_holds(ds, a.ip)
    assert holder is not None and holder.handle == "a"
    elsewhere = next(ip for ip in ipaddress.ip_network("198.18.0.0/28")
                     if ip not in a.block and ip not in b.block)
    assert who_holds(ds, elsewhere) is None
    with pytest.raises(GinghamError, match=key):
        who_holds(ds, b.ip)


def test_each_unreadable_block_is_logged_once_per_revision(
        ds: Datastore, caplog: pytest.LogCaptureFixture) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    [b] = ipam(ds, "h2").allocate("b")
    key = corrupt_block(ds, b.block)
    with caplog.at_level(logging.WARNING, logger="gingham.ipam"):
        for _ in range(3):
            list_blocks(ds)
            ipam(ds, "h1").allocate(f"x{_}")
        assert [r.getMessage() for r in caplog.records].count(
            f"IPAM: skipping {key}: unreadable (not JSON (Expecting property name enclosed "
            "in double quotes at line 1 column 2)); no address in its range is handed out or "
            "released until it is repaired") == 1
        corrupt_block(ds, b.block, b"[]")  # a new revision is news
        list_blocks(ds)
        assert sum(key in r.getMessage() for r in caplog.records) == 2


# -- leak check -----------------------------------------------------------------


def _check_twice(ds: Datastore) -> Any:
    check(ds, now=1000.0, grace=GRACE)
    return check(ds, now=2000.0, grace=GRACE)


def test_check_reports_an_unreadable_block_as_a_problem_not_a_leak(ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    put_node(ds, "h1")
    [a] = ipam(ds, "h1").allocate("a", {"namespace": "ns", "workload": "w"})
    put_workload(ds, "ns", "w", "h1")
    [b] = ipam(ds, "h1").allocate("b", num_v4=4)[-1:]  # a second block
    assert b.block != a.block
    key = corrupt_block(ds, b.block)
    # the handle counts addresses it holds only in the unreadable block: it must
    # not look like it holds nothing (releasing it would hide them for good)
    ds.put_raw(ikeys.handle_key("b"),
               json.dumps({"handle": "b", "blocks": {str(b.block): 1}}).encode())
    report = _check_twice(ds)
    assert report.leaks == ()
    assert any(p.startswith(key) and "not JSON" in p for p in report.problems)


def test_stale_handle_finding_is_not_released_while_a_block_is_unreadable(
        ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    put_node(ds, "h1")
    h1 = ipam(ds, "h1", max_blocks_per_host=2)
    got = h1.allocate("x", num_v4=6)
    # a handle counting an address in a block it does not hold: a leak
    ds.create(ikeys.handle_key("ghost"), {"handle": "ghost", "blocks": {str(got[0].block): 1},
                                          "releasing": False})
    report = _check_twice(ds)
    assert [x.handle for x in report.leaks] == ["ghost"]
    corrupt_block(ds, got[5].block)  # now it might hold something there
    outcome = release_from_report(ds, report)
    assert outcome.released == [] and "cannot be read" in outcome.skipped[0]
    assert ds.get(ikeys.handle_key("ghost")) is not None


def test_address_whose_block_became_unreadable_is_skipped_on_release(ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    put_node(ds, "h1")
    h1 = ipam(ds, "h1", max_blocks_per_host=2)
    got = h1.allocate("gone", {"namespace": "ns", "workload": "w"}, num_v4=6)
    report = _check_twice(ds)
    assert len(report.leaks) == 6
    key = corrupt_block(ds, got[0].block)
    before = raw(ds, key)
    outcome = release_from_report(ds, report)
    assert sorted(outcome.released) == sorted(x.ident for x in report.leaks
                                              if x.cidr == str(got[5].block))
    assert len(outcome.skipped) == 4 and all(key in s for s in outcome.skipped)
    assert raw(ds, key) == before


@pytest.mark.parametrize("garbage", [b"{", b'{"kind": "WorkloadEndpoint", "metadata": 7}',
                                     b'{"metadata": {"name": "x"}, "spec": {"pod": ["w"]}}'])
def test_an_unreadable_workload_endpoint_never_makes_its_address_a_leak(
        ds: Datastore, garbage: bytes) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    put_node(ds, "h1")
    h1 = ipam(ds, "h1")
    [live] = h1.allocate("live", {"namespace": "ns", "workload": "w"})
    [other] = h1.allocate("other", {"namespace": "elsewhere", "workload": "gone"})
    put_workload(ds, "ns", "w", "h1")
    [wep] = ds.list(ikeys.WORKLOADS + "ns/")[0]
    ds.put_raw(wep.key, garbage)
    report = _check_twice(ds)
    assert [x.ip for x in report.leaks] == [str(other.ip)]  # other namespaces still checked
    assert any(p.startswith(wep.key) for p in report.problems)
    release_from_report(ds, report)
    holder = who_holds(ds, live.ip)
    assert holder is not None and holder.handle == "live"


def test_an_unreadable_pool_keeps_its_empty_blocks(ds: Datastore) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    put_node(ds, "h1")
    h1 = ipam(ds, "h1")
    h1.release_by_handle(h1.allocate("a")[0].handle)  # an empty block of a live host
    ds.put_raw(resource_key("IPPool", "p"), b"broken")
    report = _check_twice(ds)
    assert report.leaks == ()
    assert any("IPPool/p" in p for p in report.problems)


@pytest.mark.parametrize("garbage", [b"x", b'{"state": "confirmed", "since": "x"}',
                                     b'{"state": 5, "since": 0}'])
def test_an_unreadable_affinity_is_a_problem_and_left_alone(ds: Datastore,
                                                            garbage: bytes) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    put_node(ds, "h1")
    put_node(ds, "h2")
    [a] = ipam(ds, "h1").allocate("a")
    stray = ikeys.affinity_key("h2", a.block)  # a claim on h1's block
    ds.put_raw(stray, garbage)
    orphan = ikeys.affinity_key("h2", "198.18.0.8/30")  # a claim with no block
    ds.put_raw(orphan, garbage)
    ds.put_raw(ikeys.affinity_key("h1", a.block), garbage)  # h1's own claim
    report = _check_twice(ds)
    assert report.leaks == ()
    assert sum(p.startswith(ikeys.AFFINITY) for p in report.problems) == 3
    assert ds.get(stray) is not None and ds.get(orphan) is not None
    # h1 still uses its block (the block's affinity decides, not the claim document)
    assert ipam(ds, "h1").allocate("b")[0].block == a.block


@pytest.mark.parametrize("garbage", [b"zzz", b'{"seen": "x"}', b'{"seen": {"a": "b"}}'])
def test_an_unreadable_leakcheck_document_starts_sightings_over(ds: Datastore,
                                                                garbage: bytes) -> None:
    put_pool(ds, "p", "198.18.0.0/28", 30)
    ipam(ds, "gone").allocate("a")
    check(ds, now=1000.0, grace=GRACE)
    ds.put_raw(ikeys.LEAKCHECK, garbage)
    assert check(ds, now=2000.0, grace=GRACE).leaks == ()  # first sighting again
    assert len(check(ds, now=3000.0, grace=GRACE).leaks) == 1
