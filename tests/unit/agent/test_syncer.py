"""The syncer against a real (sqlite) datastore: snapshot, watch, resync."""

from __future__ import annotations

from gingham.datastore.base import Datastore
from gingham.datastore.syncer import Syncer

PREFIX = "/gingham/v1/syncer-test/"  # apart from the cluster ID every store has


def _drain(syncer: Syncer, rounds: int = 5) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for _ in range(rounds):
        out.extend(syncer.poll(0.05))
    return out


def test_snapshot_then_events_in_order(sqlite_store: Datastore) -> None:
    sqlite_store.create(PREFIX + "a", {"v": 1})
    syncer = Syncer(sqlite_store, PREFIX)
    assert syncer.poll(0.05) == [(PREFIX + "a", {"v": 1})]
    assert syncer.status.in_sync
    kv = sqlite_store.get(PREFIX + "a")
    assert kv is not None
    sqlite_store.update(PREFIX + "a", {"v": 2}, revision=kv.mod_revision)
    sqlite_store.create(PREFIX + "b", {"v": 3})
    sqlite_store.delete(PREFIX + "a")
    assert _drain(syncer) == [
        (PREFIX + "a", {"v": 2}),
        (PREFIX + "b", {"v": 3}),
        (PREFIX + "a", None),
    ]
    syncer.close()


def test_ignored_keys_never_reach_the_caller(sqlite_store: Datastore) -> None:
    syncer = Syncer(sqlite_store, PREFIX, ignore=lambda k: k.startswith(PREFIX + "status/"))
    syncer.poll(0.05)
    sqlite_store.create(PREFIX + "status/h1", {"x": 1})
    sqlite_store.create(PREFIX + "c", {"x": 2})
    assert _drain(syncer) == [(PREFIX + "c", {"x": 2})]
    syncer.close()


def test_compaction_forces_a_resync_that_reports_vanished_keys(sqlite_store: Datastore) -> None:
    sqlite_store.create(PREFIX + "keep", {"v": 1})
    sqlite_store.create(PREFIX + "gone", {"v": 1})
    syncer = Syncer(sqlite_store, PREFIX)
    syncer.poll(0.05)
    # Changes the watch would have delivered are compacted away before it reads them.
    sqlite_store.delete(PREFIX + "gone")
    sqlite_store.create(PREFIX + "new", {"v": 1})
    sqlite_store.compact(sqlite_store.revision())
    updates = _drain(syncer, rounds=10)
    assert syncer.status.in_sync
    assert syncer.status.resyncs >= 1
    final: dict[str, object] = {}
    for key, value in updates:
        final[key] = value
    assert final[PREFIX + "gone"] is None
    assert final[PREFIX + "new"] == {"v": 1}
    syncer.close()
