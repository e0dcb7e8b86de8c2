"""A whole reachability matrix in one process, every probe at once.

A process per cell would cost 81 processes for 9 workloads (≈ 4-6 s on a
busy 2-core machine). Instead a worker thread enters each source workload's network namespace
(``setns`` changes only the calling thread's namespace), opens its sockets
there (a socket stays in the namespace it was created in), returns to its
own namespace, and then waits for all of them together. A matrix costs one
timeout when some cell is blocked, a few milliseconds otherwise.

Same semantics as the lab's probe: TCP counts when the connection is
established; UDP when the listener's echo comes back (the datagram is resent
every 100 ms, as a neighbour entry may still be resolving).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
PAYLOAD = b"gingham-probe"
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Target:
    ref: str
    netns: str  # name under /run/netns
    address: str


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _open(protocol: str, address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    if protocol == "tcp":
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex((address, port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(code, os.strerror(code))
        return sock
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect((address, port))
    # An error here (say, a refused earlier datagram) is retried by the resend loop.
    with contextlib.suppress(OSError):
        sock.send(PAYLOAD)
    return sock


def _measure(
    sources: Sequence[Target],
    targets: Sequence[Target],
    port: int,
    protocol: str,
    timeout: float,
    out: dict[tuple[str, str], bool],
) -> None:
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    socks: dict[socket.socket, tuple[str, str]] = {}
    try:
        for src in sources:
            fd = os.open(f"/run/netns/{src.netns}", os.O_RDONLY)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            for dst in targets:
                try:
                    socks[_open(protocol, dst.address, port)] = (src.ref, dst.ref)
                except OSError:
                    out[(src.ref, dst.ref)] = False
    finally:
        _setns(own)
        os.close(own)
    sel = selectors.DefaultSelector()
    event = selectors.EVENT_WRITE if protocol == "tcp" else selectors.EVENT_READ
    for sock in socks:
        sel.register(sock, event)
    deadline = time.monotonic() + timeout
    next_resend = time.monotonic() + 0.1
    pending = set(socks)
    try:
        while pending:
            now = time.monotonic()
            if now >= deadline:
                break
            for key, _ in sel.select(min(deadline, next_resend) - now):
                ready = key.fileobj
                if not isinstance(ready, socket.socket):
                    continue
                sock = ready
                pending.discard(sock)
                sel.unregister(sock)
                if protocol == "tcp":
                    out[socks[sock]] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                else:
                    try:
                        out[socks[sock]] = sock.recv(64) == PAYLOAD
                    except OSError:
                        out[socks[sock]] = False
            if protocol == "udp" and time.monotonic() >= next_resend:
                next_resend = time.monotonic() + 0.1
                for sock in pending:
                    with contextlib.suppress(OSError):
                        sock.send(PAYLOAD)
        for sock in pending:
            out[socks[sock]] = False
    finally:
        sel.close()
        for sock in socks:
            sock.close()


def measure(
    targets: Sequence[Target],
    port: int,
    protocol: str = "tcp",
    timeout: float = 0.6,
    sources: Sequence[Target] | None = None,
) -> dict[str, dict[str, bool]]:
    """``{from: {to: reachable}}`` from each of ``sources`` (default: ``targets``) to
    each of ``targets``; a source's address is not used."""
    sources = targets if sources is None else sources
    out: dict[tuple[str, str], bool] = {}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _measure(sources, targets, port, protocol, timeout, out)
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)

    # A thread of its own: setns must never touch the caller's thread.
    worker = threading.Thread(target=run, name="prober")
    worker.start()
    worker.join()
    if errors:
        raise errors[0]
    return {a.ref: {b.ref: out[(a.ref, b.ref)] for b in targets} for a in sources}
