"""Bad data in a real lab (issue 12): packets decide.

- A policy that stops validating (a newer writer's field, then bytes that are not
  JSON) keeps isolating what it isolated; once it is deleted, traffic opens.
- A policy never seen valid isolates what its readable selector selects.
- Garbage under the keys the agent reads does not end the agent, and the agent
  says what it found (``gingham node status --agent -o json``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import keys, open_datastore
from gingham.datastore.resources import ResourceStore
from gingham.lab import lab as labmod
from gingham.lab import matrix, workloads
from gingham.lab import state as labstate
from gingham.model import load_manifests

pytestmark = pytest.mark.integration

POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-client, namespace: bd}
spec:
  podSelector: {matchLabels: {role: server}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
"""
KNP_KEY = keys.resource_key("KubernetesNetworkPolicy", "only-client", "bd")


def _reaches(lab: str, src: str, dst: str) -> bool:
    st = labstate.load(lab)
    return matrix.probe(st.workload(src), st.workload(dst), 80)


def _settles(lab: str, src: str, dst: str, want: bool, seconds: float = 10.0) -> None:
    """``src -> dst`` becomes ``want`` within ``seconds``."""
    deadline = time.monotonic() + seconds
    while _reaches(lab, src, dst) != want:
        assert time.monotonic() < deadline, f"{src} -> {dst} never became {want}"
        time.sleep(0.1)


def _stays(lab: str, src: str, dst: str, want: bool, seconds: float = 2.0) -> None:
    """``src -> dst`` is ``want`` at every probe for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert _reaches(lab, src, dst) == want, f"{src} -> {dst} flipped to {not want}"
        time.sleep(0.05)


def _agent_status(lab: str, host: str) -> dict[str, Any]:
    gingham = str(Path(sys.executable).with_name("gingham"))
    env = dict(os.environ, GINGHAM_RUN_DIR=labstate.load(lab).run_dir)
    out = subprocess.run([gingham, "node", "status", "--name", host, "--agent", "-o", "json"],
                         capture_output=True, text=True, check=True, timeout=30, env=env)
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def _reported(lab: str, host: str, key: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        for report in _agent_status(lab, host)["invalidResources"]:
            if report["key"] == key:
                return report
        assert time.monotonic() < deadline, f"{host} never reported {key}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def pods(lab: str) -> str:
    workloads.add(lab, "bd/client", "h1", {"role": "client"}, [])
    workloads.add(lab, "bd/server", "h2", {"role": "server"}, [(80, "tcp", "")])
    workloads.add(lab, "bd/other", "h3", {"role": "other"}, [(80, "tcp", "")])
    return lab


def test_a_policy_that_stops_validating_keeps_isolating(pods: str) -> None:
    lab = pods
    ds = open_datastore(labstate.load(lab).datastore)
    try:
        for res in load_manifests(POLICY):
            ResourceStore(ds).apply(res)
        _settles(lab, "bd/other", "bd/server", False)
        _settles(lab, "bd/client", "bd/server", True)
        pid = labstate.load(lab).host("h2").agent_pid
        # A newer gingham adds a field this one does not know.
        kv = ds.get(KNP_KEY)
        assert kv is not None
        newer = json.loads(json.dumps(kv.value))
        newer["spec"]["ingress"][0]["fromTheFuture"] = True
        ds.update(KNP_KEY, newer, revision=kv.mod_revision)
        assert _reported(lab, "h2", KNP_KEY)["outcome"] == "last valid kept"
        _stays(lab, "bd/other", "bd/server", False)
        assert _reaches(lab, "bd/client", "bd/server")
        # Then bytes that are not JSON at all.
        ds.put_raw(KNP_KEY, b"\x00\xff{{{ not json")
        assert "not a JSON object" in _reported(lab, "h2", KNP_KEY)["reason"]
        _stays(lab, "bd/other", "bd/server", False)
        h2 = labstate.load(lab).host("h2")
        assert h2.agent_pid == pid and labmod.host_ready(h2)
        # Deleting the key is an operator's decision: now it opens.
        ds.delete(KNP_KEY)
        _settles(lab, "bd/other", "bd/server", True)
    finally:
        ds.close()


def test_a_policy_never_seen_valid_isolates_what_it_selects(pods: str) -> None:
    lab = pods
    key = keys.resource_key("NetworkPolicy", "from-the-future", "bd")
    ds = open_datastore(labstate.load(lab).datastore)
    try:
        _settles(lab, "bd/client", "bd/server", True)
        _settles(lab, "bd/client", "bd/other", True)
        ds.create(key, {
            "apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
            "metadata": {"name": "from-the-future", "namespace": "bd"},
            "spec": {"selector": "role == 'server'", "types": ["Ingress"],
                     "ingress": [{"action": "Allow", "warpDrive": True}]}})
        _settles(lab, "bd/client", "bd/server", False)  # quarantined: deny all ingress
        assert _reported(lab, "h2", key)["outcome"] == "quarantined"
        _stays(lab, "bd/client", "bd/other", True, seconds=1.0)  # not selected
        ds.delete(key)
        _settles(lab, "bd/client", "bd/server", True)
    finally:
        ds.close()


def test_garbage_under_every_key_the_agent_reads_does_not_end_it(pods: str) -> None:
    lab = pods
    st = labstate.load(lab)
    pids = {h.name: h.agent_pid for h in st.hosts}
    targets = [
        keys.resource_key("Node", "h2"),
        keys.resource_key("IPPool", "garbage"),
        keys.resource_key("BGPConfiguration", "default"),
        keys.resource_key("FelixConfiguration", "default"),
        keys.resource_key("Tier", "garbage"),
        keys.resource_key("WorkloadEndpoint", "garbage", "bd"),
        keys.IPAM + "blocks/198.18.255.0-26",
    ]
    ds = open_datastore(st.datastore)
    saved = {key: ds.get(key) for key in targets}
    try:
        for key in targets:
            ds.put_raw(key, b'{"spec": "oops", "affinity": 5, "cidr": []}')
        for key in targets[1:]:
            ds.put_raw(key, b"\xfe\xff")
        time.sleep(2.0)
        for host in st.hosts:
            now = labstate.load(lab).host(host.name)
            assert now.agent_pid == pids[host.name] and labmod.host_ready(now), host.name
        _settles(lab, "bd/client", "bd/server", True)
        assert _reported(lab, "h1", keys.resource_key("Tier", "garbage"))["outcome"] == (
            "policies quarantined")
    finally:
        for key, kv in saved.items():
            if kv is None:
                ds.delete(key)
            else:
                ds.put_raw(key, json.dumps(kv.value).encode())
        ds.close()
