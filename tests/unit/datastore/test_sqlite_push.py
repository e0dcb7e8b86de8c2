"""sqlite watches wake on commit (the doorbell), not on a poll schedule.

Most tests set the safety poll to an hour, so that only a ring can wake a
watcher: a watch that still sees a write within its timeout was woken by it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gingham.datastore import doorbell, open_datastore, sqlite_watch
from gingham.datastore import sqlite as sqlite_mod
from gingham.datastore.sqlite import SqliteDatastore

pytestmark = pytest.mark.skipif(doorbell._syscall is None,
                                reason="no futex system call known for this platform")

# A watcher process: prints "ready", then one JSON line of [key, wall time] per
# event it got, stopping after N events or T seconds. Only a ring wakes it.
WATCHER = """
import json, sys, time
from gingham.datastore import open_datastore, sqlite_watch
sqlite_watch.SAFETY_POLL = 3600.0
url, want, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with open_datastore(url) as ds:
    with ds.watch("/t/push/", start_revision=ds.revision() + 1) as w:
        w.next_batch(0)  # the first read, so that only rings remain
        print("ready", flush=True)
        got = []
        deadline = time.monotonic() + seconds
        while len(got) < want and time.monotonic() < deadline:
            got += [[e.key, time.time()] for e in w.next_batch(deadline - time.monotonic())]
        print(json.dumps(got), flush=True)
"""


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    u = f"sqlite://{tmp_path / 'g.db'}"
    open_datastore(u, create=True).close()
    yield u


@pytest.fixture
def no_safety_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_watch, "SAFETY_POLL", 3600.0)


def start_watcher(argv_prefix: list[str], url: str, want: int,
                  seconds: float = 20.0) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*argv_prefix, sys.executable, "-c", WATCHER, url, str(want),
                             str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"watcher did not start: {line!r} {proc.communicate()[1]}")
    return proc


def finish(proc: subprocess.Popen[str]) -> list[tuple[str, float]]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return [(k, t) for k, t in json.loads(out.strip().splitlines()[-1])]


def write_spaced(url: str, n: int, gap: float = 0.05) -> dict[str, float]:
    """``n`` writes ``gap`` seconds apart; key -> wall time just before each."""
    started = {}
    with open_datastore(url) as ds:
        for i in range(n):
            key = f"/t/push/{i:03d}"
            started[key] = time.time()
            ds.create(key, {"i": i})
            time.sleep(gap)
    return started


def test_a_watcher_in_another_process_is_woken_by_each_commit(url: str) -> None:
    proc = start_watcher([], url, 10)
    try:
        started = write_spaced(url, 10)
        got = finish(proc)
    finally:
        proc.kill()
        proc.wait()
    # With no safety poll, every event it saw within its 20 s came from a ring.
    assert [k for k, _ in got] == sorted(started)
    latency_ms = sorted((t - started[k]) * 1000 for k, t in got)
    print(f"write -> event in another process, ms: p50 {latency_ms[5]:.2f} max {latency_ms[-1]:.2f}")


def test_a_stopped_and_a_killed_watcher_cost_writers_nothing(url: str) -> None:
    stopped = start_watcher([], url, 1000, seconds=60)
    killed = start_watcher([], url, 1000, seconds=60)
    live = start_watcher([], url, 200, seconds=60)
    try:
        os.kill(stopped.pid, signal.SIGSTOP)  # asleep on the futex, and stays there
        killed.kill()
        killed.wait()
        with open_datastore(url) as ds:
            for i in range(200):
                ds.create(f"/t/push/{i:03d}", {"i": i})  # never waits for any watcher
        got = finish(live)
        assert len(got) == 200
    finally:
        for p in (stopped, killed, live):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGCONT)
            p.kill()
            p.communicate()


def test_a_lost_ring_is_caught_by_the_safety_poll(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = url.removeprefix("sqlite://")
    writer = SqliteDatastore(path)
    writer._bell = False  # a writer that cannot ring (killed after commit, older version)
    watcher = open_datastore(url)
    try:
        monkeypatch.setattr(sqlite_watch, "SAFETY_POLL", 3600.0)
        with watcher.watch("/t/push/", start_revision=watcher.revision() + 1) as w:
            assert w.next_batch(0) == []
            writer.create("/t/push/lost", {"v": 1})
            # No ring and no safety poll: not seen (so the next part tests the poll).
            assert w.next_batch(0.5) == []
        monkeypatch.setattr(sqlite_watch, "SAFETY_POLL", 0.3)
        with watcher.watch("/t/push/", start_revision=watcher.revision() + 1) as w:
            assert w.next_batch(0) == []
            writer.create("/t/push/lost2", {"v": 2})
            t0 = time.monotonic()
            events = w.next_batch(10.0)
            assert [e.key for e in events] == ["/t/push/lost2"]
            assert time.monotonic() - t0 < 5.0
    finally:
        writer.close()
        watcher.close()


def test_an_idle_watch_reads_nothing(
    url: str, no_safety_poll: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = []
    real = SqliteDatastore._read

    def counting(self: SqliteDatastore) -> object:
        reads.append(1)
        return real(self)

    with open_datastore(url) as ds, ds.watch("/t/push/", start_revision=ds.revision() + 1) as w:
        w.next_batch(0)
        monkeypatch.setattr(SqliteDatastore, "_read", counting)
        for _ in range(200):
            assert w.next_batch(0) == []
        assert w.next_batch(0.2) == []
        assert reads == []
        ds.create("/t/push/a", {"v": 1})
        assert [e.key for e in w.next_batch(5.0)] == ["/t/push/a"]
        assert len(reads) == 1  # one read per ring


def test_close_wakes_a_sleeping_next_batch(url: str, no_safety_poll: None) -> None:
    with open_datastore(url) as ds:
        w = ds.watch("/t/push/", start_revision=ds.revision() + 1)
        returned: list[float] = []

        def sleep_in_it() -> None:
            w.next_batch(60.0)
            returned.append(time.monotonic())

        thread = threading.Thread(target=sleep_in_it)
        thread.start()
        time.sleep(0.3)
        closed_at = time.monotonic()
        w.close()
        thread.join(30)
        assert returned and returned[0] - closed_at < 10.0


def test_leases_expire_with_watchers_only(url: str, no_safety_poll: None) -> None:
    """No writer after the lease: the watcher expires it when it falls due."""
    with open_datastore(url) as ds:
        lease = ds.grant_lease(1)
        ds.create("/t/push/l", {"v": 1}, lease=lease)
        with ds.watch("/t/push/", start_revision=ds.revision()) as w:
            events = []
            deadline = time.monotonic() + 10
            while len(events) < 2 and time.monotonic() < deadline:
                events += w.next_batch(5.0)
        assert [(e.type.value, e.key) for e in events] == [("PUT", "/t/push/l"),
                                                          ("DELETE", "/t/push/l")]


def test_without_a_doorbell_watches_poll_as_before(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_mod, "open_doorbell", lambda path: None)
    monkeypatch.setattr(sqlite_watch, "SAFETY_POLL", 3600.0)
    with open_datastore(url) as ds, open_datastore(url) as writer:
        assert isinstance(ds, SqliteDatastore) and ds.doorbell() is None
        with ds.watch("/t/push/", start_revision=ds.revision() + 1) as w:
            threading.Timer(0.2, lambda: writer.create("/t/push/a", {"v": 1})).start()
            assert [e.key for e in w.next_batch(5.0)] == ["/t/push/a"]


def test_watches_of_one_process_share_safety_polls_and_all_catch_a_lost_ring(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_watch, "SAFETY_POLL", 0.3)
    path = url.removeprefix("sqlite://")
    writer = SqliteDatastore(path)
    writer._bell = False
    handles = [open_datastore(url) for _ in range(20)]
    reads: list[int] = []
    real = SqliteDatastore._read

    def counting(self: SqliteDatastore) -> object:
        reads.append(1)
        return real(self)

    try:
        watches = [ds.watch("/t/push/", start_revision=ds.revision() + 1) for ds in handles]
        got: list[list[str]] = [[] for _ in watches]

        def follow(i: int) -> None:
            deadline = time.monotonic() + 10
            while not got[i] and time.monotonic() < deadline:
                got[i] += [e.key for e in watches[i].next_batch(0.5)]

        for w in watches:
            w.next_batch(0)
        monkeypatch.setattr(SqliteDatastore, "_read", counting)
        threads = [threading.Thread(target=follow, args=(i,)) for i in range(len(watches))]
        for t in threads:
            t.start()
        time.sleep(1.5)  # idle: 20 watches, 5 safety periods
        idle_reads = len(reads)
        writer.create("/t/push/lost", {"v": 1})
        for t in threads:
            t.join(30)
        assert got == [["/t/push/lost"]] * len(watches)
        # Each period, one watch reads and the others take its read (a few more
        # when two fall due at once): far fewer than one read per watch and period.
        assert idle_reads < 20 * 5 / 2, idle_reads
    finally:
        writer.close()
        for ds in handles:
            ds.close()
