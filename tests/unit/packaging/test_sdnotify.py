"""gingham.sdnotify against a real unix datagram socket, as systemd listens on one."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gingham.sdnotify import Notifier, notify, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(10)  # a bound on a wait that should not happen, not a timing check
    try:
        yield sock, path
    finally:
        sock.close()


def _nothing_waiting(sock: socket.socket) -> bool:
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(timeout)
    return False


def test_one_datagram_of_lines(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert notify("READY=1", "STATUS=all\nfine", environ={"NOTIFY_SOCKET": path})
    # one datagram; a line break inside a value would start a bogus field
    assert sock.recv(4096) == b"READY=1\nSTATUS=all fine"


def test_abstract_namespace_socket() -> None:
    name = f"gingham-test-{os.getpid()}-{id(object())}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(10)
    try:
        assert notify("STOPPING=1", environ={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"STOPPING=1"
    finally:
        sock.close()


def test_nothing_without_notify_socket_and_no_error_when_nobody_listens(tmp_path: Path) -> None:
    assert not notify("READY=1", environ={})
    assert not notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert not notify("READY=1", environ={"NOTIFY_SOCKET": "relative/path"})


def test_ready_once_status_on_change(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier(environ={"NOTIFY_SOCKET": path})
    n.update(False, "starting")
    assert sock.recv(4096) == b"STATUS=starting"
    n.update(False, "starting")  # unchanged: nothing sent
    assert _nothing_waiting(sock)
    n.update(True, "ready")
    assert sock.recv(4096) == b"READY=1\nSTATUS=ready"
    assert n.is_ready
    n.update(False, "not ready: datastore lost")  # no way back to "activating"
    assert sock.recv(4096) == b"STATUS=not ready: datastore lost"
    n.update(True, "ready")
    assert sock.recv(4096) == b"STATUS=ready"  # READY=1 went once
    n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    n.stopping()
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"


def test_watchdog_interval() -> None:
    me = str(os.getpid())
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": me}) == 2.5
    assert watchdog_interval({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
