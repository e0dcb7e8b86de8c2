"""CNI ADD, CHECK, DEL (idempotent) and GC (1.1.0) against a lab host, as a runtime calls them,
through the host's agent and by the plugin itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gingham.datastore import open_datastore
from gingham.lab import state as labstate
from gingham.lab.netns import add_netns, delete_netns
from tests.integration.cni.node_agent import PATHS, path_conf

pytestmark = pytest.mark.integration
CNI = str(Path(sys.executable).with_name("gingham-cni"))
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"


def _run(lab: str, command: str, container: str, netns: str | None, conf: dict) -> tuple[int, dict]:
    st = labstate.load(lab)
    # Through the agent the plugin runs no program: with none on its PATH, a fallback to
    # the direct path would fail, so a pass proves the agent did the work.
    search = os.environ["PATH"] if conf.get("agent") is False else "/nonexistent"
    env = {"PATH": search, "CNI_COMMAND": command, "CNI_CONTAINERID": container,
           "CNI_NETNS": f"/run/netns/{netns}" if netns else "", "CNI_IFNAME": "eth0",
           "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAME={container}"}  # fmt: skip
    proc = subprocess.run(
        [NSENTER, f"--net=/run/netns/{st.host('h1').netns}", "--", CNI],
        input=json.dumps(conf), capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _conf(lab: str, path: str, version: str = "1.0.0") -> dict:
    st = labstate.load(lab)
    return {"cniVersion": version, "name": "cmdnet", "type": "gingham", "datastore": st.datastore,
            "nodename": "h1", "ipam": {"type": "gingham-ipam"},
            **path_conf(path, Path(st.run_dir))}  # fmt: skip


def _handles(lab: str) -> set[str]:
    ds = open_datastore(labstate.load(lab).datastore)
    try:
        return {kv.key.rsplit("/", 1)[1] for kv in ds.list("/gingham/v1/ipam/handles/")[0]}
    finally:
        ds.close()


@pytest.fixture
def sandboxes(lab: str, path: str) -> Iterator[list[str]]:
    names = [f"cmd-{os.getpid() % 10000}-{i}" for i in range(3)]
    for n in names:
        add_netns(n)
    try:
        yield names
    finally:
        for i, n in enumerate(names):
            try:
                _run(lab, "DEL", f"ctr{i}", n, _conf(lab, path))
            finally:  # a failing DEL must not leave the namespaces behind
                delete_netns(n)


def test_add_check_del_and_del_again(lab: str, sandboxes: list[str], path: str) -> None:
    code, result = _run(lab, "ADD", "ctr0", sandboxes[0], _conf(lab, path))
    assert code == 0, result
    assert result["interfaces"][1]["mac"] and result["ips"][0]["gateway"] == "169.254.1.1"
    assert "cmdnet.ctr0" in _handles(lab)
    conf = _conf(lab, path) | {"prevResult": result}
    assert _run(lab, "CHECK", "ctr0", sandboxes[0], conf)[0] == 0
    wrong = json.loads(json.dumps(result))
    wrong["ips"][0]["address"] = "198.19.0.1/32"
    code, err = _run(lab, "CHECK", "ctr0", sandboxes[0], _conf(lab, path) | {"prevResult": wrong})
    assert code == 1 and err["code"] == 3
    assert _run(lab, "DEL", "ctr0", sandboxes[0], conf)[0] == 0
    assert "cmdnet.ctr0" not in _handles(lab)
    assert _run(lab, "DEL", "ctr0", sandboxes[0], conf)[0] == 0  # idempotent
    assert _run(lab, "DEL", "ctr0", None, conf)[0] == 0  # even without a namespace


def test_gc_releases_attachments_the_runtime_no_longer_knows(
    lab: str, sandboxes: list[str], path: str
) -> None:
    for i in (1, 2):
        assert _run(lab, "ADD", f"ctr{i}", sandboxes[i], _conf(lab, path, "1.1.0"))[0] == 0
    gc = _conf(lab, path, "1.1.0") | {
        "cni.dev/valid-attachments": [{"containerID": "ctr1", "ifname": "eth0"}]
    }
    code, out = _run(lab, "GC", "", None, gc)
    assert code == 0, out
    handles = _handles(lab)
    assert "cmdnet.ctr1" in handles and "cmdnet.ctr2" not in handles
