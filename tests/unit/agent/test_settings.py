"""The agent's own settings: log level and the health and metrics servers follow
FelixConfiguration while the agent runs (real servers on loopback ports); command-line
flags win; a plane after a failing one still gets every batch."""

from __future__ import annotations

import logging
import random
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from gingham.agent.daemon import Agent
from gingham.agent.decode import decode, decode_value
from gingham.agent.health import HealthServer, metrics_server
from gingham.agent.node import HostAddresses
from gingham.agent.settings import AgentSettings, LocalOverrides, Server
from gingham.calc import CalcGraph
from gingham.calc.messages import ConfigUpdate, Listener
from gingham.datastore import open_datastore
from gingham.errors import DataplaneError


def free_port() -> int:
    """A port free now, outside the ephemeral range: a port the kernel hands out for
    bind(0) goes to the next test that asks, which may be another suite's."""
    while True:
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def get(port: int, path: str) -> int:
    """HTTP status of ``path`` on ``port`` (0: nothing listens)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.fixture
def registry() -> CollectorRegistry:
    r = CollectorRegistry()
    Counter("gingham_test_total", "a metric to find", registry=r).inc()
    return r


@pytest.fixture
def plane(registry: CollectorRegistry) -> Iterator[AgentSettings]:
    def make(at: Listener, probes: bool) -> Server:
        if not probes:
            return metrics_server(at.host, at.port, registry)
        return HealthServer(at.host, at.port, live=lambda: True, ready=lambda: True,
                            registry=registry)

    made = AgentSettings(make, LocalOverrides(health_port=free_port()))
    made.overrides = LocalOverrides()  # what start() bound is the command line's
    yield made
    made.close()


def test_listeners_follow_the_configuration(plane: AgentSettings) -> None:
    plane.start()
    assert plane.health_at is not None
    first = plane.health_at.port
    assert (get(first, "/healthz"), get(first, "/metrics")) == (200, 200)
    health, metrics, moved = free_port(), free_port(), free_port()
    # healthPort moves the health server; the old port closes.
    plane.apply([ConfigUpdate(health=Listener("127.0.0.1", health))])
    assert get(health, "/healthz") == 200 and get(first, "/healthz") == 0
    # prometheusMetricsEnabled: /metrics on its own server, no longer on the health port.
    plane.apply([ConfigUpdate(health=Listener("localhost", health),
                              metrics=Listener("127.0.0.1", metrics))])
    assert (get(metrics, "/metrics"), get(metrics, "/healthz")) == (200, 404)
    assert (get(health, "/metrics"), get(health, "/readyz")) == (404, 200)
    # prometheusMetricsPort moves it.
    plane.apply([ConfigUpdate(health=Listener("localhost", health),
                              metrics=Listener("127.0.0.1", moved))])
    assert get(moved, "/metrics") == 200 and get(metrics, "/metrics") == 0
    # Disabled again: back on the health port.
    plane.apply([ConfigUpdate(health=Listener("localhost", health))])
    assert get(moved, "/metrics") == 0 and get(health, "/metrics") == 200
    # healthEnabled: false stops it.
    plane.apply([ConfigUpdate(health=None)])
    assert get(health, "/healthz") == 0 and plane.health is None
    assert plane.notices() == []


def test_a_taken_port_is_reported_and_tried_again(plane: AgentSettings) -> None:
    plane.start()
    assert plane.health_at is not None
    old = plane.health_at.port
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    want = ConfigUpdate(health=Listener("127.0.0.1", port))
    try:
        plane.apply([want])
        [notice] = plane.notices()
        assert notice.startswith(f"health server cannot listen on 127.0.0.1:{port}")
        assert notice.endswith(f"still on 127.0.0.1:{old}")
        assert get(old, "/healthz") == 200  # the old one keeps serving
        plane.tick(1e9)  # still taken: still reported
        assert plane.notices()
    finally:
        taken.close()
    plane.tick(1e9 + 1)  # within the retry interval: nothing tried
    assert plane.notices()
    plane.tick(2e9)
    assert plane.notices() == [] and get(port, "/healthz") == 200 and get(old, "/healthz") == 0


def test_command_line_wins_over_the_datastore(registry: CollectorRegistry) -> None:
    port = free_port()
    levels: list[int] = []

    def make(at: Listener, probes: bool) -> Server:
        return HealthServer(at.host, at.port, live=lambda: True, ready=lambda: True,
                            registry=registry)

    plane = AgentSettings(make, LocalOverrides(log_level="warning", health_port=port),
                          set_level=levels.append)
    try:
        plane.start()
        plane.apply([ConfigUpdate(health=Listener("127.0.0.1", free_port()),
                                  log_severity="Debug")])
        assert plane.health_at == Listener("127.0.0.1", port) and get(port, "/healthz") == 200
        assert levels == [logging.WARNING]
        # The address was not given: the datastore's applies, on the command line's port.
        plane.apply([ConfigUpdate(health=Listener("localhost", 1))])
        assert plane.health_at == Listener("localhost", port)
    finally:
        plane.close()


def test_log_level_follows_the_configuration() -> None:
    levels: list[int] = []
    plane = AgentSettings(lambda at, probes: _NoServer(), set_level=levels.append)
    for severity in ("Debug", "Info", "Warning", "Error", "Fatal", "Trace", "Trace"):
        plane.apply([ConfigUpdate(log_severity=severity, health=None)])  # type: ignore[arg-type]
    assert levels == [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR,
                      logging.CRITICAL, logging.DEBUG]


class _NoServer:
    serve_metrics = True

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class _Recorder:
    def __init__(self, fail: int = 0) -> None:
        self.batches: list[list[Any]] = []
        self.fail = fail

    def apply(self, messages: Sequence[Any]) -> None:
        self.batches.append(list(messages))
        if self.fail:
            self.fail -= 1
            raise DataplaneError("not now")


def test_a_plane_after_a_failing_one_gets_the_batch_on_retry() -> None:
    ds = open_datastore(f"memory://settings-{uuid.uuid4()}", create=True)
    first, failing, last = _Recorder(), _Recorder(fail=1), _Recorder()
    agent = Agent(hostname="h1", datastore=ds, addresses=HostAddresses("192.0.2.11/24"),
                  calc=CalcGraph("h1", decode=decode_value), decode=decode,
                  planes=[first, failing, last], poll_timeout=0.01, sleep=lambda _s: None)
    try:
        for _ in range(4):
            agent.step()
    finally:
        ds.close()
    seen = [m for batch in last.batches for m in batch]
    assert seen and seen == [m for batch in first.batches for m in batch]
    assert any(isinstance(m, ConfigUpdate) for m in seen)
