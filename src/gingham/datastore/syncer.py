"""Follow the datastore: one snapshot, then a watch from its revision.

The syncer yields plain ``(key, value | None)`` updates. ``None`` means the
key is absent now, whatever the reason (deleted, expired, or gone while we
were resyncing). After a resync it reports every key it had seen that the
new snapshot lacks as ``None``, so nothing downstream is left holding state
for a key that no longer exists (DESIGN.md section 2: never decide
existence from the kind of event).

It is synchronous and owns no thread: the agent calls :meth:`poll` in its
loop, so the whole agent stays single-threaded and easy to reason about.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from gingham.datastore.base import JSON, Datastore, EventType, Watch
from gingham.errors import DatastoreError, ResyncRequired, Unavailable

log = logging.getLogger(__name__)

Update = tuple[str, JSON | None]


@dataclass
class SyncStatus:
    in_sync: bool = False
    revision: int = 0
    resyncs: int = 0
    last_error: str = ""
    snapshots: int = 0


@dataclass
class Syncer:
    datastore: Datastore
    prefix: str
    # Keys under the prefix that nobody downstream cares about (e.g. status reports).
    ignore: Callable[[str], bool] = lambda key: False
    status: SyncStatus = field(default_factory=SyncStatus)
    _seen: set[str] = field(default_factory=set)
    _watch: Watch | None = None

    def poll(self, timeout: float) -> list[Update]:
        """Return the next updates; blocks at most ``timeout`` seconds.

        Raises nothing for datastore trouble: it records the error, drops
        out of sync and tries a fresh snapshot on the next call.
        """
        try:
            if self._watch is None:
                return self._snapshot()
            return self._drain(timeout)
        except ResyncRequired as exc:
            self._lose_sync(f"watch compacted: {exc}")
        except (Unavailable, DatastoreError) as exc:
            self._lose_sync(str(exc))
        return []

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def _snapshot(self) -> list[Update]:
        items, revision = self.datastore.list(self.prefix)
        updates: list[Update] = []
        present: set[str] = set()
        for kv in items:
            if self.ignore(kv.key):
                continue
            present.add(kv.key)
            updates.append((kv.key, kv.value))
        updates.extend((key, None) for key in sorted(self._seen - present))
        self._seen = present
        self._watch = self.datastore.watch(self.prefix, start_revision=revision + 1)
        self.status.revision = revision
        self.status.in_sync = True
        self.status.snapshots += 1
        self.status.last_error = ""
        log.info("snapshot of %d keys at revision %d", len(present), revision)
        return updates

    def _drain(self, timeout: float) -> list[Update]:
        assert self._watch is not None
        updates: list[Update] = []
        for event in self._watch.next_batch(timeout):
            self.status.revision = event.revision
            if self.ignore(event.key):
                continue
            if event.type is EventType.DELETE or event.value is None:
                self._seen.discard(event.key)
                updates.append((event.key, None))
            else:
                self._seen.add(event.key)
                updates.append((event.key, event.value))
        return updates

    def _lose_sync(self, reason: str) -> None:
        if self.status.in_sync or reason != self.status.last_error:
            log.warning("datastore sync lost: %s", reason)
        self.status.in_sync = False
        self.status.last_error = reason
        self.status.resyncs += 1
        self.close()
