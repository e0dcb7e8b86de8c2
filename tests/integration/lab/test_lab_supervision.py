"""A lab's agents run under supervisors: ``lab up`` makes the datastore and the
supervisors, ``lab status`` tells their story, ``lab down`` leaves no process,
whatever was killed before it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gingham.datastore import open_datastore
from gingham.datastore.cluster import read_cluster_id
from gingham.errors import LabError
from gingham.lab import lab as labmod
from gingham.lab import state as labstate
from gingham.lab.netns import list_netns

pytestmark = pytest.mark.integration

GINGHAM = str(Path(sys.executable).with_name("gingham"))


def lab_processes(name: str) -> dict[int, str]:
    """Every process in the process table started for lab ``name`` (supervisors, agents,
    what they started): the lab marks them with GINGHAM_LAB in their environment."""
    marker = f"GINGHAM_LAB={name}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue  # ended while we looked
        if marker in environ.split(b"\0") and "zombie" not in status:
            found[int(entry.name)] = cmdline
    return found


def status_json(name: str) -> dict[str, dict[str, object]]:
    out = subprocess.run([GINGHAM, "lab", "status", "--name", name, "-o", "json"],
                         capture_output=True, text=True, check=True, timeout=30).stdout  # fmt: skip
    return {h["name"]: h for h in json.loads(out)["hosts"]}


@pytest.fixture
def one_host() -> Iterator[str]:
    name = f"s{os.getpid() % 100000}"
    labmod.down(name)
    try:
        labmod.up(name, hosts=1, make_current=False)
        yield name
    finally:
        labmod.down(name)


def test_up_makes_the_datastore_with_its_cluster_id(one_host: str) -> None:
    url = labstate.load(one_host).datastore
    ds = open_datastore(url)  # no create: it must exist already
    try:
        assert read_cluster_id(ds)
        items, _ = ds.list("/gingham/v1/resources/IPPool/")
        assert len(items) == 1
    finally:
        ds.close()


def test_status_reports_the_supervised_agent(one_host: str) -> None:
    st = labstate.load(one_host)
    h1 = status_json(one_host)["h1"]
    assert h1["state"] == "running" and h1["ready"] is True
    assert h1["agent_pid"] == st.host("h1").agent_pid > 0
    assert h1["supervisor_pid"] == st.host("h1").supervisor_pid > 0
    assert (h1["restarts"], h1["last_exit"]) == (0, "")
    procs = lab_processes(one_host)
    assert st.host("h1").supervisor_pid in procs and st.host("h1").agent_pid in procs
    table = subprocess.run([GINGHAM, "lab", "status", "--name", one_host],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "RESTARTS" in table and "running" in table


def test_stop_agent_is_for_good_until_start_agent(one_host: str) -> None:
    old = labstate.load(one_host).host("h1")
    labmod.stop_agent(one_host, "h1")
    time.sleep(1.5)  # three times the first restart delay: nothing comes back
    assert lab_processes(one_host) == {}
    h1 = status_json(one_host)["h1"]
    assert (h1["state"], h1["ready"], h1["agent_pid"]) == ("stopped", False, 0)
    with pytest.raises(LabError, match="not running under its supervisor"):
        labmod.kill_agent(one_host, "h1")
    labmod.start_agent(one_host, "h1", wait=True)
    new = labstate.load(one_host).host("h1")
    assert new.supervisor_pid not in (0, old.supervisor_pid)
    assert new.agent_pid not in (0, old.agent_pid)
    with pytest.raises(LabError, match="running under its supervisor"):
        labmod.start_agent(one_host, "h1")


def test_down_leaves_no_process_after_the_supervisor_was_killed(one_host: str) -> None:
    st = labstate.load(one_host)
    supervisor, agent = st.host("h1").supervisor_pid, st.host("h1").agent_pid
    os.kill(supervisor, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while status_json(one_host)["h1"]["state"] != "unsupervised":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # The agent outlives its supervisor and still serves.
    h1 = status_json(one_host)["h1"]
    assert h1["agent_pid"] == agent and h1["ready"] is True
    assert agent in lab_processes(one_host)

    labmod.down(one_host)
    assert lab_processes(one_host) == {}
    for pid in (supervisor, agent):
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    assert not [n for n in list_netns() if f"-{one_host}-" in n]
    assert not labstate.lab_dir(one_host).exists()


def test_down_while_an_agent_crash_loops_leaves_no_process(one_host: str) -> None:
    """Supervisors in the middle of a backoff, and agents being started, are found too."""
    st = labstate.load(one_host)
    for _ in range(3):  # keep the supervisor busy restarting
        pid = labstate.load(one_host).host("h1").agent_pid
        if pid:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
    assert st.host("h1").supervisor_pid in lab_processes(one_host)
    labmod.down(one_host)
    assert lab_processes(one_host) == {}


def test_a_stale_pid_in_the_state_never_kills_someone_else(one_host: str) -> None:
    """A pid recorded long ago may belong to another process now: only a process in the
    lab host's own namespace is ever signalled."""
    labmod.stop_agent(one_host, "h1")
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        with labstate.modify(one_host) as st:
            st.host("h1").agent_pid = bystander.pid  # as if the number had been reused
        assert status_json(one_host)["h1"]["state"] == "stopped"
        labmod.start_agent(one_host, "h1", wait=True)  # replaces "leftover" agents...
        assert bystander.poll() is None  # ...but not this one
        with labstate.modify(one_host) as st:
            st.host("h1").agent_pid = bystander.pid
            st.host("h1").supervisor_pid = bystander.pid
        labmod.down(one_host)
        assert bystander.poll() is None
        assert lab_processes(one_host) == {}  # the real ones went with their namespace
    finally:
        bystander.kill()
        bystander.wait()
