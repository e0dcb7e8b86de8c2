"""Agents that read the datastore through the lab's fan-out server, and what happens to
them when that server or the datastore behind it goes away.

A 3-host lab with the fan-out forced on (``lab up --fanout``; a lab does it by
itself above 20 hosts), real agents, nft and workloads:

- every agent runs with ``--fanout``, and a policy change reaches all of them;
- kill -9 of the server (and of its supervisor, so nothing restarts it): every
  agent reports not ready and why, every host's nft table and the
  reachability matrix stay exactly as they were, a change made meanwhile is
  not enforced; once the server is started again every agent is ready and in
  sync, the change enforced;
- kill -9 of the server alone: its supervisor restarts it and the agents
  follow by themselves;
- (etcd) every etcd member killed behind the server: the agents fail static and
  report not ready; etcd back, they are in sync again.

Figures go to stdout (run with -s) as ``RELIABILITY {json}`` lines.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gingham.agent.status import STATUS_FILE
from gingham.datastore.resources import ResourceStore
from gingham.lab import fanout as labfanout
from gingham.lab import lab as labmod
from gingham.lab import matrix, workloads
from gingham.lab import state as labstate
from gingham.lab.state import LabState
from gingham.model import load_manifests
from tests.integration.faults import tools
from tests.integration.faults.test_datastore_outage import _etcd_down, _etcd_healthy

pytestmark = pytest.mark.integration

GINGHAM = str(Path(sys.executable).with_name("gingham"))
POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-client, namespace: fo}
spec:
  podSelector: {matchLabels: {role: server}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
"""


@contextlib.contextmanager
def fanout_lab(tag: int, datastore: str = "sqlite") -> Iterator[str]:
    name = tools.lab_name(tag)
    labmod.down(name)
    try:
        labmod.up(name, hosts=3, datastore=datastore, make_current=False, fanout=True)
        workloads.add(name, "fo/client", "h1", {"role": "client"}, [(80, "tcp", "")])
        workloads.add(name, "fo/server", "h2", {"role": "server"}, [(80, "tcp", "")])
        workloads.add(name, "fo/other", "h3", {"role": "other"}, [(80, "tcp", "")])
        st = labstate.load(name)
        ds = tools.datastore(st)
        try:
            for res in load_manifests(POLICY):
                ResourceStore(ds).apply(res)
        finally:
            ds.close()
        other, server = st.workload("fo/other"), st.workload("fo/server")
        tools.wait_until(lambda: not matrix.probe(other, server, 80, timeout=0.5), 15, "policy")
        yield name
    finally:
        labmod.down(name)


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    with fanout_lab(85) as name:
        yield name


# --- helpers ----------------------------------------------------------------------------------


def _table(lab: LabState, host: str) -> str:
    """The host's policy table with handles, without counters: what a rewrite would change."""
    out = subprocess.run(tools.nsenter(lab.host(host).netns, "nft", "-a", "list", "table", "inet",
                                       "gingham"),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return re.sub(r"counter packets \d+ bytes \d+", "counter", out)


def _tables(lab: LabState) -> dict[str, str]:
    return {h.name: _table(lab, h.name) for h in lab.hosts}


def _ready(lab: LabState) -> dict[str, int]:
    return {h.name: tools.readyz(lab, h.name) for h in lab.hosts}


def _notices(lab: LabState, host: str) -> list[str]:
    doc = json.loads((Path(lab.run_dir) / host / STATUS_FILE).read_text())
    return list(doc.get("notices") or [])


def _lab_fanout(name: str) -> dict[str, object]:
    out = subprocess.run([GINGHAM, "lab", "status", "--name", name, "-o", "json"],
                         capture_output=True, text=True, check=True, timeout=30).stdout  # fmt: skip
    fanout = json.loads(out)["fanout"]
    assert isinstance(fanout, dict)
    return fanout


def _set_role(lab: LabState, ref: str, role: str) -> None:
    ds = tools.datastore(lab)
    try:
        workloads.set_labels(ds, ref, {"role": role}, [])
    finally:
        ds.close()


def _other_reaches_server(lab: LabState) -> bool:
    return matrix.probe(lab.workload("fo/other"), lab.workload("fo/server"), 80, timeout=0.3)


def _report(figures: dict[str, object]) -> None:
    print("\nRELIABILITY " + json.dumps(figures, sort_keys=True))


# --- the tests --------------------------------------------------------------------------------


def test_every_agent_reads_through_the_server_and_a_change_reaches_all(lab: str) -> None:
    st = labstate.load(lab)
    fanout = _lab_fanout(lab)
    assert fanout["state"] == "running" and fanout["socket"] == st.fanout
    for h in st.hosts:
        cmdline = Path(f"/proc/{h.agent_pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[cmdline.index(b"--fanout") + 1] == st.fanout.encode(), cmdline
    assert set(_ready(st).values()) == {200}
    # The label is read on h3 (its own endpoint) and on h2 (the server's ingress set).
    start = time.monotonic()
    _set_role(st, "fo/other", "client")
    try:
        tools.wait_until(lambda: _other_reaches_server(st), 10, "other -> server opens",
                         interval=0.02)  # fmt: skip
        took = time.monotonic() - start  # with the probes (≈ 0.1-0.3 s each)
    finally:
        _set_role(st, "fo/other", "other")
        tools.wait_until(lambda: not _other_reaches_server(st), 10, "undo")
    _report({"fanout": "label change enforced", "seconds_incl_probe": round(took, 3)})


def test_kill9_of_the_server_leaves_every_dataplane_and_agents_report_it(lab: str) -> None:
    st = labstate.load(lab)
    before_tables = _tables(st)
    before = matrix.measure(st, 80, timeout=0.5)
    assert before.cells["fo/client"]["fo/server"] is True
    assert before.cells["fo/other"]["fo/server"] is False
    figures: dict[str, object] = {"fanout": "kill -9, not restarted"}

    labmod.stop_fanout(lab)  # supervisor and server, SIGKILL: nothing brings it back
    t0 = time.monotonic()
    figures["not_ready_after_s"] = round(tools.wait_until(
        lambda: set(_ready(st).values()) == {503}, 10, "every agent reports not ready"), 2)  # fmt: skip
    for h in st.hosts:
        assert any("read through a fan-out server" in n for n in _notices(st, h.name)), \
            _notices(st, h.name)
    _set_role(st, "fo/other", "client")  # a change the agents cannot hear of now
    time.sleep(1.0)
    assert matrix.measure(st, 80, timeout=0.5).cells == before.cells, "fail static broken"
    assert _tables(st) == before_tables, "a dataplane changed while the server was gone"
    assert set(_ready(st).values()) == {503}
    assert _lab_fanout(lab)["state"] == "stopped"
    figures["outage_s"] = round(time.monotonic() - t0, 2)

    labmod.start_fanout(lab)
    t1 = time.monotonic()
    try:
        figures["ready_after_restart_s"] = round(tools.wait_until(
            lambda: set(_ready(st).values()) == {200}, 30, "agents ready again", 0.05), 2)  # fmt: skip
        tools.wait_until(lambda: _other_reaches_server(st), 10, "the change made meanwhile", 0.02)
        figures["change_enforced_after_restart_s"] = round(time.monotonic() - t1, 2)
        for h in st.hosts:
            assert not any("fan-out" in n for n in _notices(st, h.name))
    finally:
        _set_role(st, "fo/other", "other")
        tools.wait_until(lambda: not _other_reaches_server(st), 10, "undo")
    assert matrix.measure(st, 80, timeout=0.5).cells == before.cells
    _report(figures)


def test_a_server_killed_under_its_supervisor_comes_back_by_itself(lab: str) -> None:
    st = labstate.load(lab)
    killed = labmod.kill_fanout(lab)
    back = tools.wait_until(
        lambda: _lab_fanout(lab)["pid"] not in (0, killed)
        and set(_ready(st).values()) == {200}, 30, "server restarted, agents ready")  # fmt: skip
    fanout = _lab_fanout(lab)
    assert (fanout["state"], fanout["restarts"], fanout["last_exit"]) == (
        "running", 1, "signal 9 (SIGKILL)")
    _set_role(st, "fo/other", "client")
    try:
        tools.wait_until(lambda: _other_reaches_server(st), 10, "a change after the restart")
    finally:
        _set_role(st, "fo/other", "other")
        tools.wait_until(lambda: not _other_reaches_server(st), 10, "undo")
    _report({"fanout": "kill -9 under supervision", "all_ready_after_s": round(back, 2)})


@pytest.mark.etcd
def test_an_etcd_outage_behind_the_server_leaves_agents_static() -> None:
    with fanout_lab(86, datastore="etcd") as name:
        st = labstate.load(name)
        before_tables = _tables(st)
        before = matrix.measure(st, 80, timeout=0.5)
        figures: dict[str, object] = {"fanout": "etcd killed behind the server"}
        with _etcd_down(name, "kill"):
            figures["not_ready_after_s"] = round(tools.wait_until(
                lambda: set(_ready(st).values()) == {503}, 15, "agents not ready"), 2)  # fmt: skip
            assert matrix.measure(st, 80, timeout=0.5).cells == before.cells
            assert _tables(st) == before_tables
            for h in st.hosts:
                assert any("lost the datastore" in n for n in _notices(st, h.name)), \
                    _notices(st, h.name)
        st = labstate.load(name)
        tools.wait_until(lambda: _etcd_healthy(st), 30, "etcd healthy again", 0.05)
        figures["ready_after_etcd_healthy_s"] = round(tools.wait_until(
            lambda: set(_ready(st).values()) == {200}, 20, "agents ready again", 0.05), 2)  # fmt: skip
        assert _tables(st) == before_tables
        start = time.monotonic()
        _set_role(st, "fo/other", "client")
        tools.wait_until(lambda: _other_reaches_server(st), 10, "change after the outage", 0.02)
        figures["change_enforced_after_s_incl_probe"] = round(time.monotonic() - start, 2)
        _report(figures)


def test_down_stops_the_server_even_when_the_lab_state_is_lost() -> None:
    name = tools.lab_name(87)
    labmod.down(name)
    try:
        labmod.up(name, hosts=1, make_current=False, fanout=True)
        st = labstate.load(name)
        server = labfanout.server_pid(st)
        assert server and labfanout.supervised(st)
        (labstate.lab_dir(name) / "state.json").unlink()  # a crash left no state behind
    finally:
        labmod.down(name)
    assert labfanout.leftovers(name) == []
    assert not labfanout.is_lab_process(server, name, "fanout serve")
