"""etcd faults on a 3-member lab: the leader dies under CNI load; a watch is compacted away.

Leader loss: 100 workloads are created over three hosts by parallel CNI ADDs
(throwaway namespaces), the leader is killed a moment in; then half of them
are deleted while the *new* leader is killed (the first one restarted
before, so the cluster keeps quorum). A call that fails with CNI 11 is
retried, as a runtime does. At the end: no address was handed out twice,
every kept workload is programmed by its host's agent, every deleted one is
gone everywhere, and a leak check finds no orphaned handle.

Compaction: one agent is frozen (SIGSTOP); the etcd members are restarted
(which breaks its watch stream), a policy changes and other writes go by,
etcd is compacted past the agent's revision, and the agent is thawed. Watching again from its old revision, it is told the revision was
compacted; it must resync and end in the right state (reachability matrix).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from gingham.datastore.resources import ResourceStore
from gingham.lab import matrix, workloads
from gingham.lab import state as labstate
from gingham.lab.state import LabState
from gingham.model import load_manifests
from tests.integration.faults import tools
from tests.integration.faults.test_datastore_outage import (
    _etcd_down,
    _member_argv,
    _restart_members,
)

pytestmark = [pytest.mark.integration, pytest.mark.etcd]

N = int(os.environ.get("GINGHAM_FAULT_WORKLOADS", "100"))
HOSTS = ("h1", "h2", "h3")


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    with tools.running_lab(84, datastore="etcd") as name:
        yield name


def _kill_leader(name: str) -> dict[str, Any]:
    st = labstate.load(name)
    leader = tools.etcd_leader(st)
    os.kill(leader["pid"], signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(leader["pid"], 0)
    return leader


def _restart(name: str, dead: dict[str, Any], argv: list[tuple[list[str], str]]) -> None:
    """Start the dead member again with its own command line; keep the others' pids."""
    st = labstate.load(name)
    mine = [a for a in argv if a[0][a[0].index("--name") + 1] == dead["name"]]
    others = [p for p in st.etcd_pids if p != dead["pid"]]
    _restart_members(name, mine)
    with labstate.modify(name) as s:
        s.etcd_pids = others + s.etcd_pids


def _cni_until_done(st: LabState, command: str, i: int, ns: str) -> tuple[dict[str, Any], int]:
    """Retry on 'try again' as a runtime would; (result, attempts)."""
    host = HOSTS[i % len(HOSTS)]
    out: dict[str, Any] | None = None
    for attempt in range(1, 12):
        code, out = tools.cni(command, st, host, ns, f"ld-{i}", "ld", f"w{i}")
        if code == 0:
            return out or {}, attempt
        assert isinstance(out, dict) and out.get("code") == 11, f"{command} w{i}: {out}"
        time.sleep(0.5)
    raise AssertionError(f"{command} of w{i} never succeeded: {out}")


def _run_all(st: LabState, command: str, idx: list[int], names: list[str], name: str,
             kill_after: float) -> tuple[list[tuple[dict[str, Any], int]], dict[str, Any]]:  # fmt: skip
    killed: dict[str, Any] = {}

    def killer() -> None:
        time.sleep(kill_after)
        killed.update(_kill_leader(name))

    t = threading.Thread(target=killer)
    t.start()
    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(lambda i: _cni_until_done(st, command, i, names[i]), idx))
    finally:
        t.join()
    return results, killed


def _dispatch_elements(st: LabState, host: str) -> set[str]:
    out = subprocess.run(
        tools.nsenter(st.host(host).netns, "nft", "-j", "list", "map", "inet", "gingham", "from-wl"),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    elems: set[str] = set()
    for item in json.loads(out)["nftables"]:
        for e in (item.get("map") or {}).get("elem", []):
            elems.add(e[0] if isinstance(e, list) else str(e))
    return elems


@pytest.mark.slow  # about 100 s on 2 cores: 150 CNI calls through etcd
def test_leader_loss_under_cni_load(lab: str) -> None:
    st = labstate.load(lab)
    names = [f"gw-{lab}-l{i:03d}" for i in range(N)]
    argv = _member_argv(st)
    figures: dict[str, Any] = {}
    with tools.throwaway_netns(names):
        start = time.monotonic()
        adds, first = _run_all(st, "ADD", list(range(N)), names, lab, kill_after=1.5)
        figures["add_wall_s"] = round(time.monotonic() - start, 2)
        figures["add_retries"] = sum(a - 1 for _, a in adds)
        ips = [r["ips"][0]["address"].split("/")[0] for r, _ in adds]
        veths = {i: r["interfaces"][0]["name"] for i, (r, _) in enumerate(adds)}
        assert len(set(ips)) == N, "an address was handed out twice"

        _restart(lab, first, argv)
        st = labstate.load(lab)
        tools.wait_until(lambda: len(tools.etcd_members(st)) == 3 and _quorum(st), 30, "3 members")
        gone = list(range(1, N, 2))
        start = time.monotonic()
        dels, second = _run_all(st, "DEL", gone, names, lab, kill_after=0.5)
        figures["del_wall_s"] = round(time.monotonic() - start, 2)
        figures["del_retries"] = sum(a - 1 for _, a in dels)
        figures["leaders_killed"] = [first["name"], second["name"]]
        _restart(lab, second, argv)

        st = labstate.load(lab)
        kept = [i for i in range(N) if i % 2 == 0]
        allocated = tools.ipam_allocations(st)
        held = {a[0] for a in allocated if a[1].startswith("gingham.ld-")}
        assert held == {ips[i] for i in kept}, "allocations differ from the kept workloads"
        assert len([a for a in allocated if a[1].startswith("gingham.ld-")]) == len(kept)
        for i in range(N):  # every kept workload programmed by its agent; deleted ones gone
            host = HOSTS[i % len(HOSTS)]
            want = i in kept
            tools.wait_until(lambda h=host, v=veths[i], w=want: (v in _dispatch_elements(st, h)) == w,  # type: ignore[misc]
                             15, f"w{i} on {host} programmed={want}")  # fmt: skip
        eps = {e["name"] for e in tools.endpoints(st) if e["namespace"] == "ld"}
        assert eps == {f"w{i}" for i in kept}
        for _ in range(2):
            r = tools.gingham_cli(st, "ipam", "check", "--grace", "0", "-o", "json")
            assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["leaks"] == [], r.stdout
        for i in kept:
            code, out = tools.cni("DEL", st, HOSTS[i % 3], names[i], f"ld-{i}", "ld", f"w{i}")
            assert code == 0, out
    assert not [h for h in tools.ipam_handles(st) if h.startswith("gingham.ld-")]
    print("\nRELIABILITY " + json.dumps({"etcd_leader_loss": figures}))


def _quorum(st: LabState) -> bool:
    try:
        m = tools.etcd_members(st)[0]
        return bool(httpx.get(m["url"] + "/health", timeout=1).json().get("health") == "true")
    except (httpx.HTTPError, ValueError):
        return False


POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-client, namespace: cp}
spec:
  podSelector: {matchLabels: {role: server}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
"""
OPEN_TO_OTHER = """
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: also-other, namespace: cp}
spec:
  selector: role == 'server'
  types: [Ingress]
  ingress: [{action: Allow, source: {selector: role == 'other'}}]
"""


def _apply(st: LabState, text: str) -> None:
    ds = tools.datastore(st)
    try:
        for res in load_manifests(text):
            ResourceStore(ds).apply(res)
    finally:
        ds.close()


def test_agent_resyncs_after_its_watch_is_compacted(lab: str) -> None:
    workloads.add(lab, "cp/client", "h1", {"role": "client"}, [(80, "tcp", "")])
    workloads.add(lab, "cp/server", "h2", {"role": "server"}, [(80, "tcp", "")])
    workloads.add(lab, "cp/other", "h3", {"role": "other"}, [(80, "tcp", "")])
    st = labstate.load(lab)
    _apply(st, POLICY)
    other, server = st.workload("cp/other"), st.workload("cp/server")
    tools.wait_until(lambda: not matrix.probe(other, server, 80, timeout=0.5), 15, "policy")
    log = Path(labstate.lab_dir(lab)) / "agent-h2.log"
    log_size = log.stat().st_size
    agent = st.host("h2").agent_pid
    os.killpg(agent, signal.SIGSTOP)
    try:
        # Break the frozen agent's watch stream first, so that nothing newer than what it
        # has reached sits in its socket buffer: thawed, it must watch again from there.
        with _etcd_down(lab, "kill"):
            pass
        tools.wait_until(lambda: _quorum(labstate.load(lab)), 30, "etcd back")
        st = labstate.load(lab)
        _apply(st, OPEN_TO_OTHER)  # the frozen agent must learn this after the compaction
        ds = tools.datastore(st)
        try:
            for i in range(50):
                _create_or_update(ds, f"/gingham/v1/status/fault-test/{i}", {"n": i})
            revision = ds.revision()
        finally:
            ds.close()
        member = tools.etcd_members(st)[0]
        tools.etcd_post(member["url"], "/v3/kv/compaction",
                        {"revision": str(revision), "physical": True}, timeout=30)  # fmt: skip
    finally:
        os.killpg(agent, signal.SIGCONT)
    try:
        took = tools.wait_until(lambda: matrix.probe(other, server, 80, timeout=0.3), 20,
                                "h2 learns the change made while it was frozen", 0.05)  # fmt: skip
        cells = matrix.measure(labstate.load(lab), 80, timeout=0.5).cells
        assert cells["cp/other"]["cp/server"] and cells["cp/client"]["cp/server"]
        new_log = log.read_bytes()[log_size:].decode(errors="replace")
        compacted = "compacted" in new_log
        print("\nRELIABILITY " + json.dumps({"compaction": {
            "resync_logged": compacted, "converged_after_thaw_s": round(took, 2)}}))  # fmt: skip
        assert compacted, f"the agent's watch was not cancelled as compacted: {new_log[-800:]}"
    finally:
        ds = tools.datastore(st)
        try:
            items, _ = ds.list("/gingham/v1/status/fault-test/")
            for kv in items:
                ds.delete(kv.key)
        finally:
            ds.close()


def _create_or_update(ds: Any, key: str, value: dict[str, Any]) -> None:
    current = ds.get(key)
    if current is None:
        ds.create(key, value)
    else:
        ds.update(key, value, revision=current.mod_revision)
