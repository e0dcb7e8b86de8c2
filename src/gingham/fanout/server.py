"""The fan-out server: follows the datastore once and serves many agents.

Single-threaded select loop. Each turn: one non-blocking poll of the
datastore (through the same :class:`~gingham.agent.syncer.Syncer` an agent
uses), the changes folded into the cached state and sent to every client as
one ``deltas`` frame (encoded once, the same bytes to all); new clients get
the cached state as a ``snapshot`` frame first. Between polls the loop waits
in ``select`` (accepting and writing meanwhile), backing off from
``poll_min`` to ``poll_max`` while nothing changes, as the sqlite watch does.

A datastore outage leaves the cache as it is (fail static): the syncer
re-snapshots when it can and reports what changed meanwhile, which reaches
the clients as ordinary deltas. A client that falls more than
``max_buffer`` bytes behind is dropped; it reconnects and starts from a
snapshot.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gingham.agent.syncer import Syncer
from gingham.datastore.base import Datastore
from gingham.fanout.protocol import Frame, encode_frame

log = logging.getLogger(__name__)


@dataclass
class _Client:
    sock: socket.socket
    out: bytearray = field(default_factory=bytearray)
    greeted: bool = False


@dataclass
class ServerStats:
    clients: int = 0
    accepted: int = 0
    disconnected: int = 0  # clients that went away
    dropped: int = 0  # clients cut off for falling too far behind
    polls: int = 0
    frames: int = 0
    bytes_sent: int = 0


class FanoutServer:
    def __init__(
        self,
        datastore: Datastore,
        prefix: str,
        path: str,
        *,
        ignore: Callable[[str], bool] = lambda key: False,
        poll_min: float = 0.005,
        poll_max: float = 0.02,
        max_buffer: int = 64 << 20,
    ) -> None:
        self.syncer = Syncer(datastore, prefix, ignore=ignore)
        self.path = path
        self.poll_min, self.poll_max = poll_min, poll_max
        self.max_buffer = max_buffer
        self.state: dict[str, Any] = {}
        self.stats = ServerStats()
        self._interval = poll_min
        self._sel = selectors.DefaultSelector()
        self._clients: dict[int, _Client] = {}
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(1024)
        self._listener.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, None)

    # -- the loop -----------------------------------------------------------

    def serve(self, should_stop: Callable[[], bool]) -> None:
        try:
            while not should_stop():
                self.step()
        finally:
            self.close()

    def step(self) -> None:
        """One poll of the datastore, then I/O until the next poll is due."""
        updates = self.syncer.poll(0)
        self.stats.polls += 1
        if updates:
            self._interval = self.poll_min
            for key, value in updates:
                if value is None:
                    self.state.pop(key, None)
                else:
                    self.state[key] = value
            self._broadcast(Frame("deltas", self.syncer.status.revision, tuple(updates)))
        else:
            self._interval = min(self._interval * 1.5, self.poll_max)
        if self.syncer.status.in_sync:
            self._greet_new()
        deadline = time.monotonic() + self._interval
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for sk, events in self._sel.select(left):
                if sk.data is None:
                    self._accept()
                else:
                    self._on_client(sk.data, events)

    # -- clients --------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            client = _Client(sock)
            self._clients[sock.fileno()] = client
            self._sel.register(sock, selectors.EVENT_READ, client)
            self.stats.accepted += 1
            self.stats.clients = len(self._clients)

    def _greet_new(self) -> None:
        pending = [c for c in self._clients.values() if not c.greeted]
        if not pending:
            return
        data = encode_frame(
            Frame("snapshot", self.syncer.status.revision, tuple(sorted(self.state.items())))
        )
        for c in pending:
            c.greeted = True
            self._queue(c, data)

    def _broadcast(self, frame: Frame) -> None:
        data = encode_frame(frame)
        self.stats.frames += 1
        for c in list(self._clients.values()):
            if c.greeted:  # the others get all of it in their snapshot
                self._queue(c, data)

    def _queue(self, c: _Client, data: bytes) -> None:
        if len(c.out) + len(data) > self.max_buffer:
            log.warning("fan-out client fell %d bytes behind: dropped", len(c.out))
            self.stats.dropped += 1
            self._drop(c)
            return
        was_empty = not c.out
        c.out += data
        if was_empty:
            self._flush(c)

    def _flush(self, c: _Client) -> None:
        try:
            sent = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(c)
            return
        self.stats.bytes_sent += sent
        del c.out[:sent]
        self._sel.modify(
            c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0), c
        )

    def _on_client(self, c: _Client, events: int) -> None:
        if events & selectors.EVENT_READ:
            try:
                data = c.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                data = b"?"
            except OSError:
                data = b""
            if not data:  # clients only listen; EOF means gone
                self._drop(c)
                return
        if events & selectors.EVENT_WRITE and c.out:
            self._flush(c)

    def _drop(self, c: _Client) -> None:
        fd = c.sock.fileno()
        if fd in self._clients:
            del self._clients[fd]
            self.stats.disconnected += 1
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(c.sock)
        c.sock.close()
        self.stats.clients = len(self._clients)

    def close(self) -> None:
        for c in list(self._clients.values()):
            self._drop(c)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(self._listener)
        self._listener.close()
        self._sel.close()
        self.syncer.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
