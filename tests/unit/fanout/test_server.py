"""The fan-out server and client under hostile peers: real unix sockets, a real sqlite datastore.

A peer with another uid is a forked child that calls ``os.setuid``; the rest
runs as the test's own user.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gingham.datastore import open_datastore
from gingham.datastore.base import Datastore, Undecodable
from gingham.errors import ProtocolError, ValidationError
from gingham.fanout import FanoutClient, FanoutServer, Frame, FrameDecoder, encode_frames
from gingham.fanout.protocol import HEADER

PREFIX = "/gingham/v1/resources/"
NOBODY = 65534


@pytest.fixture
def ds(tmp_path: Path) -> Iterator[Datastore]:
    store = open_datastore(f"sqlite://{tmp_path / 'g.db'}", create=True)
    yield store
    store.close()


Serve = Callable[..., FanoutServer]


@pytest.fixture
def serve(ds: Datastore, tmp_path: Path) -> Iterator[Serve]:
    """Start servers on a thread each; all stopped (socket files gone) at the end."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def _serve(path: str | None = None, **kwargs: object) -> FanoutServer:
        server = FanoutServer(
            ds,
            PREFIX,
            path or str(tmp_path / "f.sock"),
            **kwargs,  # type: ignore[arg-type]
        )
        stop = threading.Event()
        thread = threading.Thread(target=server.serve, args=(stop.is_set,), daemon=True)
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
        time.sleep(0.02)
    return True


def _sync(client: FanoutClient, view: dict[str, object], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, value in client.poll(0.05):
            if value is None:
                view.pop(key, None)
            else:
                view[key] = value
        if client.status.in_sync:
            return
    raise AssertionError(f"client not in sync: {client.status}")


def _read_until_eof(sock: socket.socket, seconds: float = 20) -> bytes:
    sock.settimeout(seconds)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


# -- the socket file -----------------------------------------------------------


def test_the_socket_is_0600_even_under_umask_0(ds: Datastore, tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        server = FanoutServer(ds, PREFIX, str(tmp_path / "f.sock"))
        try:
            assert os.umask(0) == 0  # the server left the process umask alone
            mode = os.stat(tmp_path / "f.sock").st_mode
            assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        finally:
            server.close()
    finally:
        os.umask(old)
    assert not (tmp_path / "f.sock").exists()


def test_a_file_that_is_not_a_socket_is_not_replaced(ds: Datastore, tmp_path: Path) -> None:
    precious = tmp_path / "f.sock"
    precious.write_text("not a socket")
    with pytest.raises(ValidationError, match="not a socket"):
        FanoutServer(ds, PREFIX, str(precious))
    assert precious.read_text() == "not a socket"


def test_a_live_server_is_not_replaced_but_a_stale_socket_is(
    ds: Datastore, tmp_path: Path, serve: Serve
) -> None:
    path = str(tmp_path / "f.sock")
    serve(path)
    with pytest.raises(ValidationError, match="another fan-out server"):
        FanoutServer(ds, PREFIX, path)
    stale_path = str(tmp_path / "stale.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(stale_path)
    stale.close()  # the file stays, nobody listens
    FanoutServer(ds, PREFIX, stale_path).close()


# -- clients that misbehave ------------------------------------------------------


def test_a_client_that_sends_garbage_is_dropped_and_the_others_served(
    ds: Datastore, serve: Serve
) -> None:
    ds.create(PREFIX + "A/one", {"v": 1})
    server = serve()
    good = FanoutClient(server.path)
    rude = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        view: dict[str, object] = {}
        _sync(good, view)
        rude.connect(server.path)
        rude.sendall(b"GET / HTTP/1.1\r\n\r\n" + b"\xff" * 1000)
        data = _read_until_eof(rude)  # closed, not left hanging
        frames = FrameDecoder().feed(data)
        assert all(f.kind == "snapshot" for f in frames)  # whatever it got before the drop
        assert _until(lambda: server.stats.protocol_errors == 1)
        ds.create(PREFIX + "A/two", {"v": 2})
        assert _until(lambda: (view.update(dict(good.poll(0.05))), PREFIX + "A/two" in view)[1])
        assert good.status.in_sync and good.status.resyncs == 0
    finally:
        good.close()
        rude.close()


def test_the_client_beyond_max_clients_is_refused_with_a_reason(
    ds: Datastore, serve: Serve
) -> None:
    server = serve(max_clients=2)
    first, second = FanoutClient(server.path), FanoutClient(server.path)
    third = FanoutClient(server.path, retry_interval=0.05)
    extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _sync(first, {})
        _sync(second, {})
        extra.connect(server.path)
        frames = FrameDecoder().feed(_read_until_eof(extra))  # an answer and EOF, not a hang
        assert [f.kind for f in frames] == ["error"]
        assert "server full: 2 clients" in frames[0].reason
        assert _until(lambda: (third.poll(0.05), "server full" in third.status.last_error)[1])
        assert not third.status.in_sync
        assert server.stats.clients == 2
        first.close()  # a place frees up: the third gets in on its next try
        _sync(third, {})
        assert server.stats.refused_full >= 2
    finally:
        for c in (first, second, third):
            c.close()
        extra.close()


def _connect_as(uid: int, path: str) -> int:
    """Fork a child that takes ``uid``, connects to ``path`` and writes what it read to a file.

    Returns the child's pid. The child holds no lock of ours: it touches
    only the socket module and os, then ``_exit``s.
    """
    out = path + f".{uid}.out"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgid(uid)
            os.setuid(uid)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(20)
            sock.connect(path)
            data = b""
            while True:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                data += chunk
                if len(data) >= 4 and len(data) >= 4 + HEADER.unpack_from(data)[0]:
                    break  # one whole frame is all we want
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            os.write(fd, data)
            os.close(fd)
            code = 0
        finally:
            os._exit(code)
    return pid


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory another uid can reach (pytest's tmp_path is 0700 all the way up)."""
    path = Path(tempfile.mkdtemp(prefix="gh-fanout-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a process with another uid")
@pytest.mark.parametrize("allowed", [(), (NOBODY,)], ids=["refused", "allow-listed"])
def test_a_peer_with_another_uid_is_served_only_if_allowed(
    ds: Datastore, open_dir: Path, allowed: tuple[int, ...]
) -> None:
    ds.create(PREFIX + "A/one", {"v": 1})
    path = str(open_dir / "f.sock")
    server = FanoutServer(ds, PREFIX, path, allowed_uids=allowed)
    try:
        # As an operator who widened the mode by hand: the uid check is the second wall.
        os.chmod(path, 0o666)
        child = _connect_as(NOBODY, path)
        deadline = time.monotonic() + 30
        status = None
        while status is None and time.monotonic() < deadline:
            server.step()  # single-threaded: the child forked from a process with no extra threads
            done, status = os.waitpid(child, os.WNOHANG)
            if not done:
                status = None
        if status is None:
            os.kill(child, 9)
            os.waitpid(child, 0)
            raise AssertionError("the child never finished")
        assert os.waitstatus_to_exitcode(status) == 0
        frames = FrameDecoder().feed(Path(path + f".{NOBODY}.out").read_bytes())
    finally:
        server.close()
    if allowed:
        assert [f.kind for f in frames] == ["snapshot"]
        assert frames[0].updates == ((PREFIX + "A/one", {"v": 1}),)
        assert server.stats.refused_uid == 0
    else:
        assert [f.kind for f in frames] == ["error"]
        assert f"uid {NOBODY} is not allowed" in frames[0].reason
        assert server.stats.refused_uid == 1 and server.stats.accepted == 0


# -- servers that misbehave -------------------------------------------------------


class _FakeServer:
    """Accepts one client on a unix socket and sends it what the test says."""

    def __init__(self, path: str, send: Callable[[socket.socket], None]) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.sent = 0
        self._send = send
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn, _ = self.listener.accept()
        with conn, contextlib.suppress(OSError):  # the client hung up on us: expected
            self._send(conn)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(30)


_DELTAS = b"".join(encode_frames(Frame("deltas", 2, (("/k", {"v": 1}),))))
_PART_BODY = b'{"t":"snapshot","rev":1,"more":true,"items":[["/j",{"v":0}]]}'
_PART = HEADER.pack(len(_PART_BODY)) + _PART_BODY
GARBAGE = {
    "bad JSON": b"\x00\x00\x00\x05{oops",
    "not framed": b"newline-delimited JSON\n",
    "not an object": HEADER.pack(8) + b"[1,2,3]\n",
    "2 GiB length": b"\x7f\xff\xff\xff",
    "deltas before the snapshot": _DELTAS,
    "deltas inside a snapshot": _PART + _DELTAS,
}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
def test_a_client_that_receives_garbage_drops_the_connection(
    tmp_path: Path, garbage: bytes
) -> None:
    path = str(tmp_path / "fake.sock")

    def send(conn: socket.socket) -> None:
        conn.sendall(garbage)
        conn.recv(1)  # until the client hangs up

    fake = _FakeServer(path, send)
    client = FanoutClient(path, retry_interval=60)
    try:
        assert _until(lambda: (client.poll(0.05), client.status.resyncs == 1)[1])
        assert "fan-out protocol error" in client.status.last_error
        assert client.fileno() == -1 and not client.status.in_sync
    finally:
        client.close()
        fake.close()


def test_the_decoder_raises_protocol_error_for_what_the_client_got() -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(b"\x00\x00\x00\x05{oops")


_CHILD = """
import json, resource, sys, time
from gingham.fanout import FanoutClient
client = FanoutClient(sys.argv[1], retry_interval=60)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.monotonic()
while client.status.resyncs == 0 and time.monotonic() - t0 < 60:
    client.poll(0.1)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"error": client.status.last_error, "grew_kib": after - before,
                  "seconds": time.monotonic() - t0}))
"""


def test_a_256_mib_frame_is_refused_fast_with_bounded_memory(tmp_path: Path) -> None:
    path = str(tmp_path / "fake.sock")
    chunk = b"x" * (1 << 20)

    def flood(conn: socket.socket) -> None:
        conn.sendall(HEADER.pack(256 << 20))
        for _ in range(256):  # and then the body, for as long as the client reads
            conn.sendall(chunk)

    fake = _FakeServer(path, flood)
    try:
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, path],
            capture_output=True, text=True, timeout=240, check=True,
        )  # fmt: skip
    finally:
        fake.close()
    report = json.loads(result.stdout)
    assert "announced length 268435456" in report["error"], report
    assert report["grew_kib"] < 50 * 1024, report


# -- limits the server keeps for its own frames ----------------------------------------


def test_a_snapshot_larger_than_a_frame_arrives_whole(ds: Datastore, serve: Serve) -> None:
    for i in range(300):
        ds.create(f"{PREFIX}Many/{i:03d}", {"pad": "y" * 200})
    server = serve(max_frame=8192)
    client = FanoutClient(server.path, max_frame=8192)
    try:
        first: list[tuple[str, object]] = []
        deadline = time.monotonic() + 20
        while not client.status.in_sync and time.monotonic() < deadline:
            got = client.poll(0.05)
            assert not first or not got or client.status.in_sync  # one batch, not parts
            first += got
        assert len(first) == 300 and client.status.snapshots == 1
    finally:
        client.close()


def test_a_value_too_large_for_a_frame_costs_that_key_only(ds: Datastore, serve: Serve) -> None:
    ds.create(PREFIX + "A/small", {"v": 1})
    server = serve(max_frame=16384)
    client = FanoutClient(server.path, max_frame=16384)
    try:
        view: dict[str, object] = {}
        _sync(client, view)
        ds.create(PREFIX + "A/huge", {"blob": "z" * 100_000})
        ds.create(PREFIX + "A/after", {"v": 2})
        assert _until(lambda: (view.update(dict(client.poll(0.05))), PREFIX + "A/after" in view)[1])
        huge = view[PREFIX + "A/huge"]
        assert isinstance(huge, Undecodable) and "larger than a fan-out frame" in huge.reason
        assert view[PREFIX + "A/small"] == {"v": 1}
        assert client.status.in_sync and client.status.resyncs == 0
    finally:
        client.close()


def test_frames_from_the_server_never_exceed_its_cap(ds: Datastore, serve: Serve) -> None:
    for i in range(100):
        ds.create(f"{PREFIX}Many/{i:03d}", {"pad": "y" * 500})
    server = serve(max_frame=4096)
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        raw.connect(server.path)
        raw.settimeout(20)
        decoder = FrameDecoder(max_frame=4096)  # refuses anything larger
        frames: list[Frame] = []
        # (A "stale" frame may come first: the server had no snapshot yet when we connected.)
        while not frames or frames[-1].kind != "snapshot" or frames[-1].more:
            frames += decoder.feed(raw.recv(65536))
        assert len([f for f in frames if f.kind == "snapshot"]) > 10
    finally:
        raw.close()


_OUT_OF_FDS_SERVER = """
import json, os, resource, sys, threading
from gingham.datastore import open_datastore
from gingham.fanout import FanoutServer
ds = open_datastore(sys.argv[1], create=True)
server = FanoutServer(ds, "/gingham/v1/resources/", sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 10, hard))
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
print("ready", flush=True)
server.serve(stop.is_set)
print(json.dumps({"accepted": server.stats.accepted, "polls": server.stats.polls}), flush=True)
"""


def test_out_of_descriptors_the_server_pauses_accepting_and_recovers(tmp_path: Path) -> None:
    path = str(tmp_path / "f.sock")
    proc = subprocess.Popen(
        [sys.executable, "-c", _OUT_OF_FDS_SERVER, f"sqlite://{tmp_path / 'g.db'}", path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    socks: list[socket.socket] = []
    client = FanoutClient(path, retry_interval=0.05)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for _ in range(40):  # more than it has descriptors for
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            socks.append(sock)
            sock.connect(path)
        time.sleep(2)
        assert proc.poll() is None, "the server died out of descriptors"
        for sock in socks:
            sock.close()
        _sync(client, {}, seconds=30)  # it accepts again once descriptors are free
    finally:
        client.close()
        for sock in socks:
            sock.close()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "pausing" in err
    assert json.loads(out)["polls"] > 0
