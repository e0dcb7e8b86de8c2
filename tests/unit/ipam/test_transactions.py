"""Allocations and releases write their block and handle in one datastore transaction.

Run on every backend (sqlite, etcd, memory): the ``store`` fixture.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore.base import Datastore, TxnResult
from gingham.errors import Unavailable
from gingham.ipam import IPAM, HostConfig, list_blocks
from gingham.ipam import keys as ikeys
from tests.fixtures.datastore import ALL_BACKENDS, backend_url
from tests.unit.ipam.helpers import put_pool


@pytest.fixture(params=ALL_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from backend_url(request, tmp_path)


class Recording:
    """Records every write call; can fail a transaction before or after it commits."""

    def __init__(self, ds: Datastore) -> None:
        self.ds = ds
        self.writes: list[tuple[str, list[str]]] = []
        self.fail: str = ""  # "before", "after", or "retried" (committed, reported failed)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.ds, name)
        if name in ("create", "update", "delete", "put_raw"):
            def write(key: str, *a: Any, **kw: Any) -> Any:
                self.writes.append((name, [key]))
                return attr(key, *a, **kw)
            return write
        return attr

    def txn(self, compares: Mapping[str, int], puts: Mapping[str, Any] | None = None,
            deletes: Any = ()) -> TxnResult:
        deletes = list(deletes)
        self.writes.append(("txn", sorted([*(puts or {}), *deletes])))
        fail, self.fail = self.fail, ""
        if fail == "before":
            raise Unavailable("injected: the request never arrived")
        res = self.ds.txn(compares, puts, deletes)
        if fail == "after":
            raise Unavailable("injected: committed, but the answer was lost")
        if fail == "retried" and res.succeeded:
            # What etcd answers a request that committed and was sent again.
            now = {k: self.ds.get(k) for k in compares}
            return TxnResult(False, res.revision, current=now)
        return res


def ipam(ds: Any, host: str = "h1") -> IPAM:
    return IPAM(ds, host, rng=random.Random(5), cache_ttl=60,
                config=HostConfig(max_blocks_per_host=4))


def held(ds: Datastore) -> list[str]:
    return sorted(str(ip) for b in list_blocks(ds) for ip in b.allocated_ips)


def counts(ds: Datastore, handle: str) -> dict[str, int] | None:
    kv = ds.get(ikeys.handle_key(handle))
    return None if kv is None else dict(kv.value["blocks"])


def test_an_allocation_is_one_transaction_of_block_and_handle(store: Datastore) -> None:
    put_pool(store, "p", "198.18.0.0/24", 26)
    rec = Recording(store)
    a = ipam(rec)
    a.allocate("warm")  # claims the block
    rec.writes.clear()
    for i in range(5):
        [got] = a.allocate(f"c{i}", {"namespace": "ns", "workload": f"w{i}"})
        block_key = ikeys.block_key(got.block)
        assert rec.writes == [("txn", sorted([ikeys.handle_key(f"c{i}"), block_key]))]
        assert counts(store, f"c{i}") == {str(got.block): 1}
        rec.writes.clear()
    # two addresses: still one transaction
    got = a.allocate("two", num_v4=2)
    assert rec.writes == [("txn", sorted([ikeys.handle_key("two"),
                                          ikeys.block_key(got[0].block)]))]
    assert counts(store, "two") == {str(got[0].block): 2}


def test_a_release_is_one_transaction(store: Datastore) -> None:
    put_pool(store, "p", "198.18.0.0/24", 26)
    rec = Recording(store)
    a = ipam(rec)
    one = a.allocate("one", num_v4=2)
    a.allocate("two")
    rec.writes.clear()
    assert a.release(one[:1]) == [one[0].ip]
    key = ikeys.block_key(one[0].block)
    assert rec.writes == [("txn", sorted([ikeys.handle_key("one"), key]))]
    assert counts(store, "one") == {str(one[0].block): 1}
    rec.writes.clear()
    assert a.release_by_handle("one") == [one[1].ip]
    assert rec.writes == [("txn", sorted([ikeys.handle_key("one"), key]))]
    assert counts(store, "one") is None
    assert len(held(store)) == 1


def test_a_transaction_that_never_arrived_leaves_nothing(store: Datastore) -> None:
    put_pool(store, "p", "198.18.0.0/24", 26)
    rec = Recording(store)
    a = ipam(rec)
    a.allocate("warm")
    before = held(store)
    rec.fail = "before"
    with pytest.raises(Unavailable):
        a.allocate("lost")
    assert held(store) == before
    assert counts(store, "lost") is None
    [again] = a.allocate("lost")  # the runtime's retry
    assert counts(store, "lost") == {str(again.block): 1}


def test_a_committed_transaction_whose_answer_was_lost_is_found_by_its_handle(
    store: Datastore,
) -> None:
    put_pool(store, "p", "198.18.0.0/24", 26)
    rec = Recording(store)
    a = ipam(rec)
    a.allocate("warm")
    before = held(store)
    rec.fail = "after"
    with pytest.raises(Unavailable):
        a.allocate("gone")
    assert len(held(store)) == len(before) + 1  # it did commit: block and handle together
    [(_block, n)] = (counts(store, "gone") or {}).items()
    assert n == 1
    assert len(a.release_by_handle("gone")) == 1  # the runtime's DEL finds it
    assert held(store) == before


def test_a_retried_request_that_had_committed_counts_once(store: Datastore) -> None:
    """etcd may answer "failed" to a request it had committed before a retry: the
    allocation recognises its own write and takes no second address."""
    put_pool(store, "p", "198.18.0.0/24", 26)
    rec = Recording(store)
    a = ipam(rec)
    a.allocate("warm")
    before = held(store)
    rec.fail = "retried"
    [got] = a.allocate("once")
    assert held(store) == sorted([*before, str(got.ip)])
    assert counts(store, "once") == {str(got.block): 1}
    rec.fail = "retried"
    assert a.release_by_handle("once") == [got.ip]
    assert held(store) == before and counts(store, "once") is None
