"""Leak check on sqlite: seen twice with a grace period, re-verified on release."""

from __future__ import annotations

import ipaddress
import random

from gingham.datastore.base import Datastore
from gingham.ipam import IPAM, LeakReport, check, list_blocks, release_from_report
from gingham.ipam import keys as ikeys
from gingham.ipam.block import Block, host_affinity
from tests.unit.ipam.helpers import put_node, put_pool, put_workload

GRACE = 60.0


def ipam(ds: Datastore, host: str) -> IPAM:
    return IPAM(ds, host, rng=random.Random(5), cache_ttl=0)


def test_workload_gone_is_reported_only_when_seen_twice_after_grace(
        sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/24", 28)
    put_node(sqlite_store, "h1")
    a = ipam(sqlite_store, "h1")
    [live] = a.allocate("live", {"namespace": "ns", "workload": "w1"})
    [dead] = a.allocate("dead", {"namespace": "ns", "workload": "w2"})
    put_workload(sqlite_store, "ns", "w1", "h1")

    first = check(sqlite_store, now=1000.0, grace=GRACE)
    assert first.leaks == () and first.pending == 1
    early = check(sqlite_store, now=1030.0, grace=GRACE)
    assert early.leaks == () and early.pending == 1
    report = check(sqlite_store, now=1061.0, grace=GRACE)
    [leak] = report.leaks
    assert (leak.kind, leak.ip, leak.handle, leak.first_seen) == \
        ("address", str(dead.ip), "dead", 1000.0)
    assert "workload ns/w2 is gone" in leak.reason

    # a report survives a trip through JSON (the CLI writes it to a file)
    again = LeakReport.from_json(report.to_json())
    out = release_from_report(sqlite_store, again)
    assert out.released == [leak.ident] and out.skipped == []
    assert [str(ip) for b in list_blocks(sqlite_store) for ip in b.allocated_ips] == [str(live.ip)]
    assert sqlite_store.get(ikeys.handle_key("dead")) is None


def test_finding_that_disappears_starts_over(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/24", 28)
    put_node(sqlite_store, "h1")
    ipam(sqlite_store, "h1").allocate("x", {"namespace": "ns", "workload": "w"})
    check(sqlite_store, now=0.0, grace=GRACE)
    put_workload(sqlite_store, "ns", "w", "h1")  # the endpoint shows up late: no leak
    assert check(sqlite_store, now=100.0, grace=GRACE).pending == 0
    sqlite_store.delete(sqlite_store.list(ikeys.WORKLOADS)[0][0].key)
    assert check(sqlite_store, now=200.0, grace=GRACE).leaks == ()  # first sighting again
    assert len(check(sqlite_store, now=300.0, grace=GRACE).leaks) == 1


def test_release_from_stale_report_skips_reallocated_address(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/30", 30)
    put_node(sqlite_store, "h1")
    a = ipam(sqlite_store, "h1")
    [old] = a.allocate("old", {"namespace": "ns", "workload": "gone"})
    check(sqlite_store, now=0.0, grace=GRACE)
    report = check(sqlite_store, now=100.0, grace=GRACE)
    assert len(report.leaks) == 1
    a.release([old])  # released by its owner meanwhile...
    a.allocate("filler", num_v4=3)
    [new] = a.allocate("new", {"namespace": "ns", "workload": "gone"})  # ...and handed out again
    assert new.ip == old.ip
    out = release_from_report(sqlite_store, report)
    assert out.released == [] and "re-allocated" in out.skipped[0]
    assert any(new.ip in b.allocated_ips for b in list_blocks(sqlite_store))


def test_host_dying_mid_claim_leaves_nothing_behind(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/28", 30)
    put_node(sqlite_store, "live")
    # host "dead" died after step 1 of a claim (pending affinity, no block) ...
    sqlite_store.create(ikeys.affinity_key("dead", "198.18.0.0/30"),
                        {"state": "pending", "since": 0.0})
    # ... and after step 2 of another (block created, affinity still pending)
    sqlite_store.create(ikeys.affinity_key("dead", "198.18.0.4/30"),
                        {"state": "pending", "since": 0.0})
    sqlite_store.create(ikeys.block_key("198.18.0.4/30"),
                        Block.new("198.18.0.4/30", host_affinity("dead")).to_json())
    # it also had a confirmed block with one address borrowed by a live host
    ipam(sqlite_store, "dead").claim(ipaddress.ip_network("198.18.0.8/30"))
    borrowed = ipam(sqlite_store, "live").assign("198.18.0.9", "b")

    check(sqlite_store, now=100.0, grace=GRACE)
    report = check(sqlite_store, now=200.0, grace=GRACE)
    kinds = sorted((x.kind, x.cidr) for x in report.leaks)
    assert kinds == [("affinity", "198.18.0.0/30"), ("block", "198.18.0.4/30")]
    out = release_from_report(sqlite_store, report)
    assert len(out.released) == 2, out
    left = {kv.key for kv in sqlite_store.list(ikeys.IPAM)[0]}
    assert ikeys.affinity_key("dead", "198.18.0.0/30") not in left
    assert ikeys.affinity_key("dead", "198.18.0.4/30") not in left
    assert ikeys.block_key("198.18.0.4/30") not in left
    # the block still holding a live host's address stays, with its routing owner
    assert ikeys.block_key("198.18.0.8/30") in left

    ipam(sqlite_store, "live").release([borrowed])
    check(sqlite_store, now=300.0, grace=GRACE)
    report = check(sqlite_store, now=400.0, grace=GRACE)
    assert [(x.kind, x.cidr) for x in report.leaks] == [("block", "198.18.0.8/30")]
    release_from_report(sqlite_store, report)
    left = {kv.key for kv in sqlite_store.list(ikeys.IPAM)[0]}
    assert not any(k.startswith((ikeys.BLOCKS, ikeys.AFFINITY)) for k in left), left
    # the pool is whole again: a new host can claim every block
    got = ipam(sqlite_store, "live").allocate("all", num_v4=16)
    assert len(got) == 16


def test_host_gone_releases_its_addresses(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/28", 30)
    ipam(sqlite_store, "gone").allocate("g", {"namespace": "ns", "workload": "w"}, num_v4=2)
    check(sqlite_store, now=0.0, grace=GRACE)
    report = check(sqlite_store, now=100.0, grace=GRACE)
    assert sorted(x.kind for x in report.leaks) == ["address", "address"]
    assert all("host gone is gone" in x.reason for x in report.leaks)
    # the host comes back before release: nothing is touched
    put_node(sqlite_store, "gone")
    put_workload(sqlite_store, "ns", "w", "gone")
    out = release_from_report(sqlite_store, report)
    assert out.released == [] and len(out.skipped) == 2


def test_handle_left_by_a_crash_between_handle_and_block_write(sqlite_store: Datastore) -> None:
    from gingham.ipam import handles

    put_pool(sqlite_store, "p", "198.18.0.0/28", 30)
    put_node(sqlite_store, "h1")
    a = ipam(sqlite_store, "h1")
    a.allocate("real", {"namespace": "", "workload": ""})
    handles.add(sqlite_store, a.backoff, "ghost", "198.18.0.0/30", 1)  # then the crash
    check(sqlite_store, now=0.0, grace=GRACE)
    report = check(sqlite_store, now=100.0, grace=GRACE)
    [leak] = report.leaks
    assert (leak.kind, leak.handle) == ("handle", "ghost")
    out = release_from_report(sqlite_store, LeakReport.from_json(report.to_json()))
    assert out.released == [leak.ident]
    assert sqlite_store.get(ikeys.handle_key("ghost")) is None
    assert sqlite_store.get(ikeys.handle_key("real")) is not None


def test_empty_blocks_return_when_selector_stops_matching_or_pool_goes(
        sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "a", "198.18.1.0/28", 30, nodeSelector="zone == 'a'")
    put_pool(sqlite_store, "b", "198.18.2.0/28", 30)
    put_node(sqlite_store, "h1", {"zone": "a"})
    a = ipam(sqlite_store, "h1")
    [x] = a.allocate("x", pool_cidrs=["198.18.1.0/28"])
    [y] = a.allocate("y", pool_cidrs=["198.18.2.0/28"])
    a.allocate("keep", pool_cidrs=["198.18.1.0/28"])
    a.release_by_handle("x")
    a.release_by_handle("y")
    check(sqlite_store, now=0.0, grace=GRACE)
    assert check(sqlite_store, now=100.0, grace=GRACE).leaks == ()  # all still wanted

    # the host moves to zone b: its pool-a block is not empty, so it stays
    sqlite_store.update(ikeys.NODES + "h1", {"kind": "Node", "metadata": {
        "name": "h1", "labels": {"zone": "b"}}},
        revision=sqlite_store.get(ikeys.NODES + "h1").mod_revision)  # type: ignore[union-attr]
    sqlite_store.delete("/gingham/v1/resources/IPPool/b")  # and pool b is deleted
    check(sqlite_store, now=200.0, grace=GRACE)
    report = check(sqlite_store, now=300.0, grace=GRACE)
    assert [(x.kind, x.cidr) for x in report.leaks] == [("block", str(y.block))]
    assert "outside every pool" in report.leaks[0].reason
    release_from_report(sqlite_store, report)
    a.release_by_handle("keep")
    check(sqlite_store, now=400.0, grace=GRACE)
    report = check(sqlite_store, now=500.0, grace=GRACE)
    [leak] = report.leaks
    assert leak.cidr == str(x.block) and "no longer matches the nodeSelector" in leak.reason
    assert release_from_report(sqlite_store, report).released == [leak.ident]
    assert list_blocks(sqlite_store) == []


def test_allocations_without_namespace_live_as_long_as_their_host(
        sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/28", 30)
    put_node(sqlite_store, "h1")
    # what the agent does for its VXLAN tunnel address
    ipam(sqlite_store, "h1").allocate("vxlan-tunnel-addr-h1",
                                      {"namespace": "", "workload": "vxlan-tunnel"})
    check(sqlite_store, now=0.0, grace=GRACE)
    assert check(sqlite_store, now=100.0, grace=GRACE).leaks == ()
    sqlite_store.delete(ikeys.NODES + "h1")
    check(sqlite_store, now=200.0, grace=GRACE)
    [leak] = check(sqlite_store, now=300.0, grace=GRACE).leaks
    assert leak.reason == "host h1 is gone"
