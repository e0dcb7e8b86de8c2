"""The datastore contract, run against every backend (``store`` fixture)."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gingham.datastore import Datastore, EventType, Undecodable, WatchEvent, open_datastore
from gingham.errors import (
    AlreadyExists,
    DatastoreError,
    NotFound,
    ResyncRequired,
    RevisionConflict,
    ValidationError,
)
from tests.fixtures.datastore import ALL_BACKENDS, backend_url


@pytest.fixture(params=ALL_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Here the ``store`` fixture covers the in-process memory backend too."""
    yield from backend_url(request, tmp_path)


def collect(watch, want: int, timeout: float = 5.0) -> list[WatchEvent]:  # type: ignore[no-untyped-def]
    events: list[WatchEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < want and time.monotonic() < deadline:
        events.extend(watch.next_batch(0.2))
    return events


def test_get_missing_is_none(store: Datastore) -> None:
    assert store.get("/t/missing") is None


def test_create_then_get(store: Datastore) -> None:
    before = store.revision()
    rev = store.create("/t/a", {"x": 1, "nested": {"l": [1, "two"]}})
    assert rev > before
    kv = store.get("/t/a")
    assert kv is not None
    assert kv.value == {"x": 1, "nested": {"l": [1, "two"]}}
    assert kv.mod_revision == rev == kv.create_revision
    assert kv.lease == 0
    assert store.revision() == rev


def test_create_existing_fails(store: Datastore) -> None:
    store.create("/t/a", {"v": 1})
    with pytest.raises(AlreadyExists):
        store.create("/t/a", {"v": 2})
    kv = store.get("/t/a")
    assert kv is not None and kv.value == {"v": 1}


def test_update_is_compare_and_swap(store: Datastore) -> None:
    r1 = store.create("/t/a", {"v": 1})
    r2 = store.update("/t/a", {"v": 2}, revision=r1)
    assert r2 > r1
    with pytest.raises(RevisionConflict):
        store.update("/t/a", {"v": 3}, revision=r1)
    kv = store.get("/t/a")
    assert kv is not None
    assert kv.value == {"v": 2}
    assert (kv.create_revision, kv.mod_revision) == (r1, r2)


def test_update_missing_is_not_found(store: Datastore) -> None:
    with pytest.raises(NotFound):
        store.update("/t/none", {"v": 1}, revision=1)


def test_delete(store: Datastore) -> None:
    r1 = store.create("/t/a", {"v": 1})
    with pytest.raises(RevisionConflict):
        store.delete("/t/a", revision=r1 + 100)
    assert store.get("/t/a") is not None
    r2 = store.delete("/t/a", revision=r1)
    assert r2 > r1
    assert store.get("/t/a") is None
    with pytest.raises(NotFound):
        store.delete("/t/a")
    store.create("/t/b", {})
    store.delete("/t/b")
    assert store.get("/t/b") is None


def test_recreate_gets_new_create_revision(store: Datastore) -> None:
    r1 = store.create("/t/a", {"v": 1})
    store.delete("/t/a")
    r3 = store.create("/t/a", {"v": 2})
    kv = store.get("/t/a")
    assert kv is not None and kv.create_revision == r3 > r1


def test_list_prefix_sorted_with_revision(store: Datastore) -> None:
    for key in ["/t/p/b", "/t/p/a", "/t/p/c/d", "/t/pq", "/t/o"]:
        store.create(key, {"k": key})
    items, rev = store.list("/t/p/")
    assert [kv.key for kv in items] == ["/t/p/a", "/t/p/b", "/t/p/c/d"]
    assert [kv.value["k"] for kv in items] == ["/t/p/a", "/t/p/b", "/t/p/c/d"]
    assert rev == store.revision()
    assert all(kv.mod_revision <= rev for kv in items)
    assert store.list("/t/nothing/")[0] == []


def test_unicode_keys_and_values(store: Datastore) -> None:
    store.create("/t/ü/ключ", {"s": "ünïcode ✓"})
    items, _ = store.list("/t/ü/")
    assert [(kv.key, kv.value) for kv in items] == [("/t/ü/ключ", {"s": "ünïcode ✓"})]


def test_revisions_monotonic(store: Datastore) -> None:
    revs = [store.create(f"/t/m/{i}", {"i": i}) for i in range(5)]
    kv = store.get("/t/m/4")
    assert kv is not None
    revs.append(store.update("/t/m/4", {"i": 5}, revision=kv.mod_revision))
    revs.append(store.delete("/t/m/0"))
    assert revs == sorted(revs) and len(set(revs)) == len(revs)


def test_watch_delivers_in_order(store: Datastore) -> None:
    store.create("/t/w/old", {"v": 0})
    _, rev = store.list("/t/w/")
    with store.watch("/t/w/", start_revision=rev + 1) as watch:
        r1 = store.create("/t/w/a", {"v": 1})
        store.create("/t/other", {"v": 9})
        r2 = store.update("/t/w/a", {"v": 2}, revision=r1)
        r3 = store.delete("/t/w/old")
        events = collect(watch, 3)
    assert [(e.type, e.key, e.value, e.revision) for e in events] == [
        (EventType.PUT, "/t/w/a", {"v": 1}, r1),
        (EventType.PUT, "/t/w/a", {"v": 2}, r2),
        (EventType.DELETE, "/t/w/old", None, r3),
    ]


def test_watch_from_past_revision_replays(store: Datastore) -> None:
    r1 = store.create("/t/w/a", {"v": 1})
    r2 = store.create("/t/w/b", {"v": 2})
    with store.watch("/t/w/", start_revision=r1) as watch:
        events = collect(watch, 2)
    assert [(e.key, e.revision) for e in events] == [("/t/w/a", r1), ("/t/w/b", r2)]


def test_watch_timeout_returns_empty(store: Datastore) -> None:
    with store.watch("/t/quiet/", start_revision=store.revision() + 1) as watch:
        t0 = time.monotonic()
        assert watch.next_batch(0.2) == []
        assert time.monotonic() - t0 < 2.0


def test_watch_after_compaction_resyncs(store: Datastore) -> None:
    r1 = store.create("/t/c/a", {"v": 1})
    r2 = store.update("/t/c/a", {"v": 2}, revision=r1)
    r3 = store.update("/t/c/a", {"v": 3}, revision=r2)
    store.compact(r3)
    with pytest.raises(ResyncRequired), store.watch("/t/c/", start_revision=r1) as watch:
        collect(watch, 1, timeout=3.0)
    # From the compaction point on, watching still works.
    with store.watch("/t/c/", start_revision=r3) as watch:
        events = collect(watch, 1)
    assert [(e.revision, e.value) for e in events] == [(r3, {"v": 3})]


def test_lease_expiry_deletes_keys_with_events(store: Datastore) -> None:
    lease = store.grant_lease(1)
    start = store.revision() + 1
    store.create("/t/l/a", {"v": 1}, lease=lease)
    store.create("/t/l/b", {"v": 2})
    kv = store.get("/t/l/a")
    assert kv is not None and kv.lease == lease
    with store.watch("/t/l/", start_revision=start) as watch:
        events = collect(watch, 3, timeout=8.0)
    assert [(e.type, e.key) for e in events] == [
        (EventType.PUT, "/t/l/a"),
        (EventType.PUT, "/t/l/b"),
        (EventType.DELETE, "/t/l/a"),
    ]
    assert store.get("/t/l/a") is None
    assert store.get("/t/l/b") is not None
    with pytest.raises(NotFound):
        store.keepalive(lease)


def test_keepalive_and_revoke(store: Datastore) -> None:
    lease = store.grant_lease(2)
    store.create("/t/k/a", {"v": 1}, lease=lease)
    for _ in range(4):
        time.sleep(1.0)
        store.keepalive(lease)
    assert store.get("/t/k/a") is not None
    store.revoke_lease(lease)
    assert store.get("/t/k/a") is None
    store.revoke_lease(lease)  # a second revoke is harmless


def test_write_with_unknown_lease_fails(store: Datastore) -> None:
    with pytest.raises(NotFound):
        store.create("/t/x", {}, lease=123456789)
    assert store.get("/t/x") is None


def _increment(url: str, key: str, n: int) -> int:
    ds = open_datastore(url)
    conflicts = 0
    try:
        done = 0
        while done < n:
            kv = ds.get(key)
            assert kv is not None
            try:
                ds.update(key, {"n": kv.value["n"] + 1}, revision=kv.mod_revision)
                done += 1
            except RevisionConflict:
                conflicts += 1
    finally:
        ds.close()
    return conflicts


def _needs_processes(url: str) -> None:
    if url.startswith("memory:"):
        pytest.skip("the memory backend lives in one process")


def test_concurrent_cas_from_processes_loses_nothing(store: Datastore, store_url: str) -> None:
    _needs_processes(store_url)
    store.create("/t/counter", {"n": 0})
    procs, per = 4, 40
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(procs) as pool:
        conflicts = pool.starmap(_increment, [(store_url, "/t/counter", per)] * procs)
    kv = store.get("/t/counter")
    assert kv is not None
    assert kv.value == {"n": procs * per}
    assert sum(conflicts) >= 0


def test_threads_share_one_store(store: Datastore) -> None:
    import threading

    store.create("/t/threads", {"n": 0})
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(25):
                while True:
                    kv = store.get("/t/threads")
                    assert kv is not None
                    try:
                        store.update(
                            "/t/threads", {"n": kv.value["n"] + 1}, revision=kv.mod_revision
                        )
                        break
                    except RevisionConflict:
                        continue
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    kv = store.get("/t/threads")
    assert kv is not None and kv.value == {"n": 100}


def _write_keys(url: str, prefix: str, n: int) -> None:
    ds = open_datastore(url)
    try:
        for i in range(n):
            ds.create(f"{prefix}{i:03d}", {"i": i})
    finally:
        ds.close()


def test_watch_sees_writes_of_another_process(store: Datastore, store_url: str) -> None:
    _needs_processes(store_url)
    start = store.revision() + 1
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_write_keys, args=(store_url, "/t/xp/", 20))
    with store.watch("/t/xp/", start_revision=start) as watch:
        proc.start()
        try:
            events = collect(watch, 20, timeout=20.0)
        finally:
            proc.join(30)
    assert proc.exitcode == 0
    assert [e.value for e in events] == [{"i": i} for i in range(20)]
    revisions = [e.revision for e in events]
    assert revisions == sorted(revisions)


def test_compaction_edges(store: Datastore) -> None:
    r1 = store.create("/t/ce", {"v": 1})
    r2 = store.update("/t/ce", {"v": 2}, revision=r1)
    with pytest.raises(ValidationError):
        store.compact(r2 + 100)  # the future cannot be compacted
    store.compact(r2)
    store.compact(r1)  # older than what is already compacted: nothing to do
    kv = store.get("/t/ce")
    assert kv is not None and kv.value == {"v": 2}


# --- one bad value costs one key (issue 12) ----------------------------------------

BAD_VALUES = [
    pytest.param(b"not json", "not JSON", id="not-json"),
    pytest.param(b'{"v": "\xff\xfe"}', "not UTF-8", id="not-utf8"),
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"[1, 2]", "JSON list", id="list"),
    pytest.param(b'"a string"', "JSON string", id="string"),
    pytest.param(b"null", "JSON null", id="null"),
    pytest.param(b'{"v": 1', "not JSON", id="truncated"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "nested deeper", id="deep-list"),
    pytest.param(b'{"a":' * 150 + b"1" + b"}" * 150, "nested deeper", id="deep-object"),
    pytest.param(b'{"n": ' + b"9" * 5000 + b"}", "not JSON", id="huge-integer"),
]


@pytest.mark.parametrize(("data", "reason"), BAD_VALUES)
def test_a_bad_value_costs_its_key_only(store: Datastore, data: bytes, reason: str) -> None:
    store.create("/t/bad/a", {"v": "a"})
    start = store.revision() + 1
    rev = store.put_raw("/t/bad/b", data)
    assert rev == start
    store.create("/t/bad/c", {"v": "c"})
    kv = store.get("/t/bad/b")
    assert kv is not None and kv.mod_revision == kv.create_revision == rev
    assert isinstance(kv.value, Undecodable)
    assert reason in kv.value.reason
    assert kv.value == Undecodable(kv.value.raw, kv.value.reason)
    items, _ = store.list("/t/bad/")
    assert [(i.key, type(i.value).__name__) for i in items] == [
        ("/t/bad/a", "dict"),
        ("/t/bad/b", "Undecodable"),
        ("/t/bad/c", "dict"),
    ]
    assert (items[0].value, items[2].value) == ({"v": "a"}, {"v": "c"})
    with store.watch("/t/bad/", start_revision=start) as watch:
        events = collect(watch, 2)
    assert [(e.key, type(e.value).__name__) for e in events] == [
        ("/t/bad/b", "Undecodable"),
        ("/t/bad/c", "dict"),
    ]
    # And it goes away like any key.
    store.delete("/t/bad/b")
    assert store.get("/t/bad/b") is None


def test_undecodable_keeps_what_was_stored(store: Datastore) -> None:
    store.put_raw("/t/raw/text", b"half a {document")
    store.put_raw("/t/raw/bytes", b"\x00\xffbinary")
    text = store.get("/t/raw/text")
    binary = store.get("/t/raw/bytes")
    assert text is not None and isinstance(text.value, Undecodable)
    assert text.value.raw == "half a {document"
    assert binary is not None and isinstance(binary.value, Undecodable)
    assert binary.value.raw == "\x00\\xffbinary"  # undecodable bytes shown, not dropped
    assert binary.value.reason == "not UTF-8 (byte 1: 0xff)"


def test_put_raw_overwrites_and_a_good_object_decodes(store: Datastore) -> None:
    r1 = store.create("/t/raw/k", {"v": 1})
    r2 = store.put_raw("/t/raw/k", b"garbage")
    r3 = store.put_raw("/t/raw/k", b'{"v": 3}')
    assert r1 < r2 < r3
    kv = store.get("/t/raw/k")
    assert kv is not None
    assert (kv.value, kv.create_revision, kv.mod_revision) == ({"v": 3}, r1, r3)
    # Compare-and-swap works on a key that held garbage, as on any other.
    store.put_raw("/t/raw/k", b"garbage again")
    bad = store.get("/t/raw/k")
    assert bad is not None
    store.update("/t/raw/k", {"v": 4}, revision=bad.mod_revision)
    fixed = store.get("/t/raw/k")
    assert fixed is not None and fixed.value == {"v": 4}


def test_an_undecodable_value_cannot_be_written_back(store: Datastore) -> None:
    store.put_raw("/t/raw/k", b"garbage")
    kv = store.get("/t/raw/k")
    assert kv is not None and isinstance(kv.value, Undecodable)
    with pytest.raises(TypeError):
        store.update("/t/raw/k", kv.value, revision=kv.mod_revision)
    with pytest.raises(TypeError):
        store.create("/t/raw/other", kv.value)
    again = store.get("/t/raw/k")
    assert again is not None and again.value == kv.value


def test_writing_a_too_deep_value_is_refused(store: Datastore) -> None:
    deep: dict[str, object] = {}
    for _ in range(150):
        deep = {"a": deep}
    with pytest.raises(ValidationError, match="nested deeper"):
        store.create("/t/deep", deep)
    assert store.get("/t/deep") is None
    fine: dict[str, object] = {}
    for _ in range(50):
        fine = {"a": fine}
    store.create("/t/fine", fine)
    kv = store.get("/t/fine")
    assert kv is not None and kv.value == fine


HUGE = 3 << 20  # bytes: more than any document gingham writes by far


def test_huge_values(store: Datastore, store_url: str) -> None:
    big = {"blob": "x" * HUGE}
    if store_url.startswith(("etcd", "http")):
        # etcd refuses requests above --max-request-bytes (1.5 MiB by default):
        # a clear error, nothing written; values under the limit round-trip.
        with pytest.raises(DatastoreError, match="too large"):
            store.create("/t/huge/a", big)
        assert store.get("/t/huge/a") is None
        big = {"blob": "x" * (1 << 20)}
    start = store.revision() + 1
    store.create("/t/huge/a", big)
    store.put_raw("/t/huge/b", b"x" * len(big["blob"]))
    kv = store.get("/t/huge/a")
    assert kv is not None and kv.value == big
    items, _ = store.list("/t/huge/")
    assert items[0].value == big and isinstance(items[1].value, Undecodable)
    with store.watch("/t/huge/", start_revision=start) as watch:
        events = collect(watch, 2)
    assert events[0].value == big and isinstance(events[1].value, Undecodable)
