"""/readyz says why: the agent's loop, driven through each state on an in-memory
datastore, and what /readyz answers for it (the checks, the body, and once over
real loopback HTTP)."""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gingham.agent.cluster_guard import ClusterGuard
from gingham.agent.daemon import Agent, AgentState
from gingham.agent.decode import decode, decode_value
from gingham.agent.health import HealthServer
from gingham.agent.node import HostAddresses
from gingham.agent.readiness import Check, body, checks
from gingham.calc import CalcGraph
from gingham.datastore import keys, open_datastore
from gingham.datastore.base import Datastore
from gingham.datastore.syncer import SyncStatus
from gingham.errors import DataplaneError

HOST = "h1"


class Plane:
    """Applies nothing; fails while ``failing`` says why."""

    def __init__(self) -> None:
        self.failing = ""

    def apply(self, messages: Sequence[Any]) -> None:
        if self.failing:
            raise DataplaneError(self.failing)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def name() -> Iterator[str]:
    name = f"readiness-{uuid.uuid4()}"
    made = open_datastore(f"memory://{name}", create=True)
    yield name
    made.close()


def make_agent(name: str, tmp_path: Path) -> tuple[Agent, Plane, Clock, Datastore]:
    ds = open_datastore(f"memory://{name}")
    plane, clock = Plane(), Clock()
    agent = Agent(
        hostname=HOST, datastore=ds, addresses=HostAddresses("192.0.2.11/24"),
        calc=CalcGraph(HOST, decode=decode_value), decode=decode, planes=[plane],
        guard=ClusterGuard(tmp_path / "cluster-id", f"memory://{name}"),
        clock=clock, wall_clock=lambda: 1_800_000_000.0, poll_timeout=0.01,
        sleep=lambda _s: None,
    )  # fmt: skip
    return agent, plane, clock, ds


def readyz(agent: Agent, verbose: bool = False) -> str:
    found = checks(agent.state, agent.syncer.status, agent.clock())
    return body(agent.state.ready, found, agent.state.reasons(), verbose)


def steps(agent: Agent, n: int = 3) -> None:
    for _ in range(n):
        agent.step()


def test_each_state_of_the_loop_names_its_reason(name: str, tmp_path: Path) -> None:
    agent, plane, clock, ds = make_agent(name, tmp_path)
    try:
        clock.now += 3.2
        assert readyz(agent) == "not ready: waiting for the first datastore sync (3.2 s)\n"

        steps(agent)
        assert agent.state.ready
        assert readyz(agent) == "ok\n"
        assert readyz(agent, verbose=True) == (
            "[+]datastore-sync ok\n[+]datastore-cluster ok\n[+]dataplane ok\n"
            "readyz check passed\n"
        )

        plane.failing = "nft: table gingham is busy"
        other = open_datastore(f"memory://{name}")
        try:
            other.create(keys.resource_key("GlobalNetworkSet", "a"), {
                "apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
                "metadata": {"name": "a"}, "spec": {"nets": ["198.51.100.0/24"]}})
        finally:
            other.close()
        steps(agent)
        assert not agent.state.ready
        assert readyz(agent) == "not ready: dataplane apply failing: Plane: nft: table gingham is busy\n"
        assert "[-]dataplane failed: dataplane apply failing: Plane: nft: table gingham is busy\n" \
            in readyz(agent, verbose=True)
        assert readyz(agent, verbose=True).endswith("readyz check failed\n")

        plane.failing = ""
        steps(agent)
        assert agent.state.ready and readyz(agent) == "ok\n"

        ds.close()  # this agent's handle: every call now raises Unavailable
        clock.now += 10  # the liveness refresh falls due: it is what finds out
        steps(agent)
        assert not agent.state.ready
        assert readyz(agent) == (
            f"not ready: datastore unreachable since 2027-01-15T08:00:00.000Z: "
            f"memory://{name}: datastore is closed\n"
        )
        assert "[-]datastore-sync failed: datastore unreachable since" in readyz(agent, True)
    finally:
        ds.close()


def test_a_datastore_without_cluster_id_is_named_once(name: str, tmp_path: Path) -> None:
    agent, _plane, _clock, ds = make_agent(name, tmp_path)
    try:
        ds.delete(keys.CLUSTER)
        steps(agent)
        text = readyz(agent)
        first, *rest = text.splitlines()
        assert first.startswith(f"not ready: memory://{name} has no cluster ID")
        assert rest == []  # the notice that says the same is not repeated
        assert f"[-]datastore-cluster failed: memory://{name} has no cluster ID" \
            in readyz(agent, verbose=True)
    finally:
        ds.close()


def test_checks_never_decide_readiness() -> None:
    """Mid-turn a scrape may see ready false and nothing failing: plain "not ready"."""
    state = AgentState(ready=False, programmed_once=True)
    found = checks(state, SyncStatus(in_sync=True, snapshots=1), now=0.0)
    assert all(c.ok for c in found)
    assert body(False, found, [], verbose=False) == "not ready\n"
    assert body(True, [Check("dataplane", "x")], [], verbose=False) == "ok\n"


@pytest.mark.parametrize(("status", "fanout", "want"), [
    (SyncStatus(snapshots=1), None, "resyncing with the datastore since 2027-01-15T08:00:00.000Z"),
    (SyncStatus(snapshots=1, last_error="watch compacted: revision 3 was compacted"), None,
     "resyncing with the datastore since 2027-01-15T08:00:00.000Z: watch compacted: "
     "revision 3 was compacted"),
    (SyncStatus(last_error="cannot reach fan-out server /run/f.sock: refused"), "/run/f.sock",
     "not in sync through fan-out server /run/f.sock since 2027-01-15T08:00:00.000Z: "
     "cannot reach fan-out server /run/f.sock: refused"),
])  # fmt: skip
def test_sync_reasons(status: SyncStatus, fanout: str | None, want: str) -> None:
    state = AgentState(sync_lost_at=1_800_000_000.0)
    assert checks(state, status, now=0.0, fanout=fanout)[0].failure == want


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_readyz_over_http(name: str, tmp_path: Path) -> None:
    agent, _plane, clock, ds = make_agent(name, tmp_path)
    server = HealthServer(
        "127.0.0.1", 0, live=lambda: agent.state.live, ready=lambda: agent.state.ready,
        registry=CollectorRegistry(), detail=lambda: "\n".join(agent.state.reasons()),
        readiness=lambda: checks(agent.state, agent.syncer.status, agent.clock()),
    )  # fmt: skip
    server.start()
    try:
        clock.now += 1.5
        assert _get(server.port, "/readyz") == (
            503, "not ready: waiting for the first datastore sync (1.5 s)\n")
        status, text = _get(server.port, "/readyz?verbose")
        assert status == 503
        assert text.splitlines() == [
            "[-]datastore-sync failed: waiting for the first datastore sync (1.5 s)",
            "[+]datastore-cluster ok",
            "[-]dataplane failed: dataplane not programmed yet",
            "readyz check failed",
        ]
        steps(agent)
        assert _get(server.port, "/readyz") == (200, "ok\n")
        assert _get(server.port, "/readyz?verbose=true")[1].endswith("readyz check passed\n")
        assert _get(server.port, "/readyz?verbose=0") == (200, "ok\n")
        assert _get(server.port, "/readyz?exclude=etcd") == (
            400, "unknown query parameter 'exclude' (/readyz takes verbose)\n")
        assert _get(server.port, "/livez") == (200, "ok\n")
    finally:
        server.stop()
        ds.close()
