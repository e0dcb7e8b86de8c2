"""The fan-out server: follows the datastore once and serves many agents.

One select loop over the listener, the clients and the follower's wake-up
pipe (``follower.py``: the datastore watch runs on a thread of its own and
wakes the loop the moment it has something; no poll interval). Changes are
folded into the cached state and sent to every client as ``deltas`` frames
(encoded once, the same bytes to all); new clients get the cached state as a
``snapshot`` first.

The server tells its clients whether they may trust what they have, as an
agent's own syncer would tell it:

- when the follower loses the datastore (the watch fails, or the probe of a
  hung datastore times out), every client gets a ``stale`` frame with the
  reason and reports itself out of sync (its agent not ready, its dataplane
  left as it is: fail static); clients that connect meanwhile get the same;
- when the datastore answers again the follower takes a new snapshot, the
  cache is brought up to it, and every client gets the whole state as a
  new ``snapshot`` (the keys it had that are gone now come out as absent on
  its side), never a partial view;
- every ``ping_interval`` seconds each client gets a ``ping``, so a client
  can tell a server that hangs from one with nothing to say.

Bounds, so that no client can cost the server (or the other clients) more
than its share:

- a client more than ``max_buffer`` bytes behind is dropped; it reconnects
  and starts from a snapshot. Queued frames are shared between clients, so
  a burst of new clients costs one encoded snapshot, not one each;
- at most ``max_clients`` clients; the next one gets an ``error`` frame
  saying so and is closed (it retries after its ``retry_interval``);
- clients only listen: one that sends anything is dropped with a log line;
- the socket file is mode 0600 and each peer's uid (``SO_PEERCRED``) must
  be the server's, root's or one of ``allowed_uids``; anyone else gets an
  ``error`` frame, is closed and logged;
- over TCP (``listen``) only mutual TLS (``tls.py``): a client needs a
  certificate the CA signed (of a name in ``allowed_names``, when given) and
  has ``HANDSHAKE_TIMEOUT`` seconds to show it; the handshake runs in this
  loop, so a slow or silent peer holds nothing but its slot meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gingham.datastore.base import Datastore
from gingham.errors import ValidationError
from gingham.fanout.follower import PROBE_INTERVAL, Follower
from gingham.fanout.listeners import listen_tcp, listen_unix, peer_credentials
from gingham.fanout.protocol import DEFAULT_MAX_FRAME, Frame, Update, encode_frames
from gingham.fanout.tls import HANDSHAKE_TIMEOUT, TLSFiles, peer_name, server_context
from gingham.sdnotify import Notifier

log = logging.getLogger(__name__)

DEFAULT_MAX_CLIENTS = 4096
# A client that hears nothing for a few of these takes the server for hung.
PING_INTERVAL = 5.0
_WAKE = object()  # selector data of the follower's pipe
_TCP = object()  # selector data of the TLS listener (the unix one has None)
# Nothing to read or write now: a plain socket says BlockingIOError, a TLS one SSLWant*Error.
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
# A refused client retries every half second or so: say it once in a while, not each time.
_REFUSAL_LOG_INTERVAL = 10.0


@dataclass(eq=False)  # by identity: clients are kept in sets
class _Client:
    sock: socket.socket
    pid: int
    uid: int
    out: deque[bytes] = field(default_factory=deque)  # frames, shared with other clients
    offset: int = 0  # bytes of out[0] already sent
    pending: int = 0  # bytes queued and not yet sent
    greeted: bool = False
    peer: str = ""  # TLS: address and certificate name ("" on the unix socket)
    handshake_due: float = 0.0  # TLS: drop the client if still shaking hands then (0: done)

    def describe(self) -> str:
        if self.peer:
            return self.peer
        return f"pid {self.pid} uid {self.uid}"


@dataclass
class ServerStats:
    clients: int = 0
    accepted: int = 0
    disconnected: int = 0  # clients that went away, or were dropped, once served
    dropped: int = 0  # clients cut off for falling too far behind
    refused_full: int = 0  # turned away: max_clients reached
    refused_uid: int = 0  # turned away: peer uid not allowed
    refused_tls: int = 0  # turned away: TLS handshake failed, timed out, or name not allowed
    protocol_errors: int = 0  # clients dropped for sending anything
    polls: int = 0  # the follower's polls of the datastore watch
    batches: int = 0  # of changes from the follower
    snapshots: int = 0  # encoded (each shared by the clients greeted at once)
    stale: int = 0  # times the datastore was lost
    frames: int = 0
    bytes_sent: int = 0


class FanoutServer:
    def __init__(
        self,
        datastore: Datastore,
        prefix: str,
        path: str | None,
        *,
        listen: tuple[str, int] | None = None,
        tls: TLSFiles | None = None,
        allowed_names: Iterable[str] = (),
        ignore: Callable[[str], bool] = lambda key: False,
        max_buffer: int = 64 << 20,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        max_frame: int = DEFAULT_MAX_FRAME,
        allowed_uids: Iterable[int] = (),
        ping_interval: float = PING_INTERVAL,
        probe_interval: float = PROBE_INTERVAL,
    ) -> None:
        if max_clients < 1:
            raise ValidationError(f"must be at least 1, not {max_clients}", "fan-out max_clients")
        uids = tuple(allowed_uids)
        if any(not isinstance(u, int) or u < 0 for u in uids):
            raise ValidationError(f"must be non-negative integers: {uids}", "fan-out allowed_uids")
        if max_frame < 4096:
            raise ValidationError(f"must be at least 4096, not {max_frame}", "fan-out max_frame")
        for name, value in (("ping_interval", ping_interval), ("probe_interval", probe_interval)):
            if not value > 0:
                raise ValidationError(f"must be more than 0 seconds, not {value}", f"fan-out {name}")
        if path is None and listen is None:
            raise ValidationError("a unix socket path, a TCP address to listen on, or both",
                                  "fan-out server")  # fmt: skip
        if (listen is None) != (tls is None):
            raise ValidationError("TCP is served with mutual TLS only: give both the address "
                                  "and the TLS files, or neither", "fan-out server")  # fmt: skip
        self.path = path
        self.allowed_names = frozenset(allowed_names)
        self._tls = server_context(tls) if tls is not None else None
        self.max_buffer = max_buffer
        self.max_clients = max_clients
        self.max_frame = max_frame
        self.ping_interval = ping_interval
        self.uid = os.geteuid()
        self.allowed_uids = frozenset({self.uid, 0, *uids})
        self.state: dict[str, Any] = {}
        self.stats = ServerStats()
        self.in_sync = False
        self.revision = 0
        self.stale_reason = "no snapshot of the datastore yet"
        self._clients: dict[int, _Client] = {}
        self._last_refusal_log = self._last_tls_refusal_log = -_REFUSAL_LOG_INTERVAL
        self._refusals_unlogged = self._tls_refusals_unlogged = 0
        self._accept_paused_until = 0.0
        self._next_ping = time.monotonic() + ping_interval
        self._handshaking: set[_Client] = set()
        self._sel = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._inode = 0
        self._tcp: socket.socket | None = None
        self.tcp_address: tuple[str, int] | None = None  # as bound (port 0: the one chosen)
        try:
            if path is not None:
                self._listener = listen_unix(path)
                self._inode = os.stat(path).st_ino
                self._sel.register(self._listener, selectors.EVENT_READ, None)
            if listen is not None:
                self._tcp = listen_tcp(*listen)
                self.tcp_address = self._tcp.getsockname()[:2]
                self._sel.register(self._tcp, selectors.EVENT_READ, _TCP)
        except BaseException:
            self._close_listeners()
            raise
        self.follower = Follower(datastore, prefix, ignore=ignore, probe_interval=probe_interval)
        self._sel.register(self.follower.fileno(), selectors.EVENT_READ, _WAKE)

    # -- the loop -----------------------------------------------------------

    def serve(self, should_stop: Callable[[], bool], turn: float = 0.5) -> None:
        """Serve until ``should_stop()`` (asked at least every ``turn`` seconds), then close.

        Under systemd (``Type=notify``) the server is ready when it listens and holds a
        whole snapshot of the datastore: agents that connect from then on are served.
        """
        notifier = Notifier()
        try:
            self.follower.start()
            while not should_stop():
                self.step(turn)
                notifier.update(self.in_sync, self._service_status())
        finally:
            notifier.stopping()
            self.close()

    def _service_status(self) -> str:
        if self.in_sync:
            return "ready: listening, in sync with the datastore"
        return f"not ready: {self.stale_reason}"

    def step(self, timeout: float = 0.0) -> None:
        """One turn: what the follower brought, then I/O for at most ``timeout`` seconds.

        Without :meth:`serve` (no follower thread) it polls the datastore
        itself, without waiting: a single-threaded caller (a test that forks)
        drives the server this way.
        """
        if not self.follower.threaded:
            self.follower.run_once(0)
        self._on_batches()
        now = time.monotonic()
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            for listener, data in self._listeners():
                self._sel.register(listener, selectors.EVENT_READ, data)
        for c in [c for c in self._handshaking if now >= c.handshake_due]:
            self._refuse_tls(c, f"no TLS handshake within {HANDSHAKE_TIMEOUT:g} s")
        if now >= self._next_ping:
            self._next_ping = now + self.ping_interval
            self._send_all(encode_frames(Frame("ping", self.revision)), greeted_only=False)
        wait = max(0.0, min(timeout, self._next_ping - now))
        for sk, events in self._sel.select(wait):
            if sk.data is None:
                self._accept()
            elif sk.data is _TCP:
                self._accept_tcp()
            elif sk.data is _WAKE:
                self._on_batches()
            else:
                self._on_client(sk.data, events)

    def _on_batches(self) -> None:
        batches = self.follower.take()
        self.stats.polls = self.follower.polls
        deltas: list[Update] = []
        for batch in batches:
            self.stats.batches += 1
            for key, value in batch.updates:
                if value is None:
                    self.state.pop(key, None)
                else:
                    self.state[key] = value
            self.revision = max(self.revision, batch.revision)
            if batch.in_sync and self.in_sync:
                deltas.extend(batch.updates)
                continue
            self._send_deltas(deltas)
            deltas = []
            if batch.in_sync:
                # Back. Every client was left ungreeted when the datastore was
                # lost (or connected since): _greet_new sends each the state whole.
                self.in_sync, self.stale_reason = True, ""
                log.info("fan-out: in sync with the datastore at revision %d (%d keys)",
                         self.revision, len(self.state))  # fmt: skip
            elif self.in_sync or batch.reason != self.stale_reason:
                self.in_sync, self.stale_reason = False, batch.reason or "datastore lost"
                self.stats.stale += 1
                self._send_all(
                    encode_frames(Frame("stale", self.revision, reason=self.stale_reason)),
                    greeted_only=False,
                )
                for c in self._clients.values():
                    c.greeted = False  # until the next snapshot
        self._send_deltas(deltas)
        if self.in_sync:
            self._greet_new()

    def _send_deltas(self, updates: list[Update]) -> None:
        if updates:
            frames = encode_frames(Frame("deltas", self.revision, tuple(updates)), self.max_frame)
            self.stats.frames += len(frames)
            self._send_all(frames, greeted_only=True)

    # -- clients --------------------------------------------------------------

    def _listeners(self) -> list[tuple[socket.socket, object]]:
        out: list[tuple[socket.socket, object]] = []
        if self._listener is not None:
            out.append((self._listener, None))
        if self._tcp is not None:
            out.append((self._tcp, _TCP))
        return out

    def _take(self, listener: socket.socket) -> socket.socket | None:
        """The next connection waiting on ``listener``; None when there is none (or no
        descriptor left for it: then both listeners rest a second instead of spinning)."""
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                raise
            log.warning("fan-out: cannot accept clients: %s; pausing for 1s", exc)
            for other, _data in self._listeners():
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(other)
            self._accept_paused_until = time.monotonic() + 1.0
            return None
        return sock

    def _accept_tcp(self) -> None:
        assert self._tcp is not None and self._tls is not None
        while (sock := self._take(self._tcp)) is not None:
            try:
                host, port = sock.getpeername()[:2]
                where = f"{host}:{port}"
            except OSError:
                sock.close()
                continue
            if len(self._clients) >= self.max_clients:
                # Nothing can be said before the handshake: closed, and counted.
                self.stats.refused_full += 1
                self._log_full(0, -1)
                sock.close()
                continue
            sock.setblocking(False)
            try:
                tls = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except OSError:
                sock.close()
                continue
            client = _Client(tls, 0, -1, peer=where,
                             handshake_due=time.monotonic() + HANDSHAKE_TIMEOUT)  # fmt: skip
            self._clients[tls.fileno()] = client
            self._handshaking.add(client)
            self._sel.register(tls, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
            self.stats.clients = len(self._clients)
            self._handshake(client)

    def _handshake(self, c: _Client) -> None:
        sock = c.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._sel.modify(sock, selectors.EVENT_READ, c)
            return
        except ssl.SSLWantWriteError:
            self._sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
            return
        except OSError as exc:  # ssl.SSLError: no certificate, another CA's, not TLS at all
            self._refuse_tls(c, f"TLS handshake failed: {exc}")
            return
        self._handshaking.discard(c)
        c.handshake_due = 0.0
        name = peer_name(sock)
        c.peer = f"{c.peer} ({name or 'no common name'})"
        if self.allowed_names and name not in self.allowed_names:
            self._refuse_tls(c, f"certificate name {name!r} is not allowed on this fan-out server")
            return
        self.stats.accepted += 1
        log.info("fan-out: TLS client %s", c.peer)
        if not self.in_sync:
            self._queue(c, encode_frames(Frame("stale", self.revision, reason=self.stale_reason)))
        self._flush(c)

    def _refuse_tls(self, c: _Client, reason: str) -> None:
        # A refused agent comes back every half second: said once, then at most every 10 s.
        now = time.monotonic()
        self._tls_refusals_unlogged += 1
        if now - self._last_tls_refusal_log >= _REFUSAL_LOG_INTERVAL:
            log.warning("fan-out: refused TLS client %s: %s (%d refusal(s) since the last "
                        "such line)", c.peer, reason, self._tls_refusals_unlogged)  # fmt: skip
            self._last_tls_refusal_log = now
            self._tls_refusals_unlogged = 0
        if not c.handshake_due:  # the handshake is done: the client can be told why
            (data,) = encode_frames(Frame("error", self.revision, reason=reason))
            with contextlib.suppress(OSError):
                c.sock.send(data)
        self._handshaking.discard(c)
        self._clients.pop(c.sock.fileno(), None)  # never served: not counted as disconnected
        self._drop(c)
        self.stats.refused_tls += 1

    def _accept(self) -> None:
        assert self._listener is not None
        while (sock := self._take(self._listener)) is not None:
            try:
                pid, uid, _gid = peer_credentials(sock)
            except OSError as exc:
                log.warning("fan-out: no peer credentials (%s): closed", exc)
                sock.close()
                continue
            if uid not in self.allowed_uids:
                self.stats.refused_uid += 1
                log.warning(
                    "fan-out: refused pid %d uid %d: only uids %s are served",
                    pid, uid, ", ".join(map(str, sorted(self.allowed_uids))),
                )  # fmt: skip
                self._refuse(sock, f"uid {uid} is not allowed on this fan-out server")
                continue
            if len(self._clients) >= self.max_clients:
                self.stats.refused_full += 1
                self._log_full(pid, uid)
                self._refuse(sock, f"server full: {self.max_clients} clients; retry later")
                continue
            sock.setblocking(False)
            client = _Client(sock, pid, uid)
            self._clients[sock.fileno()] = client
            self._sel.register(sock, selectors.EVENT_READ, client)
            self.stats.accepted += 1
            self.stats.clients = len(self._clients)
            if not self.in_sync:  # why it will wait for its snapshot
                self._queue(client, encode_frames(
                    Frame("stale", self.revision, reason=self.stale_reason)))  # fmt: skip

    def _log_full(self, pid: int, uid: int) -> None:
        now = time.monotonic()
        self._refusals_unlogged += 1
        if now - self._last_refusal_log >= _REFUSAL_LOG_INTERVAL:
            log.warning(
                "fan-out: %d client(s) refused, the last pid %d uid %d: already %d clients (max_clients)",
                self._refusals_unlogged, pid, uid, self.max_clients,
            )  # fmt: skip
            self._last_refusal_log = now
            self._refusals_unlogged = 0

    def _refuse(self, sock: socket.socket, reason: str) -> None:
        """Say why, then close: the peer sees an error frame and EOF, never a hang."""
        (data,) = encode_frames(Frame("error", self.revision, reason=reason))
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            sock.send(data)  # small, into an empty socket buffer: all of it or nothing
        sock.close()

    def _greet_new(self) -> None:
        pending = [c for c in self._clients.values() if not c.greeted]
        if not pending:
            return
        frames = encode_frames(
            Frame("snapshot", self.revision, tuple(sorted(self.state.items()))), self.max_frame
        )
        self.stats.snapshots += 1
        for c in pending:
            c.greeted = True
            self._queue(c, frames)

    def _send_all(self, frames: list[bytes], *, greeted_only: bool) -> None:
        for c in list(self._clients.values()):
            if c.greeted or not greeted_only:  # the others get all of it in their snapshot
                self._queue(c, frames)

    def _queue(self, c: _Client, frames: list[bytes]) -> None:
        size = sum(len(f) for f in frames)
        if c.pending + size > self.max_buffer:
            log.warning(
                "fan-out client %s fell behind (%d bytes queued, %d more, max_buffer %d): dropped",
                c.describe(), c.pending, size, self.max_buffer,
            )  # fmt: skip
            self._drop(c)
            self.stats.dropped += 1  # after: whoever reads the stats sees the client gone
            return
        was_empty = not c.out
        c.out.extend(frames)
        c.pending += size
        if was_empty:
            self._flush(c)

    def _flush(self, c: _Client) -> None:
        if c.handshake_due:
            return  # queued until the TLS handshake is done (_handshake flushes)
        while c.out:
            view = memoryview(c.out[0])[c.offset :]
            try:
                sent = c.sock.send(view)
            except _WOULD_BLOCK:
                break
            except OSError:
                self._drop(c)
                return
            self.stats.bytes_sent += sent
            c.pending -= sent
            if sent < len(view):
                c.offset += sent
                break
            c.out.popleft()
            c.offset = 0
        self._sel.modify(c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0), c)

    def _on_client(self, c: _Client, events: int) -> None:
        if c.handshake_due:
            self._handshake(c)
            return
        if events & selectors.EVENT_READ:
            try:
                data: bytes | None = c.sock.recv(4096)
            except _WOULD_BLOCK:
                data = None
            except OSError:
                data = b""
            if data is not None:
                if data:
                    # The protocol has nothing for a client to say: whatever
                    # it sends comes from a client we do not understand.
                    self.stats.protocol_errors += 1
                    log.warning(
                        "fan-out client %s sent %d bytes (clients only listen): dropped",
                        c.describe(), len(data),
                    )  # fmt: skip
                self._drop(c)  # or EOF: gone
                return
        if events & selectors.EVENT_WRITE and c.out:
            self._flush(c)

    def _drop(self, c: _Client) -> None:
        self._handshaking.discard(c)
        fd = c.sock.fileno()
        if fd in self._clients:
            del self._clients[fd]
            self.stats.disconnected += 1
        # Counted before the socket closes: a peer that sees EOF finds the stats agree.
        self.stats.clients = len(self._clients)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(c.sock)
        c.sock.close()
        c.out.clear()
        c.pending = 0

    def _close_listeners(self) -> None:
        for listener, _data in self._listeners():
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(listener)
            listener.close()
        self._tcp = None
        if self._listener is not None:
            self._listener = None
            # Only our own file: a path taken over since is someone else's.
            with contextlib.suppress(FileNotFoundError):
                if self.path is not None and os.stat(self.path).st_ino == self._inode:
                    os.unlink(self.path)

    def close(self) -> None:
        for c in list(self._clients.values()):
            self._drop(c)
        self._close_listeners()
        self._sel.close()
        self.follower.close()
