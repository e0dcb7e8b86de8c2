"""The agent's registry: standard collectors, build info, no ``_created`` series, and
the datastore metrics (requests, errors, durations, watch lag) of a real loop on an
in-memory datastore."""

from __future__ import annotations

import platform
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, enable_created_metrics, generate_latest

from gingham import __version__
from gingham.agent.daemon import Agent
from gingham.agent.datastore_metrics import (
    REVISION_PROBE_INTERVAL,
    DatastoreMetrics,
    InstrumentedDatastore,
    WatchProgress,
)
from gingham.agent.decode import decode, decode_value
from gingham.agent.metrics import AgentMetrics, serving_process
from gingham.agent.node import HostAddresses
from gingham.calc import CalcGraph
from gingham.datastore import keys, open_datastore
from gingham.datastore.base import Datastore
from gingham.datastore.syncer import SyncStatus
from gingham.errors import AlreadyExists, NotFound, ResyncRequired


class Idle:
    def apply(self, messages: Sequence[Any]) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def name() -> Iterator[str]:
    name = f"metrics-{uuid.uuid4()}"
    made = open_datastore(f"memory://{name}", create=True)
    yield name
    made.close()


@pytest.fixture
def no_created() -> Iterator[None]:
    serving_process()
    yield
    enable_created_metrics()  # type: ignore[no-untyped-call]  # the library's default again


def samples(registry: CollectorRegistry) -> dict[str, float]:
    """``name{labels}`` -> value, as the exposition writes them."""
    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_standard_collectors_build_info_and_no_created(no_created: None) -> None:
    metrics = AgentMetrics()
    metrics.errors.labels(where="update").inc()
    metrics.apply_latency.observe(0.01)
    got = samples(metrics.registry)
    assert got[f'gingham_build_info{{python="{platform.python_version()}",'
               f'version="{__version__}"}}'] == 1
    assert got["process_resident_memory_bytes"] > 0
    assert got["process_start_time_seconds"] > 0
    assert any(k.startswith("process_open_fds") for k in got)
    assert any(k.startswith("python_info{") for k in got)
    assert any(k.startswith("python_gc_collections_total{") for k in got)
    assert not [k for k in got if "_created" in k]
    assert got['gingham_errors_total{where="update"}'] == 1


def test_created_series_are_there_without_serving_process() -> None:
    """What ``serving_process`` takes away (so the test above can fail)."""
    metrics = AgentMetrics()
    metrics.errors.labels(where="update").inc()
    assert 'gingham_errors_created{where="update"}' in samples(metrics.registry)


def test_requests_errors_and_durations_by_operation(name: str) -> None:
    reg = CollectorRegistry()
    m = DatastoreMetrics(reg)
    ds = InstrumentedDatastore(open_datastore(f"memory://{name}"), m)
    try:
        key = keys.resource_key("GlobalNetworkSet", "a")
        rev = ds.create(key, {"spec": {}})
        with pytest.raises(AlreadyExists):
            ds.create(key, {"spec": {}})
        with pytest.raises(NotFound):
            ds.delete(keys.resource_key("GlobalNetworkSet", "nobody"))
        assert ds.get(key) is not None
        _items, listed = ds.list(keys.ROOT)
        result = ds.txn({key: rev}, {key: {"spec": {"x": 1}}})
        assert result.succeeded
        with ds.watch(keys.ROOT, start_revision=listed + 1) as w:
            assert [e.key for e in w.next_batch(1.0)] == [key]
    finally:
        ds.close()
    count = {op: reg.get_sample_value("gingham_datastore_requests_total", {"operation": op})
             for op in ("create", "delete", "get", "list", "txn", "watch")}
    assert count == {"create": 2, "delete": 1, "get": 1, "list": 1, "txn": 1, "watch": 1}
    errors = "gingham_datastore_request_errors_total"
    assert reg.get_sample_value(errors, {"operation": "create", "error": "AlreadyExists"}) == 1
    assert reg.get_sample_value(errors, {"operation": "delete", "error": "NotFound"}) == 1
    assert reg.get_sample_value(errors, {"operation": "get", "error": "NotFound"}) is None
    assert reg.get_sample_value("gingham_datastore_request_duration_seconds_count",
                                {"operation": "create"}) == 2
    assert reg.get_sample_value("gingham_datastore_watch_events_total") == 1
    assert m.store_revision == result.revision  # the newest any answer showed


def test_watch_errors_are_counted(name: str) -> None:
    reg = CollectorRegistry()
    m = DatastoreMetrics(reg)
    inner = open_datastore(f"memory://{name}")
    ds = InstrumentedDatastore(inner, m)
    try:
        ds.create(keys.resource_key("GlobalNetworkSet", "a"), {"spec": {}})
        ds.create(keys.resource_key("GlobalNetworkSet", "b"), {"spec": {}})
        ds.compact(ds.revision())
        w = ds.watch(keys.ROOT, start_revision=1)
        with pytest.raises(ResyncRequired):
            w.next_batch(0.1)
        w.close()
    finally:
        ds.close()
    assert reg.get_sample_value("gingham_datastore_request_errors_total",
                                {"operation": "watch", "error": "ResyncRequired"}) == 1


def test_watch_progress_gauges() -> None:
    clock = Clock()
    m = DatastoreMetrics(CollectorRegistry(), clock=clock)
    progress = WatchProgress(m)
    reg = CollectorRegistry()
    reg.register(progress)
    assert progress.probe_due()  # nothing learnt yet
    assert reg.get_sample_value("gingham_datastore_watch_revisions_behind") is None
    progress.observe(SyncStatus(in_sync=True, revision=7, snapshots=1))
    m.saw_revision(10)
    clock.now += 4
    assert reg.get_sample_value("gingham_datastore_watch_revision") == 7
    assert reg.get_sample_value("gingham_datastore_revision") == 10
    assert reg.get_sample_value("gingham_datastore_watch_revisions_behind") == 3
    assert reg.get_sample_value("gingham_datastore_watch_last_change_age_seconds") == 4
    assert reg.get_sample_value("gingham_datastore_last_sync_age_seconds") == 4
    assert not progress.probe_due()
    progress.observe(SyncStatus(in_sync=True, revision=11, snapshots=1))
    clock.now += 1
    assert reg.get_sample_value("gingham_datastore_watch_revisions_behind") == 0
    assert reg.get_sample_value("gingham_datastore_watch_last_change_age_seconds") == 1
    assert reg.get_sample_value("gingham_datastore_last_sync_age_seconds") == 5
    clock.now += REVISION_PROBE_INTERVAL
    assert progress.probe_due()
    progress.direct = False  # through a fan-out server: no measure of the store's revision
    assert reg.get_sample_value("gingham_datastore_watch_revisions_behind") is None
    assert reg.get_sample_value("gingham_datastore_revision") is None
    assert not progress.probe_due()


def test_a_loop_counts_its_calls_and_catches_up(name: str) -> None:
    ds: Datastore = open_datastore(f"memory://{name}")
    agent = Agent(hostname="h1", datastore=ds, addresses=HostAddresses("192.0.2.11/24"),
                  calc=CalcGraph("h1", decode=decode_value), decode=decode, planes=[Idle()],
                  poll_timeout=0.01, sleep=lambda _s: None)  # fmt: skip
    reg = agent.metrics.registry
    other = open_datastore(f"memory://{name}")
    try:
        for _ in range(3):
            agent.step()
        assert agent.state.ready
        assert reg.get_sample_value("gingham_datastore_requests_total", {"operation": "list"}) == 1
        assert reg.get_sample_value("gingham_datastore_requests_total",
                                    {"operation": "watch"}) == 1
        assert reg.get_sample_value("gingham_datastore_watch_revisions_behind") == 0
        for n in "abc":
            other.create(keys.resource_key("GlobalNetworkSet", n), {"spec": {}})
        agent.datastore.revision()  # what the loop's probe reads, before its watch delivers
        assert reg.get_sample_value("gingham_datastore_watch_revisions_behind") == 3
        agent.step()
        assert reg.get_sample_value("gingham_datastore_watch_revisions_behind") == 0
        assert reg.get_sample_value("gingham_datastore_watch_events_total") >= 3
    finally:
        other.close()
        agent.syncer.close()
        ds.close()


def test_the_loop_reads_the_store_revision_when_nothing_told_it(name: str) -> None:
    clock = Clock()
    ds: Datastore = open_datastore(f"memory://{name}")
    agent = Agent(hostname="h1", datastore=ds, addresses=HostAddresses("192.0.2.11/24"),
                  calc=CalcGraph("h1", decode=decode_value), decode=decode, planes=[Idle()],
                  metrics=AgentMetrics(clock=clock), clock=clock, poll_timeout=0.01,
                  sleep=lambda _s: None)  # fmt: skip
    reg = agent.metrics.registry

    def reads() -> float | None:
        return reg.get_sample_value("gingham_datastore_requests_total", {"operation": "revision"})

    try:
        for _ in range(3):
            agent.step()
        assert reads() is None  # its snapshot told it the revision
        clock.now += REVISION_PROBE_INTERVAL  # and the liveness refresh falls due
        agent.step()
        assert reads() == 1
        agent.step()
        assert reads() == 1
    finally:
        agent.syncer.close()
        ds.close()
