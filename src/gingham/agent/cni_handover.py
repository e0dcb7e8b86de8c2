"""What the agent's CNI server wrote, handed to the agent's own loop ahead of its watch.

The CNI server (``cni_server.py``) writes a workload's endpoint from a worker
thread; the loop (``daemon.Agent.step``, one thread) would learn of it from
its datastore watch a little later. ``put`` queues the write with its
revision; the loop ``take``s it after feeding the watch's updates of the
same turn and feeds it to the graph like any update, so the dataplane
programs the new workload one watch round trip sooner.

The watch stays the authority; a handed-over write may only ever be early,
never stale or lost:
- A write at revision R is fed only while the syncer has delivered nothing
  past R (its revision < R): any later change of the key would have come
  with a higher revision, so feeding R never undoes one. Otherwise the
  watch has brought R, or something newer, already: it is dropped.
- The syncer knows nothing of a key it has not delivered yet; should it
  resync before delivering a handed-over key that is gone by then, its
  snapshot would not say "absent" for it. So the keys fed here stay
  "unconfirmed" until the syncer delivers them, and a snapshot that lacks
  one written at or before its revision makes it absent here.
- Commands in flight go first: the loop lets them finish (``settle``, at most
  ``SETTLE_LIMIT``) before a turn. A command's writes wake the loop's watch
  while the command is still running, and the loop's turn (calculation, nft)
  would take the interpreter lock from the command for milliseconds; in
  turn, the command's writes are queued here by the time it ends, so the
  loop programs them right after. While a command started since is in
  flight, the loop waits on its watch in short slices (``poll_timeout``), so
  a write handed over does not sit behind a watch with nothing to say
  (etcd's watch is not woken by the write's reply).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# How long the loop may wait on its watch while a CNI command is in flight.
BUSY_POLL = 0.002
# How long the loop lets commands in flight finish before it takes a turn anyway.
SETTLE_LIMIT = 0.02

Update = tuple[str, Mapping[str, object] | None]


@dataclass
class Handover:
    _idle: threading.Condition = field(default_factory=threading.Condition)
    _queue: list[tuple[str, Mapping[str, object] | None, int]] = field(default_factory=list)
    _in_flight: int = 0
    _unconfirmed: dict[str, int] = field(default_factory=dict)  # key -> revision fed

    # -- the CNI server's side (any thread) -------------------------------------------

    def begin(self) -> None:
        with self._idle:
            self._in_flight += 1

    def end(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.notify_all()

    def put(self, key: str, value: Mapping[str, object] | None, revision: int) -> None:
        """``key`` holds ``value`` (None: deleted) since ``revision``."""
        with self._idle:
            self._queue.append((key, value, revision))

    # -- the loop's side (one thread) -----------------------------------------------------

    def settle(self, limit: float = SETTLE_LIMIT) -> None:
        """Wait until no command is in flight, at most ``limit`` seconds."""
        with self._idle:
            if self._in_flight:
                self._idle.wait_for(lambda: not self._in_flight, limit)

    def poll_timeout(self, default: float) -> float:
        if self._queue:
            return 0.0
        return min(default, BUSY_POLL) if self._in_flight else default

    def take(self, updates: Sequence[tuple[str, object]], revision: int,
             snapshot: bool) -> list[Update]:
        """The writes to feed now, after the syncer's ``updates`` (which bring it to
        ``revision``; ``snapshot``: they are a whole new snapshot)."""
        out: list[Update] = []
        if self._unconfirmed:
            delivered = {key for key, _ in updates}
            for key, fed_at in list(self._unconfirmed.items()):
                if key in delivered:
                    del self._unconfirmed[key]
                elif snapshot and fed_at <= revision:
                    del self._unconfirmed[key]
                    out.append((key, None))  # gone by the time of the snapshot
        with self._idle:
            queued, self._queue = self._queue, []
        for key, value, at in queued:
            if at <= revision:
                continue  # the watch has brought this write, or a newer one
            out.append((key, value))
            if value is not None:
                self._unconfirmed[key] = at
            else:
                self._unconfirmed.pop(key, None)
        return out
