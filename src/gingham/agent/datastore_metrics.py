"""What the agent's datastore costs and how far behind its watch is, as metrics.

:class:`InstrumentedDatastore` wraps the backend the agent uses (whatever it
is: sqlite, etcd, memory) and counts every call by operation, its errors by
error class, and its duration. It changes nothing about the calls: same
arguments, same results, same exceptions. It also keeps the highest store
revision any answer showed (``list``, writes, ``txn``, ``revision``).

:class:`WatchProgress` turns that and what the agent's update source
delivered into the lag gauges, computed when scraped from numbers the loop
wrote (a scrape never touches the datastore). Neither backend records when a
change was committed, so lag is told in revisions behind the store and in
seconds since the last change and the last complete snapshot; see
docs/OPERATIONS.md, "Metrics, logs and /readyz".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gingham.datastore.base import JSON, Datastore, KeyValue, TxnResult, Watch, WatchEvent
from gingham.datastore.syncer import SyncStatus
from gingham.errors import GinghamError

T = TypeVar("T")

# Datastore calls take from well under a millisecond (sqlite, a cached etcd
# connection) to the backend's timeout and retries (seconds).
_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                     1.0, 2.5, 5.0, 10.0, 30.0)  # fmt: skip

# How often, at most, the loop reads the store revision itself when no other
# answer told it (a quiet cluster: its own writes are seconds apart).
REVISION_PROBE_INTERVAL = 10.0


class DatastoreMetrics:
    """The request metric families, on one registry."""

    def __init__(self, registry: CollectorRegistry,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.clock = clock
        self.requests = Counter(
            "gingham_datastore_requests",
            "Datastore calls by operation (a watch: each watch opened)",
            ["operation"], registry=registry,
        )  # fmt: skip
        self.errors = Counter(
            "gingham_datastore_request_errors",
            "Datastore calls that raised, by operation and error class (a watch: each "
            "failure of its stream)",
            ["operation", "error"], registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "gingham_datastore_request_duration_seconds",
            "How long datastore calls took, by operation, failed ones included "
            "(a watch: opening it)",
            ["operation"], buckets=_DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.watch_events = Counter(
            "gingham_datastore_watch_events",
            "Changes the agent's watches delivered (every key under the watched prefix)",
            registry=registry,
        )
        # The highest store revision any answer showed, and when (monotonic).
        self.store_revision = 0
        self.store_revision_at: float | None = None

    def saw_revision(self, revision: int) -> None:
        if revision >= self.store_revision:
            self.store_revision = revision
            self.store_revision_at = self.clock()


class InstrumentedDatastore(Datastore):
    """``inner``, counted; see the module docstring."""

    def __init__(self, inner: Datastore, metrics: DatastoreMetrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.url = str(getattr(inner, "url", "the datastore"))

    def __getattr__(self, name: str) -> Any:
        # What a backend has beyond the contract (sqlite's path, say) stays reachable.
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        m = self.metrics
        m.requests.labels(operation=operation).inc()
        start = time.monotonic()
        try:
            return fn()
        except Exception as exc:
            m.errors.labels(operation=operation, error=_error_name(exc)).inc()
            raise
        finally:
            m.duration.labels(operation=operation).observe(time.monotonic() - start)

    def _written(self, revision: int) -> int:
        self.metrics.saw_revision(revision)
        return revision

    def get(self, key: str) -> KeyValue | None:
        return self._call("get", lambda: self.inner.get(key))

    def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        items, revision = self._call("list", lambda: self.inner.list(prefix))
        self.metrics.saw_revision(revision)
        return items, revision

    def put_raw(self, key: str, data: bytes) -> int:
        return self._written(self._call("put_raw", lambda: self.inner.put_raw(key, data)))

    def create(self, key: str, value: JSON, *, lease: int = 0) -> int:
        return self._written(
            self._call("create", lambda: self.inner.create(key, value, lease=lease)))

    def update(self, key: str, value: JSON, *, revision: int, lease: int = 0) -> int:
        return self._written(self._call(
            "update", lambda: self.inner.update(key, value, revision=revision, lease=lease)))

    def delete(self, key: str, *, revision: int | None = None) -> int:
        return self._written(
            self._call("delete", lambda: self.inner.delete(key, revision=revision)))

    def txn(
        self,
        compares: Mapping[str, int],
        puts: Mapping[str, JSON] | None = None,
        deletes: Iterable[str] = (),
    ) -> TxnResult:
        result = self._call("txn", lambda: self.inner.txn(compares, puts, deletes))
        self.metrics.saw_revision(result.revision)
        return result

    def watch(self, prefix: str, *, start_revision: int) -> Watch:
        inner = self._call("watch",
                           lambda: self.inner.watch(prefix, start_revision=start_revision))
        return InstrumentedWatch(inner, self.metrics)

    def revision(self) -> int:
        return self._written(self._call("revision", self.inner.revision))

    def grant_lease(self, ttl: int) -> int:
        return self._call("grant_lease", lambda: self.inner.grant_lease(ttl))

    def keepalive(self, lease: int) -> None:
        self._call("keepalive", lambda: self.inner.keepalive(lease))

    def revoke_lease(self, lease: int) -> None:
        self._call("revoke_lease", lambda: self.inner.revoke_lease(lease))

    def compact(self, revision: int) -> None:
        self._call("compact", lambda: self.inner.compact(revision))

    def close(self) -> None:
        self.inner.close()


class InstrumentedWatch(Watch):
    def __init__(self, inner: Watch, metrics: DatastoreMetrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def next_batch(self, timeout: float) -> list[WatchEvent]:
        try:
            events = self.inner.next_batch(timeout)
        except Exception as exc:
            self.metrics.errors.labels(operation="watch", error=_error_name(exc)).inc()
            raise
        if events:
            self.metrics.watch_events.inc(len(events))
        return events

    def close(self) -> None:
        self.inner.close()


def _error_name(exc: Exception) -> str:
    # gingham's own error classes are few and fixed; anything else is a bug, counted as one.
    return type(exc).__name__ if isinstance(exc, GinghamError) else "unexpected"


class WatchProgress(Collector):
    """The lag gauges. The loop calls :meth:`observe` after each poll of its update
    source; a scrape reads what it recorded (see the module docstring). Times are
    on the request metrics' clock (monotonic), whatever clock the loop runs on."""

    def __init__(self, requests: DatastoreMetrics) -> None:
        self.requests = requests
        self.clock = requests.clock
        # False: the agent reads through a fan-out server, which passes on only the
        # keys agents act on, so its revision is no measure of the store's.
        self.direct = True
        self.revision = 0  # what the source has delivered up to
        self.last_change: float | None = None  # monotonic
        self.last_sync: float | None = None  # monotonic: the last complete snapshot
        self._snapshots = 0

    def observe(self, status: SyncStatus) -> None:
        now = self.clock()
        if status.snapshots != self._snapshots:
            self._snapshots = status.snapshots
            self.last_sync = self.last_change = now
        if status.revision != self.revision:
            self.revision = status.revision
            self.last_change = now

    def probe_due(self) -> bool:
        """Whether the loop should read the store revision (nothing told it lately)."""
        at = self.requests.store_revision_at
        return self.direct and (at is None or self.clock() - at >= REVISION_PROBE_INTERVAL)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock()
        values: dict[str, float | None] = {
            _WATCH_REVISION: self.revision,
            _STORE_REVISION: None,
            _BEHIND: None,
            _LAST_CHANGE: None if self.last_change is None else now - self.last_change,
            _LAST_SYNC: None if self.last_sync is None else now - self.last_sync,
        }
        if self.direct and self.requests.store_revision_at is not None:
            values[_STORE_REVISION] = self.requests.store_revision
            values[_BEHIND] = max(0, self.requests.store_revision - self.revision)
        for name, value in values.items():
            if value is not None:  # unknown: no sample rather than a made-up 0
                yield GaugeMetricFamily(name, _HELP[name], value=value)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Every name, with or without a value now: the registry refuses a clash.
        for name, text in _HELP.items():
            yield GaugeMetricFamily(name, text)


_WATCH_REVISION = "gingham_datastore_watch_revision"
_STORE_REVISION = "gingham_datastore_revision"
_BEHIND = "gingham_datastore_watch_revisions_behind"
_LAST_CHANGE = "gingham_datastore_watch_last_change_age_seconds"
_LAST_SYNC = "gingham_datastore_last_sync_age_seconds"
_HELP = {
    _WATCH_REVISION: "The store revision up to which the agent has received changes",
    _STORE_REVISION: "The highest store revision the agent's own datastore calls saw "
                     "(absent through a fan-out server)",
    _BEHIND: "Store revisions (as last seen by the agent's own calls) its watch had not "
             "delivered yet (absent through a fan-out server)",
    _LAST_CHANGE: "Seconds since the agent last received a change or a snapshot",
    _LAST_SYNC: "Seconds since the agent last received a complete snapshot (first sync "
                "or resync)",
}  # fmt: skip
