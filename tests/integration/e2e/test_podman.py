"""A real runtime: podman 4.3 (CNI backend) attaches containers through gingham-cni."""

from __future__ import annotations

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
        self.env = dict(os.environ, CONTAINERS_CONF=str(work / "containers.conf"))
        self.base = ["podman", "--root", str(work / "root"), "--runroot", str(work / "runroot"),
                     "--storage-driver", "vfs"]  # fmt: skip

    def __call__(self, *args: str, check: bool = True) -> str:
        argv = ["nsenter", f"--net=/run/netns/{self.host_netns}", "--", *self.base, *args]
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout.strip()


@pytest.fixture
def podman(lab: str) -> Iterator[Podman]:
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
    subprocess.run(
        [gingham, "--datastore", st.datastore, "cni", "install", "--bin-dir", str(work / "bin"),
         "--conf-dir", str(work / "conf"), "--host", "h1"],
        check=True, capture_output=True,
    )  # fmt: skip
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


def test_podman_containers_reach_each_other_and_rm_frees_the_address(
    lab: str, podman: Podman
) -> None:
    for name in ("pa", "pb"):
        podman("run", "-d", "--name", name, "--network", "gingham", *ULIMITS, IMAGE,
               "/bin/busybox", "sleep", "600")  # fmt: skip
    ip_b = _ip_of(lab, "pb")
    out = podman("exec", "pa", "/bin/busybox", "ping", "-c", "1", "-W", "2", ip_b)
    assert "1 packets received" in out
    podman("rm", "-f", "-t", "0", "pb")
    ds = open_datastore(labstate.load(lab).datastore)
    try:
        assert who_holds(ds, ip_b) is None
    finally:
        ds.close()
