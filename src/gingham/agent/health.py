"""``/healthz`` (also ``/livez``), ``/readyz`` and ``/metrics`` on a local port.

Served from daemon threads that only *read* two booleans, the readiness
checks and detail text (``readiness.py``) and the metrics registry, so they
never touch the agent's state while the loop changes it. ``/readyz`` says
why it is 503 (``not ready: waiting for the first datastore sync (3.2 s)``),
and lists every check with ``?verbose``, as Kubernetes' does.

The same server serves metrics alone (:func:`metrics_server`): with
FelixConfiguration ``prometheusMetricsEnabled`` the agent moves ``/metrics``
to a port of its own and the health server stops serving it
(:attr:`HealthServer.serve_metrics`; ``agent/settings.py``).

Whatever connects, the server's cost stays bounded:

- one handler thread per connection, at most ``max_handlers`` at a time; a
  connection beyond that gets ``503 busy`` at once and is closed (no thread,
  no queue growing behind the busy ones);
- the request line and headers must arrive within ``request_timeout``
  seconds *in total* (a client sending one byte a second cannot stretch it)
  and fit in ``max_request_bytes`` (else ``431``); writes time out too;
- one request per connection (HTTP/1.0 style), so no idle keep-alive holds
  a handler.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gingham.agent.readiness import Check, body
from gingham.errors import ValidationError

log = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT = 5.0
DEFAULT_MAX_HANDLERS = 8
DEFAULT_MAX_REQUEST_BYTES = 8192


@dataclass
class HealthStats:
    served: int = 0
    timed_out: int = 0  # request line and headers not in within request_timeout
    too_large: int = 0  # request line and headers over max_request_bytes
    busy: int = 0  # turned away: max_handlers already at work


class _HeadTooLarge(Exception):
    pass


def _raw_response(sock: socket.socket, status: str, body: bytes) -> None:
    """Best effort, for connections not (or not properly) parsed as HTTP.

    What of the request has already arrived is read and discarded first: a
    close with unread input is a reset, which can destroy the answer before
    the client reads it. Bounded, non-blocking: a client still sending is
    not waited for.
    """
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        for _ in range(16):
            if not sock.recv(65536):
                break
    with contextlib.suppress(OSError):
        sock.settimeout(1.0)  # into an empty send buffer: never near this
    head = (
        f"HTTP/1.0 {status}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        sock.sendall(head.encode() + body)


class _BoundedHTTPServer(HTTPServer):
    """HTTPServer with a thread per request, but at most ``max_handlers`` threads."""

    # Connections are accepted (and the excess answered "busy") at once; a
    # deeper backlog keeps a burst from waiting on SYN retransmits meanwhile.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        max_handlers: int,
        stats: HealthStats,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_handlers)
        self.stats = stats
        if ":" in address[0]:  # an IPv6 healthHost
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.stats.busy += 1
            _raw_response(request, "503 Service Unavailable", b"busy\n")
            self.shutdown_request(request)
            return
        try:
            threading.Thread(
                target=self._handle, args=(request, client_address), daemon=True
            ).start()
        except BaseException:
            self._slots.release()
            self.shutdown_request(request)
            raise

    def _handle(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanishes mid-response is not the agent's problem.
        log.debug("health request from %s failed", client_address, exc_info=True)


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        live: Callable[[], bool],
        ready: Callable[[], bool],
        registry: CollectorRegistry,
        *,
        detail: Callable[[], str] | None = None,
        readiness: Callable[[], Sequence[Check]] | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_handlers: int = DEFAULT_MAX_HANDLERS,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        serve_metrics: bool = True,
        serve_probes: bool = True,
    ) -> None:
        if request_timeout <= 0:
            raise ValidationError(
                f"must be positive, not {request_timeout}", "health request_timeout"
            )
        if max_handlers < 1:
            raise ValidationError(f"must be at least 1, not {max_handlers}", "health max_handlers")
        if max_request_bytes < 256:
            raise ValidationError(
                f"must be at least 256, not {max_request_bytes}", "health max_request_bytes"
            )
        probes = {"/healthz": live, "/livez": live, "/readyz": ready} if serve_probes else {}
        stats = self.stats = HealthStats()
        # Read by the handler threads at each request: the agent may switch it.
        self.serve_metrics = serve_metrics
        server = self

        def readyz_body(ok: bool, verbose: bool) -> bytes:
            # The reasons are extra: when they cannot be had, the verdict still stands.
            found: Sequence[Check] = ()
            extra: list[str] = []
            if readiness is not None:
                try:
                    found = readiness()
                except Exception as exc:
                    extra.append(f"(reasons unavailable: {exc})")
            if detail is not None:
                try:
                    extra += detail().splitlines()
                except Exception as exc:
                    extra.append(f"(reasons unavailable: {exc})")
            return body(ok, found, extra, verbose).encode()

        class Handler(BaseHTTPRequestHandler):
            # Applied to the socket in setup(): bounds every write (and read).
            timeout = request_timeout
            # Errors for a request line that does not parse still get a status
            # line (the stock default, HTTP/0.9, answers with a bare body).
            default_request_version = "HTTP/1.0"

            def handle(self) -> None:
                try:
                    head = self._read_head()
                except _HeadTooLarge:
                    stats.too_large += 1
                    _raw_response(
                        self.connection, "431 Request Header Fields Too Large",
                        f"request line and headers over {max_request_bytes} bytes\n".encode(),
                    )  # fmt: skip
                    return
                except TimeoutError:
                    stats.timed_out += 1
                    return
                except OSError:
                    return
                if not head:
                    return
                self.connection.settimeout(request_timeout)
                self.rfile.close()
                # The stock parser reads from here: it sees only the bytes
                # that arrived in time and within the limit.
                self.rfile = io.BytesIO(head)
                self.handle_one_request()
                stats.served += 1

            def _read_head(self) -> bytes:
                deadline = time.monotonic() + request_timeout
                buf = bytearray()
                while True:
                    ends = [
                        (at + len(end))
                        for end in (b"\r\n\r\n", b"\n\n")
                        if (at := buf.find(end)) >= 0
                    ]
                    size = min(ends) if ends else len(buf)
                    if size > max_request_bytes:
                        raise _HeadTooLarge
                    if ends:
                        return bytes(buf[:size])
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    self.connection.settimeout(left)
                    chunk = self.connection.recv(4096)
                    if not chunk:  # the client gave up; nothing to answer
                        return b""
                    buf += chunk

            def do_GET(self) -> None:
                self.close_connection = True
                if self.path == "/metrics" and server.serve_metrics:
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                    return
                path = self.path
                verbose = False
                if path.startswith("/readyz?") and "/readyz" in probes:
                    query = parse_qs(urlsplit(path).query, keep_blank_values=True)
                    unknown = sorted(set(query) - {"verbose"})
                    if unknown:
                        self._send(400, f"unknown query parameter {unknown[0]!r} "
                                        "(/readyz takes verbose)\n".encode(), "text/plain")
                        return
                    said = query.get("verbose")  # "?verbose" alone says yes, as in Kubernetes
                    verbose = said is not None and said[-1].lower() not in ("0", "false")
                    path = "/readyz"
                probe = probes.get(path)
                if probe is None:
                    self._send(404, b"not found\n", "text/plain")
                    return
                try:
                    ok = bool(probe())
                except Exception as exc:
                    log.warning("health probe %s failed: %s", self.path, exc)
                    self._send(503, f"probe failed: {exc}\n".encode(), "text/plain")
                    return
                if path == "/readyz":
                    self._send(200 if ok else 503, readyz_body(ok, verbose), "text/plain")
                elif ok:
                    self._send(200, b"ok\n", "text/plain")
                else:
                    self._send(503, b"not ready\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every second would drown the agent's log

        self._server = _BoundedHTTPServer((host, port), Handler, max_handlers, stats)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a loop that never started
            self._server.shutdown()
        self._server.server_close()


def metrics_server(host: str, port: int, registry: CollectorRegistry) -> HealthServer:
    """A server for ``/metrics`` only (FelixConfiguration prometheusMetricsEnabled)."""
    return HealthServer(host, port, live=lambda: True, ready=lambda: True, registry=registry,
                        serve_probes=False)
