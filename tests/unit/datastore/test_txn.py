"""``Datastore.txn``: several keys compared and written at once, all or nothing, on
every backend (the ``store`` fixture here covers sqlite, etcd and memory)."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gingham.datastore import Datastore, EventType, WatchEvent, open_datastore
from gingham.datastore.base import MAX_TXN_KEYS
from gingham.errors import ValidationError
from tests.fixtures.datastore import ALL_BACKENDS, backend_url


@pytest.fixture(params=ALL_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from backend_url(request, tmp_path)


def collect(watch, want: int, timeout: float = 5.0) -> list[WatchEvent]:  # type: ignore[no-untyped-def]
    events: list[WatchEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < want and time.monotonic() < deadline:
        events.extend(watch.next_batch(0.2))
    return events


def test_writes_every_key_when_every_compare_holds(store: Datastore) -> None:
    ra = store.create("/t/x/a", {"v": 1})
    before = store.revision()
    res = store.txn({"/t/x/a": ra, "/t/x/b": 0}, {"/t/x/a": {"v": 2}, "/t/x/b": {"v": 3}})
    assert res.succeeded and res.current == {}
    assert set(res.revisions) == {"/t/x/a", "/t/x/b"}
    assert all(before < r <= res.revision for r in res.revisions.values())
    assert res.revision == store.revision()
    a, b = store.get("/t/x/a"), store.get("/t/x/b")
    assert a is not None and b is not None
    assert (a.value, a.mod_revision, a.create_revision) == ({"v": 2}, res.revisions["/t/x/a"], ra)
    assert (b.value, b.mod_revision, b.create_revision) == ({"v": 3}, res.revisions["/t/x/b"],
                                                            res.revisions["/t/x/b"])


def test_one_failed_compare_writes_nothing_and_says_what_is_there(store: Datastore) -> None:
    ra = store.create("/t/x/a", {"v": 1})
    rb = store.create("/t/x/b", {"v": 1})
    rb2 = store.update("/t/x/b", {"v": 2}, revision=rb)
    before = store.revision()
    # a at its revision, b at a stale one, c expected absent (it is): nothing is written
    res = store.txn({"/t/x/a": ra, "/t/x/b": rb, "/t/x/c": 0},
                    {"/t/x/a": {"v": 9}, "/t/x/c": {"v": 9}}, ["/t/x/b"])
    assert not res.succeeded and res.revisions == {}
    assert res.revision == before == store.revision()
    assert set(res.current) == {"/t/x/a", "/t/x/b", "/t/x/c"}
    cur_a, cur_b = res.current["/t/x/a"], res.current["/t/x/b"]
    assert cur_a is not None and (cur_a.value, cur_a.mod_revision) == ({"v": 1}, ra)
    assert cur_b is not None and (cur_b.value, cur_b.mod_revision) == ({"v": 2}, rb2)
    assert res.current["/t/x/c"] is None
    assert store.get("/t/x/c") is None
    kv = store.get("/t/x/a")
    assert kv is not None and kv.value == {"v": 1}


def test_absent_means_absent(store: Datastore) -> None:
    store.create("/t/x/a", {"v": 1})
    res = store.txn({"/t/x/a": 0}, {"/t/x/a": {"v": 2}})
    assert not res.succeeded
    kv = res.current["/t/x/a"]
    assert kv is not None and kv.value == {"v": 1}
    # and a revision means present: a key deleted since does not compare equal
    rb = store.create("/t/x/b", {"v": 1})
    store.delete("/t/x/b")
    res = store.txn({"/t/x/b": rb}, {"/t/x/b": {"v": 2}})
    assert not res.succeeded and res.current == {"/t/x/b": None}
    assert store.get("/t/x/b") is None


def test_deletes_and_unconditional_writes(store: Datastore) -> None:
    ra = store.create("/t/x/a", {"v": 1})
    store.create("/t/x/b", {"v": 1})
    start = store.revision() + 1
    with store.watch("/t/x/", start_revision=start) as watch:
        # b is written without being compared; deleting the absent c is no write
        res = store.txn({"/t/x/a": ra}, {"/t/x/b": {"v": 2}}, ["/t/x/a", "/t/x/c"])
        assert res.succeeded
        events = collect(watch, 2)
        assert watch.next_batch(0.3) == []
    assert store.get("/t/x/a") is None
    kv = store.get("/t/x/b")
    assert kv is not None and kv.value == {"v": 2}
    assert sorted((e.key, e.type.value) for e in events) == [
        ("/t/x/a", EventType.DELETE.value), ("/t/x/b", EventType.PUT.value)]
    assert all(start <= e.revision <= res.revision for e in events)
    assert [e.revision for e in events] == sorted(e.revision for e in events)


def test_a_transaction_of_compares_only_writes_nothing(store: Datastore) -> None:
    ra = store.create("/t/x/a", {"v": 1})
    before = store.revision()
    assert store.txn({"/t/x/a": ra, "/t/x/none": 0}).succeeded
    assert store.revision() == before
    assert not store.txn({"/t/x/a": ra + 1}).succeeded


def test_a_put_drops_the_lease(store: Datastore) -> None:
    lease = store.grant_lease(30)
    rev = store.create("/t/x/l", {"v": 1}, lease=lease)
    assert store.txn({"/t/x/l": rev}, {"/t/x/l": {"v": 2}}).succeeded
    kv = store.get("/t/x/l")
    assert kv is not None and kv.lease == 0
    store.revoke_lease(lease)
    assert store.get("/t/x/l") is not None


def test_refused_transactions_write_nothing(store: Datastore) -> None:
    store.create("/t/x/a", {"v": 1})
    before = store.revision()
    with pytest.raises(ValidationError, match="both put and delete"):
        store.txn({}, {"/t/x/a": {"v": 2}}, ["/t/x/a"])
    with pytest.raises(ValidationError, match="no revision"):
        store.txn({"/t/x/a": -1}, {"/t/x/a": {"v": 2}})
    many = {f"/t/x/m{i}": {"i": i} for i in range(MAX_TXN_KEYS + 1)}
    with pytest.raises(ValidationError, match="at most"):
        store.txn({}, many)
    with pytest.raises(ValidationError, match="at most"):
        store.txn(dict.fromkeys(many, 0), {})
    deep: dict[str, object] = {}
    for _ in range(150):
        deep = {"a": deep}
    with pytest.raises(ValidationError, match="nested deeper"):
        store.txn({}, {"/t/x/b": {"v": 1}, "/t/x/deep": deep})
    store.put_raw("/t/x/raw", b"garbage")
    bad = store.get("/t/x/raw")
    assert bad is not None
    with pytest.raises(TypeError):
        store.txn({}, {"/t/x/c": bad.value})
    assert store.revision() == before + 1  # the put_raw only
    assert store.get("/t/x/b") is None and store.get("/t/x/c") is None


def test_as_many_keys_as_allowed(store: Datastore) -> None:
    keys = [f"/t/x/m{i:03d}" for i in range(MAX_TXN_KEYS)]
    res = store.txn(dict.fromkeys(keys, 0), {k: {"k": k} for k in keys})
    assert res.succeeded
    items, _ = store.list("/t/x/m")
    assert [kv.key for kv in items] == keys
    res = store.txn({k: kv.mod_revision for k, kv in zip(keys, items, strict=True)},
                    deletes=keys)
    assert res.succeeded and store.list("/t/x/m")[0] == []


def _move(url: str, n: int) -> int:
    """Move one unit from /t/acct/a to /t/acct/b n times (read both, one txn)."""
    conflicts = 0
    with open_datastore(url) as ds:
        done = 0
        while done < n:
            a, b = ds.get("/t/acct/a"), ds.get("/t/acct/b")
            assert a is not None and b is not None
            res = ds.txn({"/t/acct/a": a.mod_revision, "/t/acct/b": b.mod_revision},
                         {"/t/acct/a": {"n": a.value["n"] - 1},
                          "/t/acct/b": {"n": b.value["n"] + 1}})
            if res.succeeded:
                done += 1
            else:
                conflicts += 1
    return conflicts


def test_concurrent_transactions_from_processes_keep_two_keys_in_step(
    store: Datastore, store_url: str
) -> None:
    if store_url.startswith("memory:"):
        pytest.skip("the memory backend lives in one process")
    store.create("/t/acct/a", {"n": 1000})
    store.create("/t/acct/b", {"n": 0})
    start = store.revision() + 1
    procs, per = 4, 30
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(procs) as pool:
        pool.starmap(_move, [(store_url, per)] * procs)
    a, b = store.get("/t/acct/a"), store.get("/t/acct/b")
    assert a is not None and b is not None
    assert (a.value["n"], b.value["n"]) == (1000 - procs * per, procs * per)
    # Every state a watcher sees between transactions adds up: none was half written.
    with store.watch("/t/acct/", start_revision=start) as watch:
        events = collect(watch, 2 * procs * per, timeout=20.0)
    assert len(events) == 2 * procs * per
    state = {"/t/acct/a": 1000, "/t/acct/b": 0}
    for i, e in enumerate(events):
        assert e.value is not None
        state[e.key] = e.value["n"]
        if i % 2 == 1:
            assert sum(state.values()) == 1000, (i, state)


def test_threads_share_one_store(store: Datastore) -> None:
    import threading

    store.create("/t/acct/a", {"n": 100})
    store.create("/t/acct/b", {"n": 0})
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(20):
                while True:
                    a, b = store.get("/t/acct/a"), store.get("/t/acct/b")
                    assert a is not None and b is not None
                    if store.txn({"/t/acct/a": a.mod_revision, "/t/acct/b": b.mod_revision},
                                 {"/t/acct/a": {"n": a.value["n"] - 1},
                                  "/t/acct/b": {"n": b.value["n"] + 1}}).succeeded:
                        break
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    a, b = store.get("/t/acct/a"), store.get("/t/acct/b")
    assert a is not None and b is not None
    assert (a.value["n"], b.value["n"]) == (20, 80)


# --- random transactions against a plain dict -------------------------------------

KEYS = ["a", "b", "c/d"]
_run = iter(range(10**9))
# per key: not in the transaction, compared at its revision, at a stale one, as absent
COMPARE = st.sampled_from(["none", "at", "stale", "absent"])
WRITE = st.sampled_from(["none", "put", "delete"])
txns = st.lists(st.tuples(st.lists(st.tuples(COMPARE, WRITE, st.integers(0, 9)),
                                   min_size=len(KEYS), max_size=len(KEYS))),
                max_size=12)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=txns)
def test_random_transactions_match_a_dict(store: Datastore,
                                          sequence: list[tuple[list[tuple[str, str, int]]]]
                                          ) -> None:
    prefix = f"/t/mb/{next(_run)}/"
    model: dict[str, tuple[int, int, int]] = {}  # key -> (value, create rev, mod rev)
    expected: list[tuple[str, str, int | None]] = []
    start = store.revision() + 1
    for (per_key,) in sequence:
        compares: dict[str, int] = {}
        puts: dict[str, dict[str, int]] = {}
        deletes: list[str] = []
        for short, (cmp, write, value) in zip(KEYS, per_key, strict=True):
            key = prefix + short
            mod = model[key][2] if key in model else 0
            if cmp != "none":
                compares[key] = {"at": mod, "stale": mod + 1000, "absent": 0}[cmp]
            if write == "put":
                puts[key] = {"v": value}
            elif write == "delete":
                deletes.append(key)
        should = all((model[k][2] if k in model else 0) == r for k, r in compares.items())
        res = store.txn(compares, puts, deletes)
        assert res.succeeded == should
        if not should:
            assert set(res.current) == set(compares)
            for k, kv in res.current.items():
                assert (kv is None) == (k not in model)
                assert kv is None or (kv.value, kv.mod_revision) == ({"v": model[k][0]},
                                                                   model[k][2])
            continue
        for key, doc in puts.items():
            rev = res.revisions[key]
            model[key] = (doc["v"], model[key][1] if key in model else rev, rev)
            expected.append(("PUT", key, doc["v"]))
        for key in deletes:
            if key in model:
                del model[key]
                expected.append(("DELETE", key, None))
        for short in KEYS:
            kv = store.get(prefix + short)
            want = model.get(prefix + short)
            assert (None if kv is None else (kv.value["v"], kv.create_revision,
                                             kv.mod_revision)) == want
    with store.watch(prefix, start_revision=start) as watch:
        events = collect(watch, len(expected), timeout=10.0)
        events.extend(watch.next_batch(0.05))
    assert [(e.type.value, e.key, e.value["v"] if e.value else None) for e in events] == expected
