"""kill -9 of an agent under traffic: nothing notices; its supervisor brings it back by
itself, and the restart rewrites nothing correct and removes only what went stale while
it was down."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gingham.datastore import open_datastore
from gingham.datastore.resources import ResourceStore
from gingham.lab import lab as labmod
from gingham.lab import matrix, workloads
from gingham.lab import state as labstate
from gingham.model import load_manifests

pytestmark = pytest.mark.integration

POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-client, namespace: rs}
spec:
  podSelector: {matchLabels: {role: server}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
"""
CONNECT_LOOP = """
import socket, sys, time
ok = failed = 0
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
        ok += 1
    except OSError:
        failed += 1
    time.sleep(0.02)
print(ok, failed)
"""


def _in(netns: str, *argv: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]


def _table(netns: str) -> str:
    """The table with handles but without counters: what a rewrite would change."""
    out = subprocess.run(_in(netns, "nft", "-a", "list", "table", "inet", "gingham"),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    import re

    return re.sub(r"counter packets \d+ bytes \d+", "counter", out)


def _wait_open(lab: str, src: str, dst: str, port: int, want: bool = True) -> None:
    st = labstate.load(lab)
    deadline = time.monotonic() + 10
    while matrix.probe(st.workload(src), st.workload(dst), port) != want:
        assert time.monotonic() < deadline, f"{src} -> {dst}:{port} never became {want}"
        time.sleep(0.1)


def _lab_status(lab: str) -> dict[str, dict[str, object]]:
    gingham = str(Path(sys.executable).with_name("gingham"))
    out = subprocess.run([gingham, "lab", "status", "--name", lab, "-o", "json"],
                         capture_output=True, text=True, check=True, timeout=30).stdout  # fmt: skip
    return {h["name"]: h for h in json.loads(out)["hosts"]}


def _wait_supervised_restart(lab: str, host: str, killed: int, timeout: float = 30.0) -> int:
    """The pid of the agent the supervisor started after ``killed``, once it is ready."""
    deadline = time.monotonic() + timeout
    while True:
        h = labstate.load(lab).host(host)
        if h.agent_pid not in (0, killed) and labmod.host_ready(h):
            return h.agent_pid
        assert time.monotonic() < deadline, f"the agent of {host} did not come back by itself"
        time.sleep(0.1)


def test_kill9_under_traffic_comes_back_by_itself_and_rewrites_nothing(lab: str) -> None:
    workloads.add(lab, "rs/client", "h1", {"role": "client"}, [])
    workloads.add(lab, "rs/server", "h2", {"role": "server"}, [(80, "tcp", "")])
    workloads.add(lab, "rs/other", "h3", {"role": "other"}, [])
    ds = open_datastore(labstate.load(lab).datastore)
    try:
        for res in load_manifests(POLICY):
            ResourceStore(ds).apply(res)
    finally:
        ds.close()
    _wait_open(lab, "rs/other", "rs/server", 80, want=False)
    _wait_open(lab, "rs/client", "rs/server", 80)
    assert _lab_status(lab)["h2"]["restarts"] == 0

    st = labstate.load(lab)
    client, server = st.workload("rs/client"), st.workload("rs/server")
    host2 = st.host("h2").netns
    before = _table(host2)
    iperf_server = subprocess.Popen(
        _in(server.netns, "iperf3", "-s", "-1"), stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(0.3)
        stream = subprocess.Popen(_in(client.netns, "iperf3", "-c", server.ips[0], "-t", "7"),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        loop = subprocess.Popen(
            _in(client.netns, sys.executable, "-I", "-S", "-c", CONNECT_LOOP, server.ips[0], "80", "6.5"),
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.0)
        started = time.monotonic()
        killed = labmod.kill_agent(lab, "h2")  # kill -9, and no operator action after it
        back = _wait_supervised_restart(lab, "h2", killed)
        # New connections were tried all along the gap and the new agent's first sync.
        assert time.monotonic() - started < 5.0, (
            "the agent came back too late for the traffic to tell"
        )
        out, _ = stream.communicate(timeout=30)
        counts, _ = loop.communicate(timeout=30)
    finally:
        iperf_server.kill()
        iperf_server.wait()
    assert stream.returncode == 0, out
    ok, failed = map(int, counts.split())
    assert failed == 0 and ok > 50, counts
    assert _table(host2) == before, "the restarted agent rewrote a correct dataplane"
    h2 = _lab_status(lab)["h2"]
    assert (h2["restarts"], h2["agent_pid"], h2["state"], h2["ready"]) == (1, back, "running", True)
    assert h2["last_exit"] == "signal 9 (SIGKILL)"
    # Still enforcing after the restart.
    assert not matrix.probe(labstate.load(lab).workload("rs/other"), server, 80)


def test_restart_removes_only_what_went_stale(lab: str) -> None:
    workloads.add(lab, "rs/stale", "h3", {"role": "server"}, [(80, "tcp", "")])
    workloads.add(lab, "rs/keep", "h3", {"role": "server"}, [(80, "tcp", "")])
    st = labstate.load(lab)
    host3 = st.host("h3").netns
    stale_if, keep_if = st.workload("rs/stale").interface, st.workload("rs/keep").interface
    deadline = time.monotonic() + 10
    while stale_if not in _table(host3):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    labmod.stop_agent(lab, "h3")
    ds = open_datastore(st.datastore)
    try:  # the endpoint goes while the agent is down
        items, _ = ds.list("/gingham/v1/resources/WorkloadEndpoint/rs/")
        for kv in items:
            if kv.value["spec"]["interfaceName"] == stale_if:
                ds.delete(kv.key)
    finally:
        ds.close()
    assert stale_if in _table(host3)  # nothing changes without an agent
    labmod.start_agent(lab, "h3", wait=True)
    after = _table(host3)
    assert stale_if not in after
    assert keep_if in after
