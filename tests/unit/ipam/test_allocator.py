"""The IPAM against a real sqlite store: order of allocation, limits, release."""

from __future__ import annotations

import ipaddress
import json
import random
import time

import pytest

from gingham.datastore.base import Datastore
from gingham.errors import AddressInUse, IPAMError, PoolExhausted
from gingham.ipam import IPAM, HostConfig, StaleSequence, list_blocks, usage, who_holds
from gingham.ipam import keys as ikeys
from gingham.ipam.block import Block
from tests.unit.ipam.helpers import put_node, put_pool, put_reservation


def ipam(ds: Datastore, host: str, **cfg: object) -> IPAM:
    return IPAM(ds, host, rng=random.Random(7), cache_ttl=0,
                config=HostConfig(**cfg) if cfg else None)  # type: ignore[arg-type]


def all_allocated(ds: Datastore) -> list[str]:
    return sorted(str(ip) for b in list_blocks(ds) for ip in b.allocated_ips)


def test_allocates_from_own_block_with_attributes(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/24", 28)
    a = ipam(sqlite_store, "h1")
    got = a.allocate("net.c1", {"namespace": "ns", "workload": "w1"}, num_v4=2)
    assert len({g.block for g in got}) == 1
    assert got[0].sequence != got[1].sequence
    holder = who_holds(sqlite_store, got[0].ip)
    assert holder is not None
    assert (holder.handle, holder.namespace, holder.workload, holder.host) == \
        ("net.c1", "ns", "w1", "h1")
    [info] = list_blocks(sqlite_store)
    assert info.host == "h1" and info.used == 2 and info.borrowed_by == ()
    aff = sqlite_store.get(ikeys.affinity_key("h1", info.cidr))
    assert aff is not None and aff.value["state"] == "confirmed"
    handle = sqlite_store.get(ikeys.handle_key("net.c1"))
    assert handle is not None and handle.value["blocks"] == {str(info.cidr): 2}


def test_reserved_addresses_are_never_handed_out(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/29", 29)
    put_reservation(sqlite_store, "r", ["198.18.0.0/31", "198.18.0.5"])
    a = ipam(sqlite_store, "h1")
    got = a.auto_assign("h", num_v4=5)
    assert sorted(str(i.ip) for i in got) == ["198.18.0.2", "198.18.0.3", "198.18.0.4",
                                              "198.18.0.6", "198.18.0.7"]
    assert got[0].network.prefixlen == 32
    with pytest.raises(PoolExhausted):
        a.auto_assign("h2")
    with pytest.raises(IPAMError, match="reserved"):
        a.assign("198.18.0.5", "h3")
    [u] = usage(sqlite_store)
    assert (u.total, u.in_use, u.reserved, u.free) == (8, 5, 3, 0)


def test_claims_then_borrows_then_exhausts(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/28", 30)  # four blocks of four
    h1 = ipam(sqlite_store, "h1", max_blocks_per_host=2)
    h2 = ipam(sqlite_store, "h2", max_blocks_per_host=2)
    h1.allocate("a", num_v4=8)  # fills two blocks
    assert len({b.cidr for b in list_blocks(sqlite_store) if b.host == "h1"}) == 2
    h2.allocate("b", num_v4=2)  # claims one of the rest
    h1.allocate("c", num_v4=1)  # at its limit: borrows from h2's block
    [h2block] = [b for b in list_blocks(sqlite_store) if b.host == "h2"]
    assert h2block.borrowed_by == ("h1",)
    h2.allocate("d", num_v4=5)  # its block (1 free) + the last block
    t0 = time.monotonic()
    with pytest.raises(PoolExhausted, match="no free IPv4 address for host h1"):
        h1.allocate("e")
    assert time.monotonic() - t0 < 2, "exhaustion must be quick, not a retry storm"
    assert len(all_allocated(sqlite_store)) == 16
    assert sqlite_store.get(ikeys.handle_key("e")) is None, "failed allocation left a handle"


def test_strict_affinity_refuses_to_borrow(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/29", 30)
    h1 = ipam(sqlite_store, "h1", max_blocks_per_host=1, strict_affinity=True)
    h2 = ipam(sqlite_store, "h2", max_blocks_per_host=1, strict_affinity=True)
    h1.allocate("a", num_v4=4)
    h2.allocate("b", num_v4=1)
    with pytest.raises(PoolExhausted, match="pool exhausted for this host h1"):
        h1.allocate("c")
    assert all_allocated(sqlite_store).count("198.18.0.5") == 0


def test_config_from_the_store(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/29", 30)
    sqlite_store.create(ikeys.CONFIG_GLOBAL, {"strictAffinity": True, "maxBlocksPerHost": 5})
    sqlite_store.create(ikeys.host_config_key("h1"), {"maxBlocksPerHost": 1})
    assert IPAM(sqlite_store, "h1").config() == HostConfig(True, 1)
    assert IPAM(sqlite_store, "h2").config() == HostConfig(True, 5)


def test_partial_allocation_is_given_back(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/30", 30)
    a = ipam(sqlite_store, "h1")
    with pytest.raises(PoolExhausted):
        a.allocate("big", num_v4=5)
    assert all_allocated(sqlite_store) == []
    assert sqlite_store.get(ikeys.handle_key("big")) is None


def test_dual_stack(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "v4", "198.18.0.0/24")
    put_pool(sqlite_store, "v6", "2001:db8:1::/112")
    a = ipam(sqlite_store, "h1")
    got = a.auto_assign("x", num_v4=1, num_v6=1)
    assert [i.version for i in got] == [4, 6]
    assert got[1].network.prefixlen == 128
    blocks = {b.cidr.prefixlen for b in list_blocks(sqlite_store)}
    assert blocks == {26, 122}
    assert a.release_by_handle("x") == [got[0].ip, got[1].ip]


def test_requested_address(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/24", 26)
    a = ipam(sqlite_store, "h1")
    b = ipam(sqlite_store, "h2")
    got = a.assign("198.18.0.77", "x", {"namespace": "ns", "workload": "w"})
    assert str(got.ip) == "198.18.0.77" and str(got.block) == "198.18.0.64/26"
    with pytest.raises(AddressInUse, match="held by handle x"):
        b.assign("198.18.0.77", "y")
    b.assign("198.18.0.78", "y")  # borrowing a specific address of h1's block works
    with pytest.raises(IPAMError, match="in no IP pool"):
        a.assign("198.19.0.1", "z")
    assert sqlite_store.get(ikeys.handle_key("y")) is not None


def test_release_by_address_checks_sequence(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/30", 30)
    a = ipam(sqlite_store, "h1")
    [first] = a.allocate("one")
    assert a.release([first]) == [first.ip]
    assert a.release([first]) == []  # already free: nothing to do
    others = a.allocate("two", num_v4=4)  # takes the freed address again, last
    again = next(o for o in others if o.ip == first.ip)
    assert again.sequence != first.sequence
    with pytest.raises(StaleSequence):
        a.release([first])
    assert str(first.ip) in all_allocated(sqlite_store)
    with pytest.raises(StaleSequence):
        a.release_ips([first.ip], handle="one")
    assert a.release_ips([first.ip]) == [first.ip]
    h = sqlite_store.get(ikeys.handle_key("two"))
    assert h is not None and sum(h.value["blocks"].values()) == 3


def test_release_by_handle_spans_blocks_and_is_final(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/28", 30)
    a = ipam(sqlite_store, "h1")
    got = a.allocate("multi", num_v4=6)
    assert len({g.block for g in got}) == 2
    freed = a.release_by_handle("multi")
    assert sorted(freed) == sorted(g.ip for g in got)
    assert all_allocated(sqlite_store) == []
    assert sqlite_store.get(ikeys.handle_key("multi")) is None
    assert a.release_by_handle("multi") == []


def test_interrupted_release_by_handle_finishes_and_blocks_new_allocations(
        sqlite_store: Datastore) -> None:
    from gingham.ipam import handles

    put_pool(sqlite_store, "p", "198.18.0.0/28", 30)
    a = ipam(sqlite_store, "h1")
    a.allocate("x", num_v4=2)
    handles.mark_releasing(sqlite_store, a.backoff, "x")  # a release that died here
    with pytest.raises(handles.HandleReleasing):
        a.allocate("x")
    assert len(a.release_by_handle("x")) == 2
    assert all_allocated(sqlite_store) == []


def test_node_selector_and_disabled_pools(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "a", "198.18.1.0/24", nodeSelector="zone == 'a'")
    put_pool(sqlite_store, "b", "198.18.2.0/24", nodeSelector="zone == 'b'")
    put_pool(sqlite_store, "off", "198.18.3.0/24", disabled=True)
    put_node(sqlite_store, "ha", {"zone": "a"})
    put_node(sqlite_store, "hb", {"zone": "b"})
    [ip_a] = ipam(sqlite_store, "ha").auto_assign("x")
    [ip_b] = ipam(sqlite_store, "hb").auto_assign("y")
    assert ip_a.ip in ipaddress.ip_network("198.18.1.0/24")
    assert ip_b.ip in ipaddress.ip_network("198.18.2.0/24")
    with pytest.raises(PoolExhausted, match="no enabled IPv4 pool for Workload use matches host hc"):
        ipam(sqlite_store, "hc").auto_assign("z")
    with pytest.raises(IPAMError, match="disabled"):
        ipam(sqlite_store, "ha").auto_assign("z", pool_cidrs=["198.18.3.0/24"])
    # disabling a pool strands nothing: its addresses still release
    put_pool(sqlite_store, "a", "198.18.1.0/24", disabled=True)
    assert ipam(sqlite_store, "ha").release_by_handle("x") == [ip_a.ip]


def test_changing_block_size_never_overlaps_old_blocks(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/27", 28)
    a = ipam(sqlite_store, "h1")
    old = a.allocate("old", num_v4=1)
    put_pool(sqlite_store, "p", "198.18.0.0/27", 30)
    new = a.allocate("new", num_v4=12)
    nets = [b.cidr for b in list_blocks(sqlite_store)]
    for i, n in enumerate(nets):
        for m in nets[i + 1:]:
            assert not n.overlaps(m), (n, m)
    assert len({g.ip for g in old + new}) == 13
    assert a.release(old) == [old[0].ip]  # still found in its old /28


class RivalStore:
    """Before every block write, a rival host allocates: forces real CAS conflicts."""

    def __init__(self, ds: Datastore) -> None:
        self.ds = ds
        self.rival = IPAM(ds, "rival", rng=random.Random(3), cache_ttl=0)
        self.busy = False
        self.rival_got: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.ds, name)

    def _race(self, keys: object) -> None:
        if any(str(k).startswith(ikeys.BLOCKS) for k in keys) and not self.busy \
                and len(self.rival_got) < 6:
            self.busy = True
            try:
                self.rival_got += [str(i.ip) for i in self.rival.auto_assign(
                    f"rival{len(self.rival_got)}")]
            finally:
                self.busy = False

    def update(self, key: str, value: dict, *, revision: int, lease: int = 0) -> int:
        self._race([key])
        return self.ds.update(key, value, revision=revision, lease=lease)

    def txn(self, compares: dict, puts: dict | None = None, deletes: tuple = ()) -> object:
        self._race(list(puts or {}))
        return self.ds.txn(compares, puts, deletes)


def test_lost_races_are_retried_without_double_allocation(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/29", 29)
    rs = RivalStore(sqlite_store)
    a = IPAM(rs, "h1", rng=random.Random(1), cache_ttl=0)  # type: ignore[arg-type]
    mine = [str(i.ip) for i in a.auto_assign("mine", num_v4=2)]
    assert rs.rival_got, "the rival never raced"
    assert not set(mine) & set(rs.rival_got)
    assert sorted(mine + rs.rival_got) == all_allocated(sqlite_store)
    for kv in sqlite_store.list(ikeys.BLOCKS)[0]:
        assert Block.from_json(kv.value).problems() == []


class SizeRaceStore:
    """Just before our block is created, another host creates an overlapping
    block of another size (its view of the pool's blockSize was different)."""

    def __init__(self, ds: Datastore) -> None:
        self.ds = ds
        self.done = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.ds, name)

    def create(self, key: str, value: dict, *, lease: int = 0) -> int:
        if key.startswith(ikeys.BLOCKS) and not self.done:
            self.done = True
            IPAM(self.ds, "other", cache_ttl=0).claim(ipaddress.ip_network("198.18.0.0/28"))
        return self.ds.create(key, value, lease=lease)


def test_racing_claims_of_different_block_sizes_never_overlap(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/28", 30)
    a = IPAM(SizeRaceStore(sqlite_store), "h1", rng=random.Random(2),  # type: ignore[arg-type]
             cache_ttl=0, config=HostConfig(max_blocks_per_host=1))
    [got] = a.allocate("x")  # its own claim yields; it borrows from the /28 instead
    nets = [b.cidr for b in list_blocks(sqlite_store)]
    assert [str(n) for n in nets] == ["198.18.0.0/28"]
    assert got.block == nets[0]
    assert [kv.key for kv in sqlite_store.list(ikeys.AFFINITY)[0]] == \
        [ikeys.affinity_key("other", "198.18.0.0/28")]


def test_allowed_uses_and_manual_pools(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "tunnels", "198.18.1.0/24", allowedUses=["Tunnel"])
    put_pool(sqlite_store, "manual", "198.18.2.0/24", assignmentMode="Manual")
    put_pool(sqlite_store, "work", "198.18.3.0/24")
    a = ipam(sqlite_store, "h1")
    [w] = a.auto_assign("w")
    assert w.ip in ipaddress.ip_network("198.18.3.0/24")
    [m] = a.auto_assign("m", pool_cidrs=["198.18.2.0/24"])
    assert m.ip in ipaddress.ip_network("198.18.2.0/24")
    with pytest.raises(IPAMError, match="does not allow Workload use"):
        a.auto_assign("x", pool_cidrs=["198.18.1.0/24"])
    got = {a.auto_assign(f"t{i}", use="Tunnel")[0].ip for i in range(3)}
    assert all(ip in ipaddress.ip_network("198.18.1.0/24")
               or ip in ipaddress.ip_network("198.18.3.0/24") for ip in got)


def test_pool_from_model_matches_pool_from_resource() -> None:
    model = pytest.importorskip("gingham.model")
    from gingham.ipam import pool_from_model, pool_from_resource

    doc = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "p"},
           "spec": {"cidr": "2001:db8:5::/112", "nodeSelector": "zone == 'a'",
                    "vxlanMode": "CrossSubnet", "natOutgoing": True,
                    "allowedUses": ["Workload"], "assignmentMode": "Manual"}}
    [pool] = model.load_manifests(json.dumps(doc))
    assert pool_from_model(pool) == pool_from_resource(doc)
    assert pool_from_model(pool).block_size == 122


def test_strict_affinity_failure_gives_back_the_partial_allocation(
        sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/28", 29)
    a = ipam(sqlite_store, "h1", max_blocks_per_host=1, strict_affinity=True)
    a.allocate("first", num_v4=5)
    with pytest.raises(PoolExhausted, match="pool exhausted for this host"):
        a.allocate("second", num_v4=4)  # 3 fit in its block; the 4th would need a borrow
    assert len(all_allocated(sqlite_store)) == 5
    assert sqlite_store.get(ikeys.handle_key("second")) is None


def test_handle_stuck_releasing_goes_away_with_its_last_address(sqlite_store: Datastore) -> None:
    from gingham.ipam import handles

    put_pool(sqlite_store, "p", "198.18.0.0/28", 30)
    a = ipam(sqlite_store, "h1")
    got = a.allocate("x", num_v4=2)
    handles.mark_releasing(sqlite_store, a.backoff, "x")  # a DEL that died and never came back
    a.release(got)  # e.g. by the leak check, address by address
    assert sqlite_store.get(ikeys.handle_key("x")) is None
    assert len(a.allocate("x")) == 1  # the handle is usable again


def test_deleting_a_pool_strands_nothing(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/28", 30)
    a = ipam(sqlite_store, "h1")
    one = a.allocate("one", num_v4=2)
    two = a.allocate("two")
    sqlite_store.delete("/gingham/v1/resources/IPPool/p")
    with pytest.raises(PoolExhausted):
        a.allocate("three")  # no pool: nothing new from the old blocks
    assert sorted(a.release_by_handle("one")) == sorted(g.ip for g in one)
    assert a.release(two) == [two[0].ip]
    assert all_allocated(sqlite_store) == []


def test_addresses_freed_by_others_are_reused_before_claiming(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/28", 30)
    a = IPAM(sqlite_store, "h1", rng=random.Random(4), cache_ttl=60.0)  # long-lived, cached
    got = a.allocate("x", num_v4=4)  # fills its first block
    other = IPAM(sqlite_store, "h1", cache_ttl=0)  # e.g. another CNI process on the host
    other.release(got[:1])
    [again] = a.allocate("y")
    assert again.ip == got[0].ip and len(list_blocks(sqlite_store)) == 1


# -- allocate_within: a Docker network's --subnet / --ip-range ------------------------


def test_allocate_within_stays_in_a_range_smaller_than_a_block(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/16", 26)
    a = ipam(sqlite_store, "h1")
    within = ipaddress.ip_network("198.18.7.16/29")
    got = [a.allocate_within(f"d.{i}", within) for i in range(8)]
    assert sorted(str(g.ip) for g in got) == [str(ip) for ip in within]
    # one block claimed for it (the one holding the range), not a random one
    assert [str(b.cidr) for b in list_blocks(sqlite_store)] == ["198.18.7.0/26"]
    with pytest.raises(PoolExhausted):
        a.allocate_within("d.full", within)
    # the rest of the pool still serves ordinary requests
    assert a.allocate("w", num_v4=1)[0].ip not in within


def test_allocate_within_a_range_of_blocks_claims_only_those(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/16", 28)
    a = ipam(sqlite_store, "h1")
    within = ipaddress.ip_network("198.18.200.0/26")
    got = [a.allocate_within(f"d.{i}", within) for i in range(40)]
    assert all(g.ip in within for g in got)
    assert all(b.cidr.subnet_of(within) for b in list_blocks(sqlite_store))  # type: ignore[arg-type]


def test_allocate_within_refuses_ranges_outside_pools_and_disabled_pools(
        sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "p", "198.18.0.0/24", 28)
    put_pool(sqlite_store, "off", "198.19.0.0/24", 28, disabled=True)
    a = ipam(sqlite_store, "h1")
    with pytest.raises(IPAMError, match="no IP pool"):
        a.allocate_within("d", ipaddress.ip_network("203.0.113.0/28"))
    with pytest.raises(IPAMError, match="disabled"):
        a.allocate_within("d", ipaddress.ip_network("198.19.0.0/28"))
    assert all_allocated(sqlite_store) == []
