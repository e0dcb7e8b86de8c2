"""The datastore goes away for N seconds; hosts fail static and resync when it returns.

Injection:
- etcd, ``kill``: SIGKILL every member, later restart each with its own command
  line and data directory (connections are refused meanwhile);
- etcd, ``sigstop``: SIGSTOP every member, SIGCONT later (connections hang);
- sqlite: the database files are renamed away and a directory takes the
  database's name, so every new open fails; agents keep the file they have open.

During the outage the reachability matrix must equal the one measured
before it (fail static), a CNI ADD must fail with code 11 ("try again") and
leave nothing behind (no veth, no IPAM handle, no endpoint). After it, every
agent must report ready again and enforce a change made after the return.

N defaults to 5 s; ``GINGHAM_OUTAGE_SECONDS=30`` runs the issue's 30 s.
Figures go to stdout (run with -s) for docs/RELIABILITY.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gingham.datastore.resources import ResourceStore
from gingham.lab import matrix, workloads
from gingham.lab import state as labstate
from gingham.lab.state import LabState
from gingham.model import load_manifests
from tests.integration.faults import tools

pytestmark = pytest.mark.integration

OUTAGE = float(os.environ.get("GINGHAM_OUTAGE_SECONDS", "5"))
POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-client, namespace: out}
spec:
  podSelector: {matchLabels: {role: server}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
"""


def _setup(name: str) -> None:
    workloads.add(name, "out/client", "h1", {"role": "client"}, [(80, "tcp", "")])
    workloads.add(name, "out/server", "h2", {"role": "server"}, [(80, "tcp", "")])
    workloads.add(name, "out/other", "h3", {"role": "other"}, [(80, "tcp", "")])
    st = labstate.load(name)
    ds = tools.datastore(st)
    try:
        for res in load_manifests(POLICY):
            ResourceStore(ds).apply(res)
    finally:
        ds.close()
    other, server = st.workload("out/other"), st.workload("out/server")
    tools.wait_until(lambda: not matrix.probe(other, server, 80, timeout=0.5), 15, "policy")


@pytest.fixture(scope="module")
def sqlite_lab() -> Iterator[str]:
    with tools.running_lab(81) as name:
        _setup(name)
        yield name


@pytest.fixture(scope="module")
def etcd_lab() -> Iterator[str]:
    with tools.running_lab(82, datastore="etcd") as name:
        _setup(name)
        yield name


# --- injection -----------------------------------------------------------------------------


@contextlib.contextmanager
def _sqlite_hidden(lab: LabState) -> Iterator[None]:
    db = Path(lab.datastore.removeprefix("sqlite://"))
    moved = []
    try:
        for suffix in ("", "-wal", "-shm", "-lock"):
            path = Path(f"{db}{suffix}")
            if path.exists():
                path.rename(f"{path}.away")
                moved.append(path)
        db.mkdir()  # sqlite cannot open a directory: every new open fails
        Path(f"{db}-lock").mkdir()
        yield
    finally:
        for path in (db, Path(f"{db}-lock")):
            if path.is_dir():
                path.rmdir()
        for path in moved:
            Path(f"{path}.away").rename(path)


def _member_argv(lab: LabState) -> list[tuple[list[str], str]]:
    out = []
    for pid in lab.etcd_pids:
        argv = [a for a in tools.etcd_argv(pid) if a]
        out.append((argv, os.readlink(f"/proc/{pid}/cwd")))
    return out


def _restart_members(name: str, members: list[tuple[list[str], str]]) -> None:
    pids = []
    for argv, cwd in members:
        name_arg = argv[argv.index("--name") + 1]
        # A killed etcd leaves its unix socket file behind; bind() would fail on it.
        Path(cwd, f"{name_arg}:2379").unlink(missing_ok=True)
        with open(Path(cwd) / "etcd.log", "ab") as log:
            proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        pids.append(proc.pid)
    with labstate.modify(name) as st:
        st.etcd_pids = pids  # lab.down must find the new processes


def _etcd_healthy(lab: LabState) -> bool:
    for m in tools.etcd_members(lab):
        try:
            if httpx.get(m["url"] + "/health", timeout=0.5).json().get("health") != "true":
                return False
        except (httpx.HTTPError, ValueError):
            return False
    return True


@contextlib.contextmanager
def _etcd_down(name: str, how: str) -> Iterator[None]:
    st = labstate.load(name)
    members = _member_argv(st)
    sig = signal.SIGKILL if how == "kill" else signal.SIGSTOP
    for pid in st.etcd_pids:
        os.kill(pid, sig)
    try:
        yield
    finally:
        if how == "kill":
            for pid in st.etcd_pids:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            _restart_members(name, members)
        else:
            for pid in st.etcd_pids:
                os.kill(pid, signal.SIGCONT)


# --- checks ----------------------------------------------------------------------------------


def _cni_add_fails_and_leaks_nothing(
    lab: LabState, tag: str, want: int = 11
) -> dict[str, object]:
    """An ADD fails with CNI code ``want`` (11: try again) and leaves no veth."""
    veths = tools.host_veths(lab, "h1")
    ns = f"gw-{lab.name}-out{tag}"
    cid = f"outage-{tag}"
    with tools.throwaway_netns([ns]):
        start = time.monotonic()
        code, out = tools.cni("ADD", lab, "h1", ns, cid, "out", f"during-{tag}")
        took = time.monotonic() - start
        assert code != 0 and isinstance(out, dict), out
        assert out.get("code") == want, f"want CNI error {want}, got {out}"
        assert tools.host_veths(lab, "h1") == veths, "a veth was left on the host"
    return {"cni_add_seconds": round(took, 2), "cni_error": out.get("msg")}


def _no_trace_of(lab: LabState, tag: str) -> None:
    handle = f"gingham.outage-{tag}"
    assert handle not in tools.ipam_handles(lab), f"IPAM handle {handle} leaked"
    assert not [a for a in tools.ipam_allocations(lab) if a[1] == handle]
    assert not [e for e in tools.endpoints(lab) if e["name"] == f"during-{tag}"]


def _all_ready(lab: LabState) -> bool:
    return all(tools.readyz(lab, h.name) == 200 for h in lab.hosts)


def _none_ready(lab: LabState) -> bool:
    return all(tools.readyz(lab, h.name) == 503 for h in lab.hosts)


def _change_after_return(name: str) -> float:
    """Make out/other a client; seconds until other -> server opens."""
    st = labstate.load(name)
    ds = tools.datastore(st)
    try:
        start = time.monotonic()
        workloads.set_labels(ds, "out/other", {"role": "client"}, [])
    finally:
        ds.close()
    other, server = st.workload("out/other"), st.workload("out/server")
    try:
        tools.wait_until(lambda: matrix.probe(other, server, 80, timeout=0.3), 10,
                         "change after the outage", interval=0.02)  # fmt: skip
        return time.monotonic() - start
    finally:
        ds = tools.datastore(st)
        try:
            workloads.set_labels(ds, "out/other", {"role": "other"}, [])
        finally:
            ds.close()
        tools.wait_until(lambda: not matrix.probe(other, server, 80, timeout=0.3), 10, "undo")


def _report(figures: dict[str, object]) -> None:
    print("\nRELIABILITY " + json.dumps(figures, sort_keys=True))


# --- the tests --------------------------------------------------------------------------------


@pytest.mark.etcd
@pytest.mark.parametrize("how", ["kill", "sigstop"])
def test_etcd_outage_fail_static_then_resync(etcd_lab: str, how: str) -> None:
    st = labstate.load(etcd_lab)
    before = matrix.measure(st, 80, timeout=0.5)
    assert before.cells["out/other"]["out/server"] is False
    assert before.cells["out/client"]["out/server"] is True
    figures: dict[str, object] = {"datastore": "etcd", "how": how, "outage_s": OUTAGE}
    with _etcd_down(etcd_lab, how):
        t0 = time.monotonic()
        figures["not_ready_after_s"] = round(
            tools.wait_until(lambda: _none_ready(st), OUTAGE + 10, "readyz 503"), 2
        )
        during = matrix.measure(st, 80, timeout=0.5)
        assert during.cells == before.cells, "forwarding or policy changed during the outage"
        if how == "kill":
            figures.update(_cni_add_fails_and_leaks_nothing(st, how))
            assert during.cells == matrix.measure(st, 80, timeout=0.5).cells
        figures["ready_during"] = {h.name: tools.readyz(st, h.name) for h in st.hosts}
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - t0)))
        figures["outage_measured_s"] = round(time.monotonic() - t0, 2)
    st = labstate.load(etcd_lab)
    etcd_back = tools.wait_until(lambda: _etcd_healthy(st), 30, "etcd healthy again", 0.05)
    resync = tools.wait_until(lambda: _all_ready(st), 15, "agents ready again", 0.05)
    figures["etcd_back_s"] = round(etcd_back, 2)
    figures["resync_after_etcd_healthy_s"] = round(resync, 2)
    assert matrix.measure(st, 80, timeout=0.5).cells == before.cells
    figures["change_enforced_after_s"] = round(_change_after_return(etcd_lab), 2)
    _no_trace_of(st, how)
    _report(figures)
    assert resync <= 1.5, f"agents took {resync:.2f}s to report ready after etcd returned"
    assert figures["ready_during"] == {h.name: 503 for h in st.hosts}


@pytest.mark.etcd
def test_hung_etcd_turns_readiness_off(etcd_lab: str) -> None:
    st = labstate.load(etcd_lab)
    with _etcd_down(etcd_lab, "sigstop"):
        tools.wait_until(lambda: _none_ready(st), 12, "readyz 503 with every member hung")
    tools.wait_until(lambda: _all_ready(st), 15, "agents ready again", 0.05)


def test_sqlite_outage_fail_static_then_resync(sqlite_lab: str) -> None:
    st = labstate.load(sqlite_lab)
    before = matrix.measure(st, 80, timeout=0.5)
    assert before.cells["out/other"]["out/server"] is False
    figures: dict[str, object] = {"datastore": "sqlite", "how": "hide-file", "outage_s": OUTAGE}
    with _sqlite_hidden(st):
        t0 = time.monotonic()
        # No file where the datastore was is no datastore at all, not a transient
        # outage: CNI 7 naming the path (never an empty datastore made on the spot).
        figures.update(_cni_add_fails_and_leaks_nothing(st, "sqlite", want=7))
        during = matrix.measure(st, 80, timeout=0.5)
        assert during.cells == before.cells, "forwarding or policy changed during the outage"
        figures["ready_during"] = {h.name: tools.readyz(st, h.name) for h in st.hosts}
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - t0)))
        figures["outage_measured_s"] = round(time.monotonic() - t0, 2)
    assert _all_ready(st)
    assert matrix.measure(st, 80, timeout=0.5).cells == before.cells
    figures["change_enforced_after_s"] = round(_change_after_return(sqlite_lab), 2)
    _no_trace_of(st, "sqlite")
    # And a workload can be created again at once.
    ns = f"gw-{st.name}-back"
    with tools.throwaway_netns([ns]):
        code, out = tools.cni("ADD", st, "h1", ns, "outage-back", "out", "back")
        assert code == 0, out
        code, out = tools.cni("DEL", st, "h1", ns, "outage-back", "out", "back")
        assert code == 0, out
    _report(figures)


@pytest.mark.etcd
def test_agent_restarted_during_an_outage_keeps_the_dataplane(etcd_lab: str) -> None:
    """kill -9 of an agent while etcd is down: the new agent cannot sync, so it must not
    touch the kernel; a CNI DEL meanwhile asks to try again, and succeeds afterwards."""
    st = labstate.load(etcd_lab)
    ns = f"gw-{st.name}-deltest"
    with tools.throwaway_netns([ns]):
        code, out = tools.cni("ADD", st, "h1", ns, "outage-del", "out", "deltest")
        assert code == 0, out
        before = matrix.measure(st, 80, timeout=0.5)
        figures: dict[str, object] = {"datastore": "etcd", "how": "kill+agent-restart"}
        with _etcd_down(etcd_lab, "kill"):
            code, out = tools.cni("DEL", st, "h1", ns, "outage-del", "out", "deltest")
            assert code != 0 and isinstance(out, dict) and out.get("code") == 11, out
            from gingham.lab import lab as labmod

            labmod.stop_agent(etcd_lab, "h2")
            labmod.start_agent(etcd_lab, "h2", wait=False)
            time.sleep(3)  # the new agent is up, trying to reach etcd
            st = labstate.load(etcd_lab)
            figures["restarted_agent_readyz"] = tools.readyz(st, "h2")
            during = matrix.measure(st, 80, timeout=0.5)
            assert during.cells == before.cells, "the restarted agent changed the dataplane"
        st = labstate.load(etcd_lab)
        tools.wait_until(lambda: _etcd_healthy(st), 30, "etcd healthy again", 0.05)
        figures["ready_after_etcd_s"] = round(
            tools.wait_until(lambda: _all_ready(st), 30, "agents ready again", 0.05), 2
        )
        assert matrix.measure(st, 80, timeout=0.5).cells == before.cells
        code, out = tools.cni("DEL", st, "h1", ns, "outage-del", "out", "deltest")
        assert code == 0, out
    assert "gingham.outage-del" not in tools.ipam_handles(st)
    assert not [e for e in tools.endpoints(st) if e["name"] == "deltest"]
    _report(figures)
    assert figures["restarted_agent_readyz"] in (0, 503)


@pytest.mark.etcd
def test_cni_add_in_flight_when_etcd_hangs(etcd_lab: str) -> None:
    """An ADD running while every member is frozen: it may wait and succeed, or ask to try
    again; either way the result is whole (a working endpoint) or nothing."""
    import threading

    st = labstate.load(etcd_lab)
    ns = f"gw-{st.name}-hang"
    result: dict[str, object] = {}
    with tools.throwaway_netns([ns]):

        def add() -> None:
            start = time.monotonic()
            result["code"], result["out"] = tools.cni("ADD", st, "h1", ns, "outage-hang", "out",
                                                      "hang", timeout=120)  # fmt: skip
            result["seconds"] = round(time.monotonic() - start, 2)

        with _etcd_down(etcd_lab, "sigstop"):
            worker = threading.Thread(target=add)
            worker.start()
            time.sleep(OUTAGE)
        worker.join(120)
        assert not worker.is_alive(), "the ADD never returned"
        if result["code"] == 0:
            assert [e for e in tools.endpoints(st) if e["name"] == "hang"]
            assert tools.host_veths(st, "h1")
            code, out = tools.cni("DEL", st, "h1", ns, "outage-hang", "out", "hang")
            assert code == 0, out
        else:
            out = result["out"]
            assert isinstance(out, dict) and out.get("code") == 11, out
            code, out = tools.cni("DEL", st, "h1", ns, "outage-hang", "out", "hang")
            assert code == 0, out
    assert "gingham.outage-hang" not in tools.ipam_handles(st)
    assert not [e for e in tools.endpoints(st) if e["name"] == "hang"]
    _report({"datastore": "etcd", "how": "sigstop+add-in-flight", "outage_s": OUTAGE,
             "add_code": result["code"], "add_seconds": result["seconds"]})  # fmt: skip
