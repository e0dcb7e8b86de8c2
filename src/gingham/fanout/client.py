"""An agent's end of the fan-out: the same ``poll``/``status`` shape as the syncer.

After (re)connecting, the first frame is a snapshot; keys this client had
seen that the snapshot lacks are reported as ``None`` (absent), exactly as
the syncer does after a resync, so nothing downstream keeps state for a key
that is gone. A lost connection drops it out of sync until the next snapshot.
"""

from __future__ import annotations

import select
import socket
import time
from typing import Any

from gingham.agent.syncer import SyncStatus
from gingham.errors import ValidationError
from gingham.fanout.protocol import Frame, decode_frames

Update = tuple[str, Any]


class FanoutClient:
    def __init__(self, path: str, *, retry_interval: float = 0.5) -> None:
        self.path = path
        self.status = SyncStatus()
        self.retry_interval = retry_interval
        self._sock: socket.socket | None = None
        self._buf = b""
        self._frames_seen = 0
        self._seen: set[str] = set()
        self._next_connect = 0.0

    def fileno(self) -> int:
        """The socket to wait on in a select loop (-1 while disconnected)."""
        return self._sock.fileno() if self._sock is not None else -1

    def poll(self, timeout: float) -> list[Update]:
        """Updates received so far; waits at most ``timeout`` seconds for some."""
        if self._sock is None and not self._connect():
            time.sleep(min(timeout, self.retry_interval))
            return []
        assert self._sock is not None
        if timeout > 0:
            ready, _, _ = select.select([self._sock], [], [], timeout)
            if not ready:
                return []
        updates: list[Update] = []
        while True:
            try:
                chunk = self._sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._lose(f"fan-out connection failed: {exc}")
                return updates
            if not chunk:
                self._lose("fan-out server closed the connection")
                return updates
            self._buf += chunk
        try:
            frames, self._buf = decode_frames(self._buf, self._frames_seen)
        except ValidationError as exc:
            self._lose(str(exc))
            return updates
        self._frames_seen += len(frames)
        for frame in frames:
            updates.extend(self._apply(frame))
        return updates

    def _apply(self, frame: Frame) -> list[Update]:
        self.status.revision = max(self.status.revision, frame.revision)
        if frame.kind == "snapshot":
            present = {key for key, _ in frame.updates}
            gone = [(key, None) for key in sorted(self._seen - present)]
            self._seen = present
            self.status.in_sync = True
            self.status.snapshots += 1
            self.status.last_error = ""
            return [*frame.updates, *gone]
        if frame.kind == "deltas":
            for key, value in frame.updates:
                if value is None:
                    self._seen.discard(key)
                else:
                    self._seen.add(key)
            return list(frame.updates)
        return []

    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self._next_connect:
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            self._next_connect = now + self.retry_interval
            self.status.last_error = f"cannot reach fan-out server {self.path}: {exc}"
            return False
        sock.setblocking(False)
        self._sock = sock
        self._buf = b""
        self._frames_seen = 0
        return True

    def _lose(self, reason: str) -> None:
        self.status.in_sync = False
        self.status.last_error = reason
        self.status.resyncs += 1
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
