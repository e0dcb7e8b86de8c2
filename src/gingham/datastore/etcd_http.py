"""One keep-alive HTTP/1.1 connection to an etcd JSON gateway, for unary calls.

The standard library's ``http.client`` on a socket we open ourselves (TCP,
TLS, or etcd's unix-socket listener). Why not httpx here: a gateway call is
a small POST on a connection that stays open, and httpx's layers (request
models, httpcore, h11, the pool) cost about 0.3 ms of CPU per call on this
machine against 0.1 ms for ``http.client``, which counts when every IPAM
allocation and every CNI call is one; and the CNI plugin then never imports
httpx at all. Watches keep httpx (``etcd_watch.py``): a stream read by a
thread is where it is at its best.

Errors are two kinds, because the caller's retry rule depends on it:
:class:`ConnectFailed` (connect or TLS handshake: the request surely did not
reach etcd, any request may be retried elsewhere) and
:class:`RequestFailed` (after connecting: it may have been processed).
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class GatewayIOError(Exception):
    """No answer from this endpoint; ``str()`` is one line saying why."""


class ConnectFailed(GatewayIOError):
    """Connecting (or the TLS handshake) failed: nothing was sent."""


class RequestFailed(GatewayIOError):
    """The request was (maybe) sent, and no complete answer came back."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    path: str

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


class _Connection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, *, open_socket: Callable[[], socket.socket],
                 timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._open_socket = open_socket

    def connect(self) -> None:
        self.sock = self._open_socket()


class GatewayConnection:
    """A connection to one gateway endpoint; one thread at a time."""

    def __init__(
        self,
        base: str,
        *,
        uds: Callable[[], str] | None,
        tls: ssl.SSLContext | None,
        timeout: float,
        connect_timeout: float,
    ) -> None:
        parts = urlsplit(base)
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._uds = uds
        self._tls = tls
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._conn = _Connection(self._host, self._port, open_socket=self._open,
                                 timeout=timeout)  # fmt: skip

    def _open(self) -> socket.socket:
        if self._uds is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self._connect_timeout)
                sock.connect(self._uds())
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((self._host, self._port), self._connect_timeout)
            # Requests are one write each; nothing to gain from Nagle but delay.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            except BaseException:
                sock.close()
                raise
        sock.settimeout(self._timeout)
        return sock

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        conn = self._conn
        if conn.sock is not None and _closed_by_peer(conn.sock):
            conn.close()
        if conn.sock is None:
            try:
                conn.connect()
            except (OSError, ssl.SSLError, ValueError) as exc:
                conn.close()
                raise ConnectFailed(_why(exc)) from None
        try:
            conn.request("POST", path, body=body,
                         headers={"Content-Type": "application/json", **headers})  # fmt: skip
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            conn.close()
            raise RequestFailed(_why(exc)) from None
        if resp.will_close:
            conn.close()
        return Reply(resp.status, data, path)

    def close(self) -> None:
        self._conn.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle keep-alive connection that is readable was closed by the server
    (or holds bytes nobody asked for): not one to send a write on."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
