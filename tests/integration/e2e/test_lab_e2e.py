"""The whole system in a lab: CNI, IPAM, agents, routes and policy, with real packets."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from gingham.cli.main import cli
from gingham.datastore import open_datastore
from gingham.datastore.resources import apply_manifests
from gingham.lab import matrix, workloads
from gingham.lab import state as labstate

pytestmark = pytest.mark.integration

DENY_ALL = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: e2e}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""
ALLOW_WEB = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web, namespace: e2e}
spec:
  podSelector: {matchLabels: {role: server}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{protocol: TCP, port: 80}]
"""


@pytest.fixture(scope="module")
def wls(lab: str) -> Iterator[str]:
    workloads.add(
        lab, "e2e/client", "h1", {"role": "client"}, [(80, "tcp", "http"), (81, "tcp", "")]
    )
    workloads.add(
        lab, "e2e/server", "h2", {"role": "server"}, [(80, "tcp", "http"), (81, "tcp", "")]
    )
    workloads.add(lab, "e2e/other", "h3", {"role": "other"}, [(80, "tcp", "http"), (81, "tcp", "")])
    yield lab


def _apply(lab: str, text: str) -> None:
    apply_manifests(labstate.load(lab).datastore, text)


def _delete_policies(lab: str) -> None:
    ds = open_datastore(labstate.load(lab).datastore)
    try:
        items, _ = ds.list("/gingham/v1/resources/KubernetesNetworkPolicy/")
        items += ds.list("/gingham/v1/resources/NetworkPolicy/")[0]
        for kv in items:
            ds.delete(kv.key)
    finally:
        ds.close()


def _converge(
    lab: str, port: int, expected: dict[tuple[str, str], bool]
) -> dict[str, dict[str, bool]]:
    """Measure until the matrix shows ``expected`` or 10 s pass; return the last measurement."""
    deadline = time.monotonic() + 10
    while True:
        cells = matrix.measure(labstate.load(lab), port).cells
        if all(cells[a][b] == ok for (a, b), ok in expected.items()) or time.monotonic() > deadline:
            return cells
        time.sleep(0.1)


def _chains(netns: str) -> str:
    """A host's table with rule handles, minus counters and set elements."""
    text = subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "-a", "list", "table", "inet", "gingham"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    text = re.sub(r"counter packets \d+ bytes \d+", "counter", text)
    return re.sub(r"elements = \{[^}]*\}", "elements", text)


def _everything(value: bool, refs: list[str]) -> dict[tuple[str, str], bool]:
    return {(a, b): value for a in refs for b in refs if a != b}


REFS = ["e2e/client", "e2e/other", "e2e/server"]


def test_workloads_on_different_hosts_reach_each_other(wls: str) -> None:
    cells = _converge(wls, 80, _everything(True, REFS))
    assert all(cells[a][b] for a in REFS for b in REFS)


def test_policy_isolates_reopens_exactly_and_deletion_restores(wls: str) -> None:
    try:
        _apply(wls, DENY_ALL)
        denied = _converge(wls, 80, _everything(False, REFS))
        assert not any(denied[a][b] for a in REFS for b in REFS if a != b)

        _apply(wls, ALLOW_WEB)
        want = _everything(False, REFS) | {("e2e/client", "e2e/server"): True}
        assert _converge(wls, 80, want) == {
            a: {b: (a == b) or want[(a, b)] for b in REFS} for a in REFS
        }
        # Port 81 was not named: still closed from the client to the server.
        cells81 = _converge(wls, 81, {("e2e/client", "e2e/server"): False})
        assert not cells81["e2e/client"]["e2e/server"]
    finally:
        _delete_policies(wls)
    cells = _converge(wls, 80, _everything(True, REFS))
    assert all(cells[a][b] for a in REFS for b in REFS)


def test_label_change_moves_a_workload_into_a_policy(wls: str) -> None:
    try:
        _apply(wls, DENY_ALL + "---" + ALLOW_WEB)
        _converge(wls, 80, {("e2e/other", "e2e/server"): False})
        server_host = labstate.load(wls).host("h2").netns
        chains_before = _chains(server_host)
        ds = open_datastore(labstate.load(wls).datastore)
        try:
            workloads.set_labels(ds, "e2e/other", {"role": "client"}, [])
            moved = _converge(wls, 80, {("e2e/other", "e2e/server"): True})
            assert moved["e2e/other"]["e2e/server"]
            # A remote workload's label change changes set elements only, never a chain.
            assert _chains(server_host) == chains_before
            workloads.set_labels(ds, "e2e/other", {"role": "other"}, [])
            assert not _converge(wls, 80, {("e2e/other", "e2e/server"): False})["e2e/other"][
                "e2e/server"
            ]
        finally:
            ds.close()
    finally:
        _delete_policies(wls)


def test_probe_and_matrix_commands(wls: str) -> None:
    # The test before deletes its policies one by one; agents woken by each commit
    # may still be between the two (deny-all alone) when this starts.
    _converge(wls, 80, {("e2e/client", "e2e/server"): True})
    runner = CliRunner()
    ok = runner.invoke(
        cli, ["lab", "probe", "e2e/client", "e2e/server", "--port", "80", "--name", wls]
    )
    assert ok.exit_code == 0, ok.output
    closed = runner.invoke(
        cli, ["lab", "probe", "e2e/client", "e2e/server", "--port", "82", "--name", wls]
    )
    assert closed.exit_code == 1
    out = runner.invoke(cli, ["lab", "matrix", "--port", "80", "-o", "json", "--name", wls])
    data = json.loads(out.output)
    assert data["port"] == 80 and data["protocol"] == "tcp"
    assert set(data["matrix"]) == set(REFS) and data["matrix"]["e2e/client"]["e2e/server"] is True


def test_workload_del_frees_its_address(wls: str) -> None:
    wl = workloads.add(wls, "e2e/temp", "h3", {}, [])
    ip = wl.ips[0]
    workloads.delete(wls, "e2e/temp")
    ds = open_datastore(labstate.load(wls).datastore)
    try:
        from gingham.ipam import who_holds

        assert who_holds(ds, ip) is None
        assert all(w["name"] != "temp" for w in workloads.list_endpoints(ds))
    finally:
        ds.close()
