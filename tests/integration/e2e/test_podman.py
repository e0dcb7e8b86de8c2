"""A real runtime: podman 4.3 (CNI backend) attaches containers through gingham-cni, with the
network configuration `gingham cni install` writes and no environment: through the agent
of the lab host (the configuration names the lab's run directory), and with --no-agent."""

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
from gingham.ipam import who_holds
from gingham.lab import state as labstate
from gingham.lab import workloads

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed"),
]
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
IMAGE = "gingham-test:busybox"


class Podman:
    """podman with storage, network configuration and plugins in a private directory."""

    def __init__(self, work: Path, host_netns: str) -> None:
        self.work = work
        self.host_netns = host_netns
        self.path = "agent"
        self.env = dict(os.environ, CONTAINERS_CONF=str(work / "containers.conf"))
        self.base = ["podman", "--root", str(work / "root"), "--runroot", str(work / "runroot"),
                     "--storage-driver", "vfs"]  # fmt: skip

    def __call__(self, *args: str, check: bool = True) -> str:
        argv = ["nsenter", f"--net=/run/netns/{self.host_netns}", "--", *self.base, *args]
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout.strip()


@pytest.fixture(params=["agent", "direct"])
def podman(lab: str, request: pytest.FixtureRequest) -> Iterator[Podman]:
    import tempfile

    st = labstate.load(lab)
    # podman refuses a runroot path longer than 50 characters: keep it short.
    work = Path(tempfile.mkdtemp(prefix="ghpm-"))
    (work / "rootfs" / "bin").mkdir(parents=True)
    (work / "rootfs" / "tmp").mkdir()
    shutil.copy("/bin/busybox", work / "rootfs" / "bin" / "busybox")
    subprocess.run(
        ["tar", "-C", str(work / "rootfs"), "-cf", str(work / "rootfs.tar"), "."], check=True
    )
    gingham = str(Path(sys.executable).with_name("gingham"))
    path = ["--run-dir", st.run_dir] if request.param == "agent" else ["--no-agent"]
    subprocess.run(
        [gingham, "--datastore", st.datastore, "cni", "install", "--bin-dir", str(work / "bin"),
         "--conf-dir", str(work / "conf"), "--host", "h1", *path],
        check=True, capture_output=True, env={k: v for k, v in os.environ.items()
                                               if not k.startswith("GINGHAM_")},
    )  # fmt: skip
    conf = json.loads((work / "conf" / "10-gingham.conflist").read_text())["plugins"][0]
    if request.param == "agent":
        assert conf["runDir"] == st.run_dir and "agent" not in conf
    else:
        assert conf["agent"] is False
    (work / "containers.conf").write_text(
        "[network]\n"
        'network_backend = "cni"\n'
        f'cni_plugin_dirs = ["{work / "bin"}", "/usr/lib/cni"]\n'
        f'network_config_dir = "{work / "conf"}"\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
    )
    p = Podman(work, st.host("h1").netns)
    p.path = request.param
    p("import", str(work / "rootfs.tar"), IMAGE)
    try:
        yield p
    finally:
        p("rm", "-f", "-a", "-t", "0", check=False)
        p("rmi", "-f", "-a", check=False)
        subprocess.run(["umount", "-R", str(work / "root")], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


def _ip_of(lab: str, name: str) -> str:
    ds = open_datastore(labstate.load(lab).datastore)
    try:
        for w in workloads.list_endpoints(ds):
            if w["namespace"] == "default" and w["name"] == name:
                return str(w["ips"][0])
    finally:
        ds.close()
    raise AssertionError(f"no workload endpoint for container {name}")


def _answered(lab: str) -> int:
    """CNI commands the agent of h1 has answered (its log)."""
    return labstate.agent_log_path(lab, "h1").read_text(errors="replace").count("CNI ADD ")


def test_podman_containers_reach_each_other_and_rm_frees_the_address(
    lab: str, podman: Podman
) -> None:
    before = _answered(lab)
    for name in ("pa", "pb"):
        podman("run", "-d", "--name", name, "--network", "gingham", *ULIMITS, IMAGE,
               "/bin/busybox", "sleep", "600")  # fmt: skip
    assert _answered(lab) - before == (2 if podman.path == "agent" else 0)
    ip_b = _ip_of(lab, "pb")
    out = podman("exec", "pa", "/bin/busybox", "ping", "-c", "1", "-W", "2", ip_b)
    assert "1 packets received" in out
    podman("rm", "-f", "-t", "0", "pb")
    ds = open_datastore(labstate.load(lab).datastore)
    try:
        assert who_holds(ds, ip_b) is None
    finally:
        ds.close()
