"""An in-process backend: the whole contract in a dict, for fast tests.

``memory://NAME`` opens the store called NAME in this process (several
handles share it, so a test can hand one to a writer and one to a watcher);
``memory://`` opens a fresh private one. As on disk, only ``create=True``
makes a store: opening a name nobody created raises NoDatastore. Nothing
reaches another process. It keeps full history until ``compact`` (or
``history=N``), expires leases lazily against an injectable clock exactly as
the sqlite backend does, and is thread-safe behind one lock. The contract
suite runs against it.
"""

from __future__ import annotations

import bisect
import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gingham.datastore.base import (
    JSON,
    Datastore,
    EventType,
    KeyValue,
    TxnResult,
    Watch,
    WatchEvent,
    check_txn,
    decode_value,
    encode_value,
    no_datastore_message,
)
from gingham.errors import (
    AlreadyExists,
    NoDatastore,
    NotFound,
    ResyncRequired,
    RevisionConflict,
    Unavailable,
    ValidationError,
)

_Events = list[WatchEvent]  # spelled here: inside the classes, ``list`` is a method


@dataclass
class _State:
    revision: int = 1
    compacted: int = 0
    data: dict[str, KeyValue] = field(default_factory=dict)
    history: _Events = field(default_factory=list)
    leases: dict[int, tuple[int, float]] = field(default_factory=dict)  # id -> (ttl, expiry)
    next_lease: int = 1
    changed: threading.Condition = field(default_factory=threading.Condition)


_NAMED: dict[str, _State] = {}
_NAMED_LOCK = threading.Lock()


def _state(name: str, create: bool) -> _State:
    url = f"memory://{name}"
    if not name:
        if not create:
            # A private store is new by definition: there is nothing to open.
            raise NoDatastore(no_datastore_message(url, "an unnamed memory store is always new"))
        return _State()
    with _NAMED_LOCK:
        state = _NAMED.get(name)
        if state is None:
            if not create:
                raise NoDatastore(no_datastore_message(url, "no such store in this process"))
            state = _NAMED[name] = _State()
        return state


def forget(name: str) -> None:
    """Drop the named store (tests that reuse names start afresh)."""
    with _NAMED_LOCK:
        _NAMED.pop(name, None)


class MemoryDatastore(Datastore):
    def __init__(
        self,
        name: str = "",
        *,
        create: bool = True,
        history: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = f"memory://{name}"
        self._s = _state(name, create)
        self._history = history
        self._clock = clock
        self._closed = False

    # -- inside the lock ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(f"{self.url}: datastore is closed")

    def _bump(self, key: str, value: JSON | None) -> int:
        s = self._s
        s.revision += 1
        kind = EventType.PUT if value is not None else EventType.DELETE
        s.history.append(WatchEvent(kind, key, copy.deepcopy(value), s.revision))
        if self._history is not None and len(s.history) > 2 * self._history:
            self._compact_in(s.revision - self._history)
        s.changed.notify_all()
        return s.revision

    def _compact_in(self, revision: int) -> None:
        s = self._s
        s.history = [e for e in s.history if e.revision >= revision]
        s.compacted = max(s.compacted, revision)

    def _expire(self) -> None:
        now = self._clock()
        for lease, (_, expiry) in sorted(self._s.leases.items()):
            if expiry <= now:
                self._drop_lease(lease)

    def _drop_lease(self, lease: int) -> None:
        s = self._s
        for key in sorted(k for k, kv in s.data.items() if kv.lease == lease):
            del s.data[key]
            self._bump(key, None)
        s.leases.pop(lease, None)

    def _check_lease(self, lease: int) -> None:
        if lease and lease not in self._s.leases:
            raise NotFound(f"lease {lease} not found (expired or revoked)")

    def _put(self, key: str, value: JSON, create: int, lease: int, raw: bool = False) -> int:
        # A round trip through JSON, as the other backends store it: what a
        # reader gets back is what they would get (tuples as lists, no shared
        # objects), and a value they could not store fails here too.
        stored = value if raw else decode_value(encode_value(value))
        rev = self._bump(key, stored)
        self._s.data[key] = KeyValue(key, stored, rev, create or rev, lease)
        return rev

    # -- the contract ---------------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        with self._s.changed:
            self._check_open()
            self._expire()
            kv = self._s.data.get(key)
            return None if kv is None else _copy(kv)

    def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        with self._s.changed:
            self._check_open()
            self._expire()
            keys = sorted(k for k in self._s.data if k.startswith(prefix))
            return [_copy(self._s.data[k]) for k in keys], self._s.revision

    def create(self, key: str, value: JSON, *, lease: int = 0) -> int:
        with self._s.changed:
            self._check_open()
            self._expire()
            self._check_lease(lease)
            if key in self._s.data:
                raise AlreadyExists(f"{key} already exists")
            return self._put(key, value, 0, lease)

    def put_raw(self, key: str, data: bytes) -> int:
        with self._s.changed:
            self._check_open()
            self._expire()
            kv = self._s.data.get(key)
            return self._put(key, decode_value(data), kv.create_revision if kv else 0, 0, raw=True)

    def update(self, key: str, value: JSON, *, revision: int, lease: int = 0) -> int:
        with self._s.changed:
            self._check_open()
            self._expire()
            kv = self._s.data.get(key)
            if kv is None:
                raise NotFound(f"{key} not found")
            if kv.mod_revision != revision:
                raise RevisionConflict(
                    f"{key} is at revision {kv.mod_revision}, not {revision}: re-read and retry"
                )
            self._check_lease(lease)
            return self._put(key, value, kv.create_revision, lease)

    def delete(self, key: str, *, revision: int | None = None) -> int:
        with self._s.changed:
            self._check_open()
            self._expire()
            kv = self._s.data.get(key)
            if kv is None:
                raise NotFound(f"{key} not found")
            if revision is not None and kv.mod_revision != revision:
                raise RevisionConflict(
                    f"{key} is at revision {kv.mod_revision}, not {revision}: re-read and retry"
                )
            del self._s.data[key]
            return self._bump(key, None)

    def txn(
        self,
        compares: Mapping[str, int],
        puts: Mapping[str, JSON] | None = None,
        deletes: Iterable[str] = (),
    ) -> TxnResult:
        texts, gone = check_txn(compares, puts or {}, deletes)
        with self._s.changed:
            self._check_open()
            self._expire()
            data = self._s.data
            now = {key: data.get(key) for key in compares}
            if any((kv.mod_revision if kv else 0) != compares[key] for key, kv in now.items()):
                current = {key: None if kv is None else _copy(kv) for key, kv in now.items()}
                return TxnResult(False, self._s.revision, current=current)
            revisions: dict[str, int] = {}
            for key, text in texts.items():
                kv = data.get(key)
                stored = decode_value(text)
                revisions[key] = self._put(key, stored, kv.create_revision if kv else 0, 0, raw=True)
            for key in gone:
                if data.pop(key, None) is not None:
                    self._bump(key, None)
            return TxnResult(True, self._s.revision, revisions=revisions)

    def watch(self, prefix: str, *, start_revision: int) -> Watch:
        self._check_open()
        return MemoryWatch(self, prefix, start_revision)

    def revision(self) -> int:
        with self._s.changed:
            return self._s.revision

    def grant_lease(self, ttl: int) -> int:
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")
        with self._s.changed:
            self._check_open()
            self._expire()
            lease = self._s.next_lease
            self._s.next_lease += 1
            self._s.leases[lease] = (ttl, self._clock() + ttl)
            return lease

    def keepalive(self, lease: int) -> None:
        with self._s.changed:
            self._check_open()
            self._expire()
            if lease not in self._s.leases:
                raise NotFound(f"lease {lease} not found (expired or revoked)")
            ttl, _ = self._s.leases[lease]
            self._s.leases[lease] = (ttl, self._clock() + ttl)

    def revoke_lease(self, lease: int) -> None:
        """Delete the lease and its keys; revoking an unknown lease does nothing."""
        with self._s.changed:
            self._check_open()
            self._expire()
            self._drop_lease(lease)

    def compact(self, revision: int) -> None:
        with self._s.changed:
            if revision > self._s.revision:
                raise ValidationError(
                    f"cannot compact at revision {revision}: the store is at {self._s.revision}"
                )
            self._compact_in(revision)

    def close(self) -> None:
        self._closed = True

    # -- used by MemoryWatch -----------------------------------------------------------

    def _events_after(self, prefix: str, after: int, timeout: float) -> _Events:
        s = self._s
        deadline = time.monotonic() + timeout
        with s.changed:
            while True:
                if after + 1 < s.compacted:
                    raise ResyncRequired(
                        f"{self.url}: revision {after + 1} was compacted"
                        f" (oldest kept: {s.compacted})"
                    )
                self._expire()
                first = bisect.bisect_right(s.history, after, key=lambda e: e.revision)
                events = [e for e in s.history[first:] if e.key.startswith(prefix)]
                remaining = deadline - time.monotonic()
                if events or remaining <= 0 or self._closed:
                    return [copy.deepcopy(e) for e in events]
                # Wake at least every 0.25 s so leases expire without writers.
                s.changed.wait(min(remaining, 0.25))


class MemoryWatch(Watch):
    def __init__(self, ds: MemoryDatastore, prefix: str, start_revision: int) -> None:
        self._ds = ds
        self._prefix = prefix
        self._after = max(start_revision, 1) - 1
        self._closed = False

    def next_batch(self, timeout: float) -> list[WatchEvent]:
        if self._closed:
            return []
        events = self._ds._events_after(self._prefix, self._after, max(timeout, 0.0))
        if events:
            self._after = events[-1].revision
        return events

    def close(self) -> None:
        self._closed = True


def _copy(kv: KeyValue) -> KeyValue:
    return KeyValue(kv.key, copy.deepcopy(kv.value), kv.mod_revision, kv.create_revision, kv.lease)
