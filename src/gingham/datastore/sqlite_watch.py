"""Watches on the sqlite backend: woken by the writers' doorbell, read from ``history``.

A watch sleeps on the datastore's doorbell (``doorbell.py``) and reads the
database only when the doorbell's word has moved since its last read, when
a lease it knows of falls due, or when ``SAFETY_POLL`` seconds passed with
neither: the safety poll bounds what a lost ring costs (a writer killed
between its commit and its ring, a writer of an older version). Between
those, an idle watch costs no database read at all, and
``next_batch(0)`` is a read of one shared word.

A read is one single-row read of ``meta`` (and one of the earliest lease
expiry) when nothing happened, one indexed range query of ``history`` when
something did. Watches of one process share their safety polls: a watch
whose safety poll falls due takes the newest read any watch of the process
made instead of its own when that read is newer than its own and saw the
store at the revision it has delivered up to (one safety read per process
and second, not per watch: agents simulated as threads, or many watches in
one server). Where no doorbell can be mapped, the watch polls as it
always did: every 5 ms after a change, backing off to 20 ms.

Leases: nobody runs a timer (``sqlite.py``), so watchers expire them: each
knows when the next lease falls due (read with every poll) and expires it
then. Grants and keepalives do not move the revision and do not ring: a
watch learns of them with its next read (at the latest its safety poll), and
one that expected a lease kept alive since to expire pays one cheap check
and a read.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from gingham.datastore.base import EventType, Watch, WatchEvent, decode_value
from gingham.datastore.sqlite_history import HISTORY_PUT, prefix_end
from gingham.errors import ResyncRequired

if TYPE_CHECKING:
    from gingham.datastore.sqlite import SqliteDatastore

# A ring lost costs a watch at most this long.
SAFETY_POLL = 1.0
# Without a doorbell: the old polling schedule.
_POLL_MIN, _POLL_MAX = 0.005, 0.02
_BATCH = 1000
# path -> the last complete read by a watch of this process: (monotonic time
# it began, the store revision it saw, when the next lease falls due).
_RECENT: dict[str, tuple[float, int, float | None]] = {}
# path -> held by the watch making a safety read: the others wait and take it.
_SAFETY_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _safety_lock(path: str) -> threading.Lock:
    lock = _SAFETY_LOCKS.get(path)
    if lock is None:
        with _LOCKS_LOCK:
            lock = _SAFETY_LOCKS.setdefault(path, threading.Lock())
    return lock


class SqliteWatch(Watch):
    def __init__(self, ds: SqliteDatastore, prefix: str, start_revision: int) -> None:
        self._ds = ds
        self._prefix = prefix
        self._end = prefix_end(prefix)
        self._after = max(start_revision, 1) - 1
        self._seen = -1  # the store revision of the last read; -1: read history
        self._rung = -1  # the doorbell's word before the last read
        self._read_due = 0.0  # monotonic time of the next safety poll
        self._checked = 0.0  # monotonic time: nothing was missed up to here
        self._lease_due: float | None = None  # lease clock: when the next lease expires
        self._interval = _POLL_MIN
        self._closed = False

    def next_batch(self, timeout: float) -> list[WatchEvent]:
        deadline = time.monotonic() + max(timeout, 0.0)
        bell = self._ds.doorbell()
        force = False
        while not self._closed:
            if self._lease_due is not None and self._ds._clock() >= self._lease_due:
                # Its DELETE events (if it was not kept alive) come with the read below,
                # which also learns when the next lease falls due.
                self._lease_due = None
                self._ds.expire_leases()
                force = True
            rung = bell.value() if bell is not None else -1  # before the read: see doorbell.py
            now = time.monotonic()
            events: list[WatchEvent] = []
            if force or bell is None or rung != self._rung:
                force = False
                events = self._read(now)
                self._rung = rung
            elif now >= self._read_due:
                # A safety poll: one watch of the process reads, the others take its read.
                with _safety_lock(self._ds.path):
                    if not self._adopt_recent():
                        events = self._read(now)
            if events:
                self._interval = _POLL_MIN
                return events
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if bell is None:
                time.sleep(min(self._interval, remaining))
                self._interval = min(self._interval * 1.5, _POLL_MAX)
                continue
            wait = min(remaining, self._read_due - time.monotonic())
            if self._lease_due is not None:
                wait = min(wait, self._lease_due - self._ds._clock())
            bell.wait(self._rung, wait)
        return []

    def _adopt_recent(self) -> bool:
        """Take another watch's newer safety read as ours if it shows nothing new."""
        recent = _RECENT.get(self._ds.path)
        if recent is None or recent[0] <= self._checked or recent[1] != self._seen:
            return False
        self._checked, _, self._lease_due = recent
        self._read_due = self._checked + SAFETY_POLL
        return True

    def _read(self, now: float) -> list[WatchEvent]:
        """Read the store; ``now`` was taken before (and before the doorbell's word)."""
        events, seen, due = self._poll()
        self._lease_due = due
        self._read_due = now + SAFETY_POLL
        if events:
            self._after = events[-1].revision
        if seen >= 0:
            # Everything under our prefix up to ``seen`` has been delivered.
            self._seen = seen
            self._after = max(self._after, seen)
            self._checked = now
            _RECENT[self._ds.path] = (now, seen, due)
        return events

    def _poll(self) -> tuple[list[WatchEvent], int, float | None]:
        """Events with revision > ``_after``; the store revision (-1 when more
        remain); when the next lease falls due (None: there is no lease)."""
        ds, after = self._ds, self._after
        with ds._read() as db:
            rev, compacted = db.execute("SELECT revision, compacted FROM meta").fetchone()
            if after + 1 < compacted:
                raise ResyncRequired(
                    f"{ds.url}: revision {after + 1} was compacted (oldest kept: {compacted})"
                )
            (due,) = db.execute("SELECT min(expiry) FROM leases").fetchone()
            if rev == self._seen or rev <= after:
                return [], int(rev), due
            sql = "SELECT revision, key, type, value FROM history WHERE revision > ? AND key >= ?"
            args: tuple[int | str, ...] = (after, self._prefix)
            if self._end is not None:
                sql += " AND key < ?"
                args = (after, self._prefix, self._end)
            rows = db.execute(sql + f" ORDER BY revision LIMIT {_BATCH}", args).fetchall()
        events = [
            WatchEvent(
                type=EventType.PUT if typ == HISTORY_PUT else EventType.DELETE,
                key=key,
                value=decode_value(value) if typ == HISTORY_PUT else None,
                revision=r,
            )
            for r, key, typ, value in rows
        ]
        # More remain: do not claim to have seen up to ``rev`` yet.
        return events, (-1 if len(rows) == _BATCH else int(rev)), due

    def close(self) -> None:
        self._closed = True
        # A thread asleep in next_batch wakes now, not at its timeout.
        bell = self._ds.doorbell() if not self._ds._closed else None
        if bell is not None:
            bell.nudge()
