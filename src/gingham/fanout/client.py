"""An agent's end of the fan-out: the same ``poll``/``status`` shape as the syncer.

After (re)connecting, the first frames are a snapshot (possibly in parts,
applied together once the last part is in); keys this client had seen that
the snapshot lacks are reported as ``None`` (absent), exactly as the syncer
does after a resync, so nothing downstream keeps state for a key that is
gone. A lost connection drops it out of sync until the next snapshot; so
does a ``stale`` frame (the server lost the datastore: the connection stays
and the server sends a whole new snapshot when it is back), and so does a
server that says nothing, not even its pings, for ``read_timeout`` seconds
(hung or stopped: the connection is dropped and made again).

Like the syncer, :meth:`FanoutClient.poll` raises nothing for trouble on the
wire: a frame that breaks the protocol (:class:`~gingham.errors.ProtocolError`,
raised by :class:`~gingham.fanout.protocol.FrameDecoder`), a server that
refuses us (``error`` frame: full, or our uid is not allowed) or a lost
connection is recorded in ``status.last_error``, the connection is dropped
and the next poll reconnects (after ``retry_interval``) for a fresh snapshot.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import time

from gingham.datastore.syncer import SyncStatus
from gingham.errors import ProtocolError
from gingham.fanout.address import parse
from gingham.fanout.protocol import DEFAULT_MAX_FRAME, Frame, FrameDecoder, Update
from gingham.fanout.tls import client_context

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20
# Several of the server's ping intervals (server.PING_INTERVAL).
READ_TIMEOUT = 20.0
# Per poll, so that a server that never pauses cannot keep one poll (and the
# list of updates it returns) growing; the rest waits in the socket.
POLL_BYTES = 16 << 20
# TCP connect and TLS handshake: the agent's loop waits meanwhile, so briefly.
CONNECT_TIMEOUT = 2.0
# Nothing to read now: a plain socket says BlockingIOError, a TLS one SSLWant*Error.
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class FanoutClient:
    def __init__(
        self,
        path: str,
        *,
        retry_interval: float = 0.5,
        max_frame: int = DEFAULT_MAX_FRAME,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        """``path``: a unix socket, or ``tls://HOST:PORT?ca=&cert=&key=`` (``address.py``);
        a bad address or unreadable TLS files raise :class:`ValidationError` here."""
        self.address = parse(path)
        self.path = str(self.address)  # for messages: no file names of the TLS query
        self._tls = client_context(self.address.tls) if self.address.tls else None
        self.status = SyncStatus()
        self.retry_interval = retry_interval
        self.max_frame = max_frame
        self.read_timeout = read_timeout
        self._heard = 0.0  # monotonic time the server last sent anything
        self._sock: socket.socket | None = None
        self._decoder = FrameDecoder(max_frame)
        self._seen: set[str] = set()
        self._snapshot: list[Update] = []  # parts of a snapshot still being received
        self._in_snapshot = False  # a part came with "more"
        self._greeted = False  # a whole snapshot came on this connection
        self._next_connect = 0.0

    def notices(self) -> list[str]:
        """What an operator should be told (the agent's /readyz and node status)."""
        if self.status.in_sync or not self.status.last_error:
            return []
        return [f"not in sync with the datastore (read through a fan-out server): "
                f"{self.status.last_error}"]  # fmt: skip

    def fileno(self) -> int:
        """The socket to wait on in a select loop (-1 while disconnected)."""
        return self._sock.fileno() if self._sock is not None else -1

    def poll(self, timeout: float) -> list[Update]:
        """Updates received so far; waits at most ``timeout`` seconds for some."""
        if self._sock is None and not self._connect():
            time.sleep(min(timeout, self.retry_interval))
            return []
        assert self._sock is not None
        if timeout > 0 and not self._pending():
            ready, _, _ = select.select([self._sock], [], [], timeout)
            if not ready:
                self._check_heard()
                return []
        updates: list[Update] = []
        read = 0
        while self._sock is not None and read < POLL_BYTES:
            try:
                chunk = self._sock.recv(READ_SIZE)
            except _WOULD_BLOCK:
                break
            except OSError as exc:
                self._lose(f"fan-out connection failed: {exc}")
                break
            if not chunk:
                self._lose("fan-out server closed the connection")
                break
            read += len(chunk)
            self._heard = time.monotonic()
            # Decoded as it arrives: an oversized frame is refused from its
            # header, not after everything the server sent has been buffered.
            try:
                frames = self._decoder.feed(chunk)
            except ProtocolError as exc:
                log.warning("fan-out server %s broke the protocol: %s", self.path, exc)
                self._lose(f"fan-out protocol error: {exc}")
                break
            try:
                for frame in frames:
                    updates.extend(self._apply(frame))
                    if self._sock is None:  # an error frame
                        break
            except ProtocolError as exc:
                log.warning("fan-out server %s broke the protocol: %s", self.path, exc)
                self._lose(f"fan-out protocol error: {exc}")
                break
            if len(chunk) < READ_SIZE and not self._pending():
                # Drained (one delta is one short read): asking again would only
                # raise BlockingIOError; whatever comes later makes the socket
                # readable again for the next poll.
                break
        if read == 0 and self._sock is not None:
            self._check_heard()
        return updates

    def _check_heard(self) -> None:
        silent = time.monotonic() - self._heard
        if silent > self.read_timeout:
            log.warning("fan-out server %s silent for %.0f s: reconnecting", self.path, silent)
            self._lose(f"fan-out server {self.path} silent for {silent:.0f} s (hung?)")

    def _apply(self, frame: Frame) -> list[Update]:
        # Order matters as much as shape: deltas before the first snapshot,
        # in the middle of one or after a stale frame would be applied to
        # the wrong state.
        if frame.kind == "deltas" and (not self._greeted or self._in_snapshot):
            raise ProtocolError(
                "deltas without a complete snapshot before them",
                f"fan-out frame {self._decoder.frames}",
            )
        if frame.kind == "snapshot":
            self.status.revision = frame.revision  # a new snapshot may follow a server restart
            self._snapshot.extend(frame.updates)
            self._in_snapshot = frame.more
            if frame.more:
                return []
            self._greeted = True
            items, self._snapshot = self._snapshot, []
            present = {key for key, _ in items}
            gone: list[Update] = [(key, None) for key in sorted(self._seen - present)]
            self._seen = present
            self.status.in_sync = True
            self.status.snapshots += 1
            self.status.last_error = ""
            return [*items, *gone]
        if frame.kind == "deltas":
            self.status.revision = max(self.status.revision, frame.revision)
            for key, value in frame.updates:
                if value is None:
                    self._seen.discard(key)
                else:
                    self._seen.add(key)
            return list(frame.updates)
        if frame.kind == "stale":
            if self.status.in_sync or self.status.last_error != frame.reason:
                log.warning("fan-out server %s lost the datastore: %s", self.path, frame.reason)
            if self.status.in_sync:
                self.status.resyncs += 1
            self._greeted = self._in_snapshot = False
            self._snapshot = []
            self.status.in_sync = False
            self.status.last_error = f"fan-out server lost the datastore: {frame.reason}"
        elif frame.kind == "error":
            log.warning("fan-out server %s refused us: %s", self.path, frame.reason)
            self._lose(f"fan-out server refused: {frame.reason}")
        return []

    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self._next_connect:
            return False
        self._next_connect = now + self.retry_interval
        try:
            sock = self._open()
        except OSError as exc:  # ssl.SSLError too: a certificate refused either way
            self.status.last_error = f"cannot reach fan-out server {self.path}: {exc}"
            return False
        sock.setblocking(False)
        self._sock = sock
        self._heard = now
        self._decoder = FrameDecoder(self.max_frame)
        self._snapshot = []
        self._in_snapshot = self._greeted = False
        return True

    def _open(self) -> socket.socket:
        """A connected socket (TLS: handshake done, the server's certificate checked)."""
        if self._tls is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.address.path)
            except OSError:
                sock.close()
                raise
            return sock
        raw = socket.create_connection((self.address.host, self.address.port),
                                       timeout=CONNECT_TIMEOUT)  # fmt: skip
        try:
            return self._tls.wrap_socket(raw, server_hostname=self.address.host)
        except OSError:
            raw.close()
            raise

    def _pending(self) -> bool:
        """Decrypted bytes a TLS socket holds already (select cannot see them)."""
        return isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0

    def _lose(self, reason: str) -> None:
        self.status.in_sync = False
        self.status.last_error = reason
        self.status.resyncs += 1
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
