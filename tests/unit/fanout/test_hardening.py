"""The fan-out server and its clients when things go wrong behind them or between them.

A real sqlite datastore, real unix sockets and a server on a thread. The one
stand-in is :class:`Outage`, which wraps the real datastore and makes every
read fail with ``Unavailable`` while the test says so (what a refused or
timed-out etcd request raises), so that an outage has a start and an end
the test controls.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import open_datastore
from gingham.datastore.base import Datastore, Watch, WatchEvent
from gingham.errors import Unavailable
from gingham.fanout import FanoutClient, FanoutServer, Frame, encode_frames

PREFIX = "/gingham/v1/resources/"


class Outage:
    """A datastore whose reads fail while ``down`` is set (writes go to the real one)."""

    def __init__(self, real: Datastore) -> None:
        self.real = real
        self.down = threading.Event()
        self.reads = 0

    def _check(self) -> None:
        self.reads += 1
        if self.down.is_set():
            raise Unavailable("datastore down (test outage)")

    def list(self, prefix: str) -> Any:
        self._check()
        return self.real.list(prefix)

    def revision(self) -> int:
        self._check()
        return self.real.revision()

    def watch(self, prefix: str, *, start_revision: int) -> Watch:
        self._check()
        return _OutageWatch(self, self.real.watch(prefix, start_revision=start_revision))


class _OutageWatch(Watch):
    def __init__(self, outage: Outage, real: Watch) -> None:
        self.outage, self.real = outage, real

    def next_batch(self, timeout: float) -> list[WatchEvent]:
        if self.outage.down.is_set():
            raise Unavailable("watch lost (test outage)")
        return self.real.next_batch(timeout)

    def close(self) -> None:
        self.real.close()


@pytest.fixture
def ds(tmp_path: Path) -> Iterator[Datastore]:
    store = open_datastore(f"sqlite://{tmp_path / 'g.db'}", create=True)
    yield store
    store.close()


Serve = Callable[..., FanoutServer]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    running: list[tuple[threading.Event, threading.Thread]] = []

    def _serve(store: Any, **kwargs: Any) -> FanoutServer:
        server = FanoutServer(store, PREFIX, str(tmp_path / "f.sock"), **kwargs)
        stop = threading.Event()
        thread = threading.Thread(target=server.serve, args=(stop.is_set, 0.05), daemon=True)
        thread.start()
        running.append((stop, thread))
        return server

    yield _serve
    for stop, thread in running:
        stop.set()
        thread.join(10)


def _until(condition: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class View:
    """What an agent fed by ``client`` would hold, and every batch it was given."""

    def __init__(self, client: FanoutClient) -> None:
        self.client = client
        self.keys: dict[str, object] = {}
        self.batches: list[list[tuple[str, object]]] = []

    def poll(self) -> bool:
        got = self.client.poll(0.02)
        if got:
            self.batches.append(got)
        for key, value in got:
            if value is None:
                self.keys.pop(key, None)
            else:
                self.keys[key] = value
        return True

    def until(self, condition: Callable[[], bool], seconds: float = 20) -> bool:
        return _until(lambda: self.poll() and condition(), seconds)


def test_a_datastore_outage_makes_every_client_stale_then_resyncs_them_whole(
    ds: Datastore, serve: Serve
) -> None:
    ds.create(PREFIX + "A/kept", {"v": 1})
    ds.create(PREFIX + "A/deleted", {"v": 1})
    outage = Outage(ds)
    server = serve(outage, probe_interval=0.05)
    views = [View(FanoutClient(server.path, retry_interval=0.05)) for _ in range(3)]
    try:
        for v in views:
            assert v.until(lambda v=v: v.client.status.in_sync)
        before = [dict(v.keys) for v in views]

        outage.down.set()
        for v in views:
            assert v.until(lambda v=v: not v.client.status.in_sync), v.client.status
            assert "fan-out server lost the datastore" in v.client.status.last_error
            assert "test outage" in v.client.status.last_error
        # Meanwhile the store changes; the clients hear nothing of it and keep what they had.
        ds.update(PREFIX + "A/kept", {"v": 2}, revision=ds.get(PREFIX + "A/kept").mod_revision)
        ds.delete(PREFIX + "A/deleted")
        ds.create(PREFIX + "A/new", {"v": 3})
        for v, had in zip(views, before, strict=True):
            v.poll()
            assert v.keys == had and not v.client.status.in_sync
        assert server.stats.stale == 1
        # A client that connects during the outage is told why it waits.
        late = View(FanoutClient(server.path))
        assert late.until(lambda: "test outage" in late.client.status.last_error)
        assert not late.client.status.in_sync

        outage.down.clear()
        want = {PREFIX + "A/kept": {"v": 2}, PREFIX + "A/new": {"v": 3}}
        for v in [*views, late]:
            assert v.until(lambda v=v: v.client.status.in_sync and v.keys == want), v.keys
        for v in views:
            # The first batch after the outage is the whole state plus what went away:
            # an agent treats it as a snapshot, so it must hold every key.
            first = dict(v.batches[-1])
            assert first == {**want, PREFIX + "A/deleted": None}
            assert v.client.fileno() >= 0  # the same connection throughout
        views.append(late)
    finally:
        for v in views:
            v.client.close()


def test_a_hung_datastore_is_noticed_by_the_probe(ds: Datastore, serve: Serve) -> None:
    """The watch keeps quiet (as etcd's stream does when the cluster is frozen);
    only the probe's failed read tells."""

    class Frozen(Outage):
        def watch(self, prefix: str, *, start_revision: int) -> Watch:
            return self.real.watch(prefix, start_revision=start_revision)  # never fails

    frozen = Frozen(ds)
    server = serve(frozen, probe_interval=0.05)
    view = View(FanoutClient(server.path))
    try:
        assert view.until(lambda: view.client.status.in_sync)
        frozen.down.set()
        assert view.until(lambda: not view.client.status.in_sync)
        assert "datastore unavailable" in view.client.status.last_error
        frozen.down.clear()
        assert view.until(lambda: view.client.status.in_sync)
    finally:
        view.client.close()


def test_a_silent_server_is_left_and_reconnected(tmp_path: Path) -> None:
    """A server that stops answering (SIGSTOP, a livelock) but keeps its socket open."""
    path = str(tmp_path / "mute.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    accepted: list[socket.socket] = []
    snapshot = b"".join(encode_frames(Frame("snapshot", 5, ((PREFIX + "x", {"v": 1}),))))

    def mute_server() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)
            conn.sendall(snapshot)  # and then nothing, ever

    thread = threading.Thread(target=mute_server, daemon=True)
    thread.start()
    client = FanoutClient(path, read_timeout=0.3, retry_interval=0.05)
    view = View(client)
    try:
        assert view.until(lambda: client.status.in_sync)
        assert view.until(lambda: client.status.resyncs >= 1)
        assert "silent" in client.status.last_error
        assert view.until(lambda: len(accepted) >= 2)  # it came back for a new snapshot
    finally:
        client.close()
        listener.close()
        for conn in accepted:
            conn.close()
        thread.join(5)


def test_pings_keep_an_idle_client_in_sync(ds: Datastore, serve: Serve) -> None:
    server = serve(ds, ping_interval=0.05)
    view = View(FanoutClient(server.path, read_timeout=0.5))
    try:
        assert view.until(lambda: view.client.status.in_sync)
        deadline = time.monotonic() + 2.0  # four read timeouts without a change
        while time.monotonic() < deadline:
            view.poll()
        assert view.client.status.in_sync and view.client.status.resyncs == 0
    finally:
        view.client.close()


def test_a_client_that_stops_reading_costs_the_others_nothing(ds: Datastore, serve: Serve) -> None:
    """Every change reaches the good clients while the lazy one fills its buffer; the
    lazy one is then dropped, and the good ones never lost their connection."""
    server = serve(ds, max_buffer=256 << 10)
    good = [View(FanoutClient(server.path)) for _ in range(2)]
    lazy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        for v in good:
            assert v.until(lambda v=v: v.client.status.in_sync)
        lazy.connect(server.path)  # and never reads
        assert _until(lambda: server.stats.clients == 3)
        blob = "x" * (32 << 10)
        n = 0
        while server.stats.dropped == 0:
            ds.create(f"{PREFIX}Big/{n}", {"blob": blob, "n": n})
            n += 1
            for v in good:  # each change reaches them while the lazy one is still connected
                key = f"{PREFIX}Big/{n - 1}"
                assert v.until(lambda v=v, key=key: key in v.keys), (n, server.stats)
            assert n < 200, "the lazy client was never dropped"
        assert _until(lambda: server.stats.clients == 2) and server.stats.dropped == 1
        for v in good:
            assert v.client.status.in_sync and v.client.status.resyncs == 0
            assert v.client.status.snapshots == 1
    finally:
        lazy.close()
        for v in good:
            v.client.close()


def test_a_restarted_server_serves_a_fresh_snapshot(ds: Datastore, tmp_path: Path) -> None:
    path = str(tmp_path / "f.sock")
    ds.create(PREFIX + "A/one", {"v": 1})
    view = View(FanoutClient(path, retry_interval=0.05))

    def start() -> tuple[FanoutServer, threading.Event, threading.Thread]:
        server = FanoutServer(ds, PREFIX, path)
        stop = threading.Event()
        thread = threading.Thread(target=server.serve, args=(stop.is_set, 0.05), daemon=True)
        thread.start()
        return server, stop, thread

    _, stop, thread = start()
    try:
        assert view.until(lambda: view.client.status.in_sync)
        stop.set()
        thread.join(10)
        assert view.until(lambda: not view.client.status.in_sync)
        assert "closed the connection" in view.client.status.last_error
        ds.create(PREFIX + "A/two", {"v": 2})
        ds.delete(PREFIX + "A/one")
        _, stop, thread = start()
        assert view.until(lambda: view.client.status.in_sync and view.keys == {
            PREFIX + "A/two": {"v": 2}})  # fmt: skip
        assert view.client.status.snapshots == 2
        assert view.client.status.revision == ds.revision()
    finally:
        view.client.close()
        stop.set()
        thread.join(10)
