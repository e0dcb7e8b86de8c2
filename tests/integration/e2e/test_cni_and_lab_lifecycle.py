"""CNI bad input is refused with spec error JSON and leaves nothing; lab down leaves nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gingham.lab import lab as labmod
from gingham.lab import state as labstate
from gingham.lab.netns import list_netns
from tests.integration.cni.node_agent import PATHS, path_conf

pytestmark = pytest.mark.integration
CNI = str(Path(sys.executable).with_name("gingham-cni"))


def _cni(env: dict[str, str], stdin: str, netns: str | None = None) -> tuple[int, dict]:
    argv = [CNI] if netns is None else ["nsenter", f"--net=/run/netns/{netns}", "--", CNI]
    proc = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **env},
        timeout=30,
    )
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


def _conf(lab: str, path: str, host: str = "h1") -> str:
    st = labstate.load(lab)
    return json.dumps({"cniVersion": "1.0.0", "name": "gingham", "type": "gingham",
                       "datastore": st.datastore, "nodename": host, "ipam": {"type": "gingham-ipam"},
                       **path_conf(path, Path(st.run_dir))})  # fmt: skip


def _leftovers(lab: str) -> tuple[list[str], list[str]]:
    st = labstate.load(lab)
    links = subprocess.run(
        ["ip", "-n", st.host("h1").netns, "-o", "link"], capture_output=True, text=True
    ).stdout
    from gingham.datastore import open_datastore

    ds = open_datastore(st.datastore)
    try:
        handles = [
            kv.key for kv in ds.list("/gingham/v1/ipam/handles/")[0] if "vxlan" not in kv.key
        ]
    finally:
        ds.close()
    return [line for line in links.splitlines() if ": gh" in line], handles


def test_version_lists_supported_versions() -> None:
    code, out = _cni({"CNI_COMMAND": "VERSION"}, "")
    assert code == 0 and "1.0.0" in out["supportedVersions"] and "1.1.0" in out["supportedVersions"]


@pytest.mark.parametrize(
    ("env", "stdin", "code"),
    [
        (
            {
                "CNI_COMMAND": "ADD",
                "CNI_CONTAINERID": "x1",
                "CNI_NETNS": "/run/netns/nope",
                "CNI_IFNAME": "eth0",
            },
            "{garbage",
            6,
        ),
        ({"CNI_COMMAND": "FROB", "CNI_CONTAINERID": "x1"}, "{}", 4),
        ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "x1", "CNI_IFNAME": "eth0"}, None, 4),
        (
            {
                "CNI_COMMAND": "ADD",
                "CNI_CONTAINERID": "x1",
                "CNI_NETNS": "/run/netns/does-not-exist",
                "CNI_IFNAME": "eth0",
            },
            None,
            4,
        ),
        (
            {
                "CNI_COMMAND": "ADD",
                "CNI_CONTAINERID": "x1",
                "CNI_NETNS": "/proc/self/ns/net",
                "CNI_IFNAME": "eth0",
            },
            '{"cniVersion": "9.9.9", "name": "n"}',
            1,
        ),
        (
            {
                "CNI_COMMAND": "ADD",
                "CNI_CONTAINERID": "x1",
                "CNI_NETNS": "/proc/self/ns/net",
                "CNI_IFNAME": "eth0",
            },
            '{"cniVersion": "1.0.0"}',
            7,
        ),
    ],
)
@pytest.mark.parametrize("path", PATHS)
def test_bad_input_gives_spec_errors_and_leaves_nothing(
    lab: str, env: dict[str, str], stdin: str | None, code: int, path: str
) -> None:
    before = _leftovers(lab)
    conf = _conf(lab, path) if stdin is None else stdin
    rc, out = _cni(env, conf, labstate.load(lab).host("h1").netns)
    assert rc != 0
    assert out["code"] == code, out
    assert out["msg"]
    assert _leftovers(lab) == before


@pytest.mark.parametrize("path", PATHS)
def test_status_reports_a_reachable_datastore(lab: str, path: str) -> None:
    netns = labstate.load(lab).host("h1").netns
    code, _ = _cni({"CNI_COMMAND": "STATUS"}, _conf(lab, path).replace('"1.0.0"', '"1.1.0"'),
                   netns)
    assert code == 0
    bad = _conf(lab, path).replace(labstate.load(lab).datastore, "etcd://127.0.0.1:1")
    code, out = _cni({"CNI_COMMAND": "STATUS"}, bad.replace('"1.0.0"', '"1.1.0"'), netns)
    assert code == 1 and out["code"] == 50


def test_lab_down_leaves_no_namespace_process_or_file() -> None:
    name = f"d{os.getpid() % 100000}"
    labmod.down(name)
    try:
        st = labmod.up(name, hosts=1, make_current=False)
        from gingham.lab import workloads

        workloads.add(name, "x/w", "h1", {}, [(80, "tcp", "")])
        pids = [h.agent_pid for h in st.hosts] + [labstate.load(name).workloads["x/w"].listener_pid]
    finally:
        labmod.down(name)
    assert not [n for n in list_netns() if f"-{name}-" in n]
    assert not labstate.lab_dir(name).exists()
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
