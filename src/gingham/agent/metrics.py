"""Prometheus metrics of one agent, on a registry of its own (no globals).

The registry also carries what every Prometheus target is expected to have:
``process_*`` (CPU, memory, file descriptors, start time), ``python_*``
(interpreter, garbage collector) and ``gingham_build_info``. Every metric is
listed in docs/OPERATIONS.md, "Metrics, logs and /readyz".
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from gingham import __version__
from gingham.agent.datastore_metrics import DatastoreMetrics, WatchProgress

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class AgentMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # What the datastore gauges measure ages with (monotonic).
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        Gauge(
            "gingham_build_info",
            "Always 1; the labels say which gingham and which Python run here",
            ["version", "python"],
            registry=r,
        ).labels(version=__version__, python=platform.python_version()).set(1)
        self.datastore = DatastoreMetrics(r, self.clock)
        self.watch = WatchProgress(self.datastore)
        r.register(self.watch)
        self.apply_latency = Histogram(
            "gingham_apply_latency_seconds",
            "From a datastore event reaching the agent to the dataplane change applied",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.applies = Counter("gingham_dataplane_applies", "Dataplane transactions", registry=r)
        self.nft_transactions = Counter(
            "gingham_nft_transactions",
            "Policy nft transactions by path: via=netlink (one nfnetlink batch) or nft "
            "(nft -f -); fallback=yes when netlink was wanted but the transaction needed nft",
            ["via", "fallback"],
            registry=r,
        )
        self.errors = Counter(
            "gingham_errors", "Errors by where they happened", ["where"], registry=r
        )
        self.resyncs = Counter("gingham_resyncs", "Datastore resyncs", registry=r)
        self.rules = Gauge("gingham_rules_programmed", "nft rules programmed", registry=r)
        self.sets = Gauge("gingham_ipsets_programmed", "IP sets programmed", registry=r)
        self.endpoints = Gauge("gingham_local_endpoints", "Local workload endpoints", registry=r)
        self.invalid_resources = Gauge(
            "gingham_invalid_resources",
            "Stored documents that do not validate, by kind (see /readyz for which)",
            ["kind"],
            registry=r,
        )
        self.in_sync = Gauge("gingham_in_sync", "1 when in sync with the datastore", registry=r)
        self.host_capability = Gauge(
            "gingham_host_capability",
            "1 when the host has the capability, 0 when it lacks it (see gingham node status)",
            ["name"],
            registry=r,
        )


def serving_process() -> None:
    """Once, in a process that serves metrics: no ``*_created`` series. Counters and
    histograms would each carry a second series holding their creation time, which
    no dashboard reads and every scrape pays for (``process_start_time_seconds``
    says when the agent started)."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
