"""The agent's health server over real loopback TCP: probes, detail text, and its bounds."""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from gingham.agent.health import HealthServer

Make = Callable[..., HealthServer]


@pytest.fixture
def make() -> Iterator[Make]:
    servers: list[HealthServer] = []

    def _make(*args: object, **kwargs: object) -> HealthServer:
        if not args:
            args = ("127.0.0.1", 0, lambda: True, lambda: True, CollectorRegistry())
        server = HealthServer(*args, **kwargs)  # type: ignore[arg-type]  # args are the test's
        server.start()
        servers.append(server)
        return server

    yield _make
    for server in servers:
        server.stop()


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True once the server closes ``sock`` (EOF or reset), False if still open after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            try:
                if not sock.recv(65536):
                    return True
            except ConnectionResetError:
                return True
    return False


def test_probes_with_the_positional_signature(make: Make) -> None:
    ready = {"v": False}
    server = make("127.0.0.1", 0, lambda: True, lambda: ready["v"], CollectorRegistry())
    assert _get(server.port, "/healthz") == (200, "ok\n")
    assert _get(server.port, "/readyz") == (503, "not ready\n")
    ready["v"] = True
    assert _get(server.port, "/readyz") == (200, "ok\n")
    assert _get(server.port, "/metrics")[0] == 200
    assert _get(server.port, "/nope")[0] == 404


def test_readyz_carries_the_detail_lines_for_200_and_503(make: Make) -> None:
    state = {"ready": True, "detail": "invalid policy default/x: spec.types[0]\nno cluster ID"}

    def detail() -> str:
        if state["detail"] is None:
            raise RuntimeError("boom")
        return str(state["detail"])

    server = make(
        "127.0.0.1", 0, lambda: True, lambda: bool(state["ready"]), CollectorRegistry(),
        detail=detail,
    )  # fmt: skip
    assert _get(server.port, "/readyz") == (
        200, "ok\ninvalid policy default/x: spec.types[0]\nno cluster ID\n",
    )  # fmt: skip
    state["ready"] = False
    assert _get(server.port, "/readyz") == (
        503, "not ready\ninvalid policy default/x: spec.types[0]\nno cluster ID\n",
    )  # fmt: skip
    state["detail"] = None  # a failing detail does not change the verdict
    assert _get(server.port, "/readyz") == (503, "not ready\n(reasons unavailable: boom)\n")
    assert _get(server.port, "/healthz") == (200, "ok\n")  # detail is for /readyz only


def test_a_probe_that_raises_is_a_503_not_a_dead_server(make: Make) -> None:
    def broken() -> bool:
        raise RuntimeError("state torn")

    server = make("127.0.0.1", 0, lambda: True, broken, CollectorRegistry())
    status, body = _get(server.port, "/readyz")
    assert status == 503 and "state torn" in body
    assert _get(server.port, "/healthz") == (200, "ok\n")


def test_a_silent_client_times_out_and_others_are_served_meanwhile(make: Make) -> None:
    server = make(request_timeout=1.0)
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        assert _get(server.port, "/healthz") == (200, "ok\n")
        assert _closed_within(silent, 30), "a client that sends nothing keeps its handler"
        assert server.stats.timed_out == 1
    finally:
        silent.close()
    assert _get(server.port, "/readyz") == (200, "ok\n")


def test_headers_sent_slowly_do_not_stretch_the_deadline(make: Make) -> None:
    server = make(request_timeout=1.0)
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        slow.sendall(b"GET /healthz HTTP/1.0\r\nX-Slow: ")
        deadline = time.monotonic() + 30
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                slow.sendall(b"a")  # a byte well within each read's timeout
            except OSError:
                closed = True
                break
            closed = _closed_within(slow, 0.2)
        assert closed, "a client trickling header bytes keeps its handler"
        assert server.stats.timed_out == 1
    finally:
        slow.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.0\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.0\r\n\r\n",
        b"GET /healthz HTTP/1.0\r\n" + b"X: y\r\n" * 3000 + b"\r\n",
    ],
    ids=["long header", "long request line", "many headers"],
)
def test_oversized_requests_get_431(make: Make, request_bytes: bytes) -> None:
    server = make(max_request_bytes=8192)
    answer = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        try:
            sock.sendall(request_bytes)
            while chunk := sock.recv(4096):
                answer += chunk
        except ConnectionResetError:
            pass  # the server stopped reading before all of it was in: its right
    assert answer == b"" or answer.startswith(b"HTTP/1.0 431 "), answer[:100]
    deadline = time.monotonic() + 20
    while server.stats.too_large < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats.too_large == 1
    assert _get(server.port, "/healthz") == (200, "ok\n")


def test_an_oversized_request_is_answered_431_when_the_client_reads(make: Make) -> None:
    server = make(max_request_bytes=8192)
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.0 431 ")


def test_garbage_is_a_400_and_the_server_goes_on(make: Make) -> None:
    server = make()
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"\x00\xff\xfe nonsense\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.0 400 ")
    assert _get(server.port, "/healthz") == (200, "ok\n")


def test_a_flood_of_idle_connections_does_not_make_a_thread_each(make: Make) -> None:
    before = threading.active_count()
    server = make(request_timeout=60.0, max_handlers=4)
    started = threading.active_count()  # plus the accept loop
    idle: list[socket.socket] = []
    try:
        for _ in range(200):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=20))
        deadline = time.monotonic() + 30
        while (
            server.stats.busy < 196
            and threading.active_count() <= started + 4
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert threading.active_count() <= started + 4, (before, started, threading.active_count())
        assert server.stats.busy == 196
        # The ones turned away were told so, not left hanging.
        idle[-1].settimeout(20)
        assert idle[-1].recv(4096).startswith(b"HTTP/1.0 503 ")
        status, body = _get(server.port, "/healthz")
        assert (status, body) == (503, "busy\n")  # all four handlers wait on silent clients
    finally:
        for sock in idle:
            sock.close()
    # The silent four hung up: their handlers end, and probes are served again.
    deadline = time.monotonic() + 30
    answer = (0, "")
    while answer != (200, "ok\n") and time.monotonic() < deadline:
        answer = _get(server.port, "/healthz")
        time.sleep(0.05)
    assert answer == (200, "ok\n")


def test_stop_without_start_returns() -> None:
    server = HealthServer("127.0.0.1", 0, lambda: True, lambda: True, CollectorRegistry())
    thread = threading.Thread(target=server.stop, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive()
