"""The fan-out server's one follower of the datastore, on a thread of its own.

The server's loop waits in ``select`` on its clients' sockets; a datastore
watch cannot join that wait (a sqlite watch sleeps on a futex, an etcd
watch on a queue fed by its stream reader). So the follower blocks on the
watch (:class:`~gingham.datastore.syncer.Syncer`) in its own thread and
hands what it got to the loop as :class:`Batch` objects, writing one byte
to a pipe the loop selects on. A change reaches the loop as soon as the
watch wakes: there is no poll interval on this path.

The follower also decides whether the server is *in sync*, as an agent's
syncer would: out of sync when the watch fails (the syncer says so), and
when a probe of the datastore (a revision read every ``probe_interval``)
fails. A hung etcd leaves its watch stream silent rather than broken, so
without the probe a server would go on telling its agents they are in sync
with a datastore nobody can reach (see docs/RELIABILITY.md, "A hung
datastore was never reported").
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gingham.datastore.base import Datastore
from gingham.datastore.syncer import Syncer
from gingham.errors import DatastoreError, Unavailable
from gingham.fanout.protocol import Update

log = logging.getLogger(__name__)

# How long one wait on the watch may last: the longest a stop request waits.
WAIT = 0.25
# Between revision reads that check the datastore still answers.
PROBE_INTERVAL = 2.0
# Between snapshot attempts while the datastore does not answer.
RETRY = 0.5


@dataclass(frozen=True, slots=True)
class Batch:
    """What the follower learnt in one poll of its syncer."""

    updates: tuple[Update, ...]
    revision: int
    in_sync: bool
    reason: str = ""  # why not in sync


class Follower:
    def __init__(
        self,
        datastore: Datastore,
        prefix: str,
        *,
        ignore: Callable[[str], bool] = lambda key: False,
        probe_interval: float = PROBE_INTERVAL,
        wait: float = WAIT,
        retry: float = RETRY,
    ) -> None:
        self.syncer = Syncer(datastore, prefix, ignore=ignore)
        self.polls = 0
        self._datastore = datastore
        self._probe_interval = probe_interval
        self._wait = wait
        self._retry = retry
        self._next_probe = 0.0
        self._inbox: deque[Batch] = deque()
        self._reported: tuple[bool, str] = (False, "")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def fileno(self) -> int:
        """Readable when batches are waiting (for the server's selector)."""
        return self._wake_r

    @property
    def threaded(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fanout-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.run_once(self._wait):
                    self._stop.wait(self._retry)
            except Exception:  # a bug here must not leave the server serving a frozen state
                log.exception("fan-out follower failed; retrying from a snapshot")
                self._lose("internal error in the fan-out follower (see its log)")
                self._push(())
                self._stop.wait(self._retry)

    def run_once(self, timeout: float) -> bool:
        """One poll of the syncer (waiting up to ``timeout``) and a probe when due;
        False when out of sync (the caller pauses before the next snapshot attempt)."""
        updates = self.syncer.poll(timeout)
        self.polls += 1
        status = self.syncer.status
        if status.in_sync and time.monotonic() >= self._next_probe:
            self._next_probe = time.monotonic() + self._probe_interval
            try:
                self._datastore.revision()
            except (Unavailable, DatastoreError) as exc:
                self._lose(f"datastore unavailable: {exc}")
        self._push(tuple(updates))
        return status.in_sync

    def _lose(self, reason: str) -> None:
        log.warning("fan-out: datastore sync lost: %s", reason)
        self.syncer.close()
        self.syncer.status.in_sync = False
        self.syncer.status.last_error = reason

    def _push(self, updates: tuple[Update, ...]) -> None:
        status = self.syncer.status
        state = (status.in_sync, "" if status.in_sync else status.last_error)
        if not updates and state == self._reported:
            return
        self._reported = state
        self._inbox.append(Batch(updates, status.revision, *state))
        with contextlib.suppress(BlockingIOError):  # full: the loop has a wake-up pending anyway
            os.write(self._wake_w, b"\0")

    def take(self) -> list[Batch]:
        """Every batch waiting, oldest first."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        out: list[Batch] = []
        while self._inbox:
            out.append(self._inbox.popleft())
        return out

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(10.0, self._wait * 4))
            self._thread = None
        self.syncer.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1
