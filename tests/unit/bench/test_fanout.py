"""The fan-out server and client against a real sqlite datastore (no root, no namespaces)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gingham.datastore import open_datastore
from gingham.datastore.base import Datastore
from gingham.errors import ProtocolError
from gingham.fanout import FanoutClient, FanoutServer, Frame, FrameDecoder, encode_frame

PREFIX = "/gingham/v1/resources/"


def test_frames_round_trip_across_arbitrary_read_boundaries() -> None:
    frames = [
        Frame("snapshot", 7, (("/a", {"x": 1}),)),
        Frame("deltas", 8, (("/a", None), ("/b", {"y": [1, 2]}))),
        Frame("ping", 8),
    ]
    data = b"".join(encode_frame(f) for f in frames)
    for cut in range(1, len(data)):
        decoder = FrameDecoder()
        got = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert got == frames
        assert decoder.buffered == 0


@pytest.mark.parametrize(
    ("body", "where"),
    [(b"{oops", "frame 0"), (b'{"t":"deltas","rev":1,"updates":[["/a"]]}', "updates[0]"),
     (b'{"t":"snapshot","rev":"1","items":[]}', "frame 0")],
)
def test_bad_frames_name_where(body: bytes, where: str) -> None:
    with pytest.raises(ProtocolError, match=where.replace("[", r"\[")):
        FrameDecoder().feed(len(body).to_bytes(4, "big") + body)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Datastore, str]]:
    ds = open_datastore(f"sqlite://{tmp_path / 'g.db'}", create=True)
    path = str(tmp_path / "fanout.sock")
    server = FanoutServer(ds, PREFIX, path)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop.is_set,), daemon=True)
    thread.start()
    try:
        yield ds, path
    finally:
        stop.set()
        thread.join(5)
        ds.close()


def _collect(client: FanoutClient, want: dict[str, object], seen: dict[str, object]) -> None:
    deadline = time.monotonic() + 5
    while seen != want and time.monotonic() < deadline:
        for key, value in client.poll(0.05):
            if value is None:
                seen.pop(key, None)
            else:
                seen[key] = value


def test_snapshot_then_deltas_reach_every_client(served: tuple[Datastore, str]) -> None:
    ds, path = served
    ds.create(PREFIX + "A/one", {"v": 1})
    ds.create("/elsewhere/x", {"v": 0})  # outside the prefix: never served
    clients = [FanoutClient(path) for _ in range(3)]
    views: list[dict[str, object]] = [{} for _ in clients]
    try:
        for c, v in zip(clients, views, strict=True):
            _collect(c, {PREFIX + "A/one": {"v": 1}}, v)
            assert c.status.in_sync
        rev = ds.create(PREFIX + "A/two", {"v": 2})
        kv = ds.get(PREFIX + "A/one")
        assert kv is not None
        ds.delete(PREFIX + "A/one", revision=kv.mod_revision)
        for c, v in zip(clients, views, strict=True):
            _collect(c, {PREFIX + "A/two": {"v": 2}}, v)
            assert v == {PREFIX + "A/two": {"v": 2}}
            assert c.status.revision >= rev
    finally:
        for c in clients:
            c.close()


def test_reconnect_reports_keys_gone_meanwhile(tmp_path: Path) -> None:
    ds = open_datastore(f"sqlite://{tmp_path / 'g.db'}", create=True)
    path = str(tmp_path / "f.sock")
    ds.create(PREFIX + "A/one", {"v": 1})
    client = FanoutClient(path, retry_interval=0.01)
    try:
        for round_ in range(2):
            server = FanoutServer(ds, PREFIX, path)
            stop = threading.Event()
            thread = threading.Thread(target=server.serve, args=(stop.is_set,), daemon=True)
            thread.start()
            got: list[tuple[str, object]] = []
            deadline = time.monotonic() + 5
            while not client.status.in_sync and time.monotonic() < deadline:
                got += client.poll(0.05)
            if round_ == 0:
                assert got == [(PREFIX + "A/one", {"v": 1})]
                stop.set()
                thread.join(5)
                kv = ds.get(PREFIX + "A/one")
                assert kv is not None
                ds.delete(PREFIX + "A/one")
                while client.status.in_sync and time.monotonic() < deadline:
                    client.poll(0.05)  # notices the server went away
            else:
                assert got == [(PREFIX + "A/one", None)]
                stop.set()
                thread.join(5)
    finally:
        client.close()
        ds.close()


def test_a_client_that_stops_reading_is_dropped(tmp_path: Path) -> None:
    import socket

    ds = open_datastore(f"sqlite://{tmp_path / 'g.db'}", create=True)
    path = str(tmp_path / "f.sock")
    server = FanoutServer(ds, PREFIX, path, max_buffer=64 << 10)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop.is_set,), daemon=True)
    thread.start()
    lazy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lazy.connect(path)  # and never reads
        blob = "x" * (256 << 10)
        deadline = time.monotonic() + 10
        n = 0
        while server.stats.dropped == 0 and time.monotonic() < deadline:
            ds.create(f"{PREFIX}Big/{n}", {"blob": blob})
            n += 1
            time.sleep(0.02)
        assert server.stats.dropped == 1
    finally:
        lazy.close()
        stop.set()
        thread.join(5)
        ds.close()
