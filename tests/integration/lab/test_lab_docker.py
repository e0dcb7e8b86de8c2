"""``gingham lab up --docker``: a real dockerd on every lab host, each in a mount namespace
of its own, none touching the machine's firewall, bridges or machine-wide Docker paths;
``lab docker`` reaches each; ``lab down`` (and a failed ``up``) leaves nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gingham.errors import LabError
from gingham.lab import docker as labdocker
from gingham.lab import lab as labmod
from gingham.lab import state as labstate
from gingham.lab.netns import list_netns, netns_path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("dockerd") is None, reason="dockerd not installed (docker.io)"),
]

GINGHAM = str(Path(sys.executable).with_name("gingham"))
MACHINE_PATHS = ("/run/docker", labdocker.PLUGINS_PATH, labdocker.ETC_PATH, "/run/containerd")


def _plugin_skip_reason() -> str | None:
    return labdocker.plugin_available() if shutil.which("dockerd") else "no dockerd"


PLUGIN_MISSING = _plugin_skip_reason()
needs_plugin = pytest.mark.skipif(PLUGIN_MISSING is not None, reason=str(PLUGIN_MISSING))


# -- what the machine looks like ---------------------------------------------------------


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout


def firewall(netns: str | None = None) -> dict[str, object]:
    """nft tables other than gingham's, and what iptables-save/ip6tables-save print."""
    enter = ["nsenter", f"--net={netns_path(netns)}", "--"] if netns else []
    ruleset = json.loads(_run([*enter, "nft", "-j", "list", "ruleset"]) or '{"nftables": []}')
    foreign = [item for item in ruleset["nftables"]
               if not any(str(v.get("table", v.get("name", ""))).startswith("gingham")
                          for k, v in item.items() if isinstance(v, dict) and k != "metainfo")
               and "metainfo" not in item]  # fmt: skip
    saves = {}
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            out = _run([*enter, tool])
            saves[tool] = [ln for ln in out.splitlines() if not ln.startswith("#")]
    return {"nft": foreign, **saves}


def links(netns: str | None) -> list[str]:
    enter = ["nsenter", f"--net={netns_path(netns)}", "--"] if netns else []
    return [
        ln.split(":")[1].strip().split("@")[0]
        for ln in _run([*enter, "ip", "-o", "link"]).splitlines()
    ]


def machine_paths() -> dict[str, list[str] | None]:
    """What is in each machine-wide Docker directory (None: it does not exist)."""
    return {p: sorted(os.listdir(p)) if os.path.isdir(p) else None for p in MACHINE_PATHS}


def lab_mounts(name: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mounts in the machine's table that belong to the lab's daemons: anything under the
    lab's directory or on a path Docker uses machine-wide."""
    watched = (str(labstate.lab_dir(name)), "/run/docker", "/etc/docker", "/run/containerd")
    return [ln for ln in Path(mountinfo).read_text().splitlines()
            if any(w in ln.split(" - ")[0] for w in watched)]  # fmt: skip


def docker_processes(name: str) -> dict[int, str]:
    """Processes of the lab's daemons: marked, or naming the lab's directory (shims do)."""
    found: dict[int, str] = {}
    lab_dir = str(labstate.lab_dir(name))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if "zombie" in status:
            continue
        if f"GINGHAM_LAB={name}".encode() in environ or lab_dir in cmdline:
            found[int(entry.name)] = cmdline
    return found


def lab_cgroups(name: str) -> list[str]:
    """The lab's container cgroups, in a v1 hierarchy or the v2 tree."""
    pattern = f"gingham-docker-{name}-*"
    root = Path("/sys/fs/cgroup")
    return sorted(str(p) for p in [*root.glob(pattern), *root.glob(f"*/{pattern}")])


def assert_nothing_left(name: str, before: dict[str, object]) -> None:
    assert docker_processes(name) == {}
    assert lab_mounts(name) == []
    assert lab_cgroups(name) == []
    assert machine_paths() == before["paths"]
    assert firewall() == before["firewall"]
    assert not labstate.lab_dir(name).exists()
    assert not [n for n in list_netns() if n.startswith(f"gh-{name}-")]


def snapshot() -> dict[str, object]:
    return {"paths": machine_paths(), "firewall": firewall()}


# -- one lab for the module --------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_lab() -> Iterator[tuple[str, dict[str, object]]]:
    """A 2-host lab with Docker (the plugin too when ``gingham docker serve`` exists) and
    what the machine looked like before it."""
    name = f"d{os.getpid() % 100000}"
    labmod.down(name)
    before = snapshot()
    try:
        labmod.up(name, hosts=2, make_current=False, docker=True,
                  docker_plugin=PLUGIN_MISSING is None)  # fmt: skip
        yield name, before
    finally:
        labmod.down(name)


def test_every_daemon_answers_and_has_the_image(docker_lab: tuple[str, dict[str, object]]) -> None:
    name, _ = docker_lab
    st = labstate.load(name)
    assert st.docker
    for host in st.hosts:
        assert host.docker_socket == str(labdocker.daemon_socket(st, host.name))
        assert labdocker.daemon_pid(name, host) == host.docker_pid > 0
        assert labdocker.ping(host.docker_socket)
        images = labdocker.docker_cli(
            st, host.name, "images", "--format", "{{.Repository}}:{{.Tag}}"
        )
        assert images.returncode == 0 and labdocker.IMAGE in images.stdout.split()
        # The daemon runs in the host's network namespace.
        assert (
            os.stat(f"/proc/{host.docker_pid}/ns/net").st_ino
            == os.stat(netns_path(host.netns)).st_ino
        )


def test_a_container_runs_on_each_host(docker_lab: tuple[str, dict[str, object]]) -> None:
    name, _ = docker_lab
    st = labstate.load(name)
    for host in st.hosts:
        proc = labdocker.docker_cli(
            st, host.name, "run", "--rm", "--network", "none", labdocker.IMAGE,
            "sh", "-c", "ls /bin/sh && echo ok",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["/bin/sh", "ok"]


def test_lab_docker_passes_the_exit_status_through(
    docker_lab: tuple[str, dict[str, object]],
) -> None:
    name, _ = docker_lab
    info = subprocess.run([GINGHAM, "lab", "docker", "--name", name, "h1", "--", "info",
                           "--format", "{{.DockerRootDir}}"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert info.returncode == 0, info.stderr
    assert info.stdout.strip() == str(labdocker.host_dir(labstate.load(name), "h1") / "data")
    failed = subprocess.run([GINGHAM, "lab", "docker", "--name", name, "h2", "--", "run", "--rm",
                             "--network", "none", labdocker.IMAGE, "sh", "-c", "exit 7"],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert failed.returncode == 7
    missing = subprocess.run([GINGHAM, "lab", "docker", "--name", name, "h9", "--", "ps"],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert missing.returncode != 0 and "no host 'h9'" in missing.stderr


def test_each_daemon_has_its_own_machine_wide_paths(
    docker_lab: tuple[str, dict[str, object]],
) -> None:
    """/run/docker/plugins, /etc/docker and /run/containerd are the host's own directories
    for its daemon (seen through /proc/PID/root, which resolves in its mount namespace)."""
    name, before = docker_lab
    st = labstate.load(name)
    seen = {}
    for host in st.hosts:
        marker = labdocker.plugins_dir(st, host.name) / f"probe-{host.name}"
        marker.write_text(host.name)
        try:
            root = Path(f"/proc/{host.docker_pid}/root")
            seen[host.name] = sorted(os.listdir(root / labdocker.PLUGINS_PATH.lstrip("/")))
            assert (
                root / labdocker.PLUGINS_PATH.lstrip("/") / marker.name
            ).read_text() == host.name
            # key.json landed in the host's etc/, not in the machine's /etc/docker.
            assert (root / "etc/docker/key.json").exists()
            assert (labdocker.host_dir(st, host.name) / "etc" / "key.json").exists()
        finally:
            marker.unlink()
    assert "probe-h1" in seen["h1"] and "probe-h1" not in seen["h2"]
    assert "probe-h2" in seen["h2"] and "probe-h2" not in seen["h1"]
    # Nothing of it shows on the machine: no mount, no file. A directory the binds need
    # that the machine lacked is made (empty) while the lab runs, and goes with it.
    assert lab_mounts(name) == []
    made = set(st.docker_mountpoints)
    for path, entries in machine_paths().items():
        if path in made:
            assert [e for e in entries or [] if f"{path}/{e}" not in made] == [], path
        else:
            assert entries == before["paths"][path], path  # type: ignore[index]


def test_shim_sockets_stay_in_the_hosts_directory(
    docker_lab: tuple[str, dict[str, object]],
) -> None:
    name, _ = docker_lab
    st = labstate.load(name)
    run = labdocker.docker_cli(st, "h1", "run", "-d", "--network", "none", labdocker.IMAGE,
                               "sleep", "600")  # fmt: skip
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    try:
        shims = labdocker.host_dir(st, "h1") / "containerd" / "s"
        assert list(shims.iterdir())  # here, not in the machine's /run/containerd/s
        assert lab_cgroups(name)  # the container's cgroup lies under the host's parent
    finally:
        labdocker.docker_cli(st, "h1", "rm", "-f", cid)


def test_no_docker_bridge_and_no_foreign_firewall(
    docker_lab: tuple[str, dict[str, object]],
) -> None:
    name, before = docker_lab
    namespaces = [None, *[n for n in list_netns() if n.startswith(f"gh-{name}-")]]
    assert len(namespaces) == 5  # the machine, router, switch, h1, h2
    for netns in namespaces:
        names = links(netns)
        assert "docker0" not in names and "docker_gwbridge" not in names, (netns, names)
    assert firewall() == before["firewall"]
    for host in labstate.load(name).hosts:
        fw = firewall(host.netns)
        assert fw == {key: [] for key in fw}, host.name


def test_status_shows_the_daemons(docker_lab: tuple[str, dict[str, object]]) -> None:
    name, _ = docker_lab
    st = labstate.load(name)
    out = subprocess.run([GINGHAM, "lab", "status", "--name", name, "-o", "json"],
                         capture_output=True, text=True, check=True, timeout=60).stdout  # fmt: skip
    for h in json.loads(out)["hosts"]:
        docker = h["docker"]
        assert docker["pid"] == st.host(h["name"]).docker_pid and docker["ready"] is True
        assert docker["socket"] == st.host(h["name"]).docker_socket
    table = subprocess.run(
        [GINGHAM, "lab", "status", "--name", name],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert "DOCKER" in table and f"dockerd {st.host('h1').docker_pid} ready" in table


@needs_plugin
def test_each_host_runs_its_plugin(docker_lab: tuple[str, dict[str, object]]) -> None:
    name, _ = docker_lab
    st = labstate.load(name)
    for host in st.hosts:
        report = labdocker.report(st, host)
        assert report is not None and report["plugin_state"] == "running" and report["plugin_pid"]
        pid = report["plugin_pid"]
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(netns_path(host.netns)).st_ino
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert [b"--node", host.name.encode()] == cmdline[cmdline.index(b"--node") :][:2]
        # The daemon finds this host's socket, and only it, where it looks for plugins.
        seen = Path(f"/proc/{host.docker_pid}/root/run/docker/plugins/gingham.sock")
        assert os.stat(seen).st_ino == os.stat(host.plugin_socket).st_ino


@needs_plugin
def test_stop_plugin_is_for_good_until_restart(docker_lab: tuple[str, dict[str, object]]) -> None:
    name, _ = docker_lab
    old = labdocker.report(labstate.load(name), labstate.load(name).host("h1"))
    assert old is not None
    labdocker.stop_plugin(name, "h1")
    st = labstate.load(name)
    stopped = labdocker.report(st, st.host("h1"))
    assert stopped is not None
    assert (stopped["plugin_pid"], stopped["plugin_state"]) == (0, "stopped")
    assert not Path(f"/proc/{old['plugin_pid']}").exists() or "zombie" in Path(
        f"/proc/{old['plugin_pid']}/status").read_text()  # fmt: skip
    assert labdocker.report(st, st.host("h2"))["plugin_state"] == "running"  # type: ignore[index]
    labdocker.restart_plugin(name, "h1")
    st = labstate.load(name)
    again = labdocker.report(st, st.host("h1"))
    assert again is not None and again["plugin_state"] == "running"
    assert again["plugin_pid"] not in (0, old["plugin_pid"])
    with pytest.raises(LabError, match="running under its supervisor"):
        labdocker.restart_plugin(name, "h1")


# -- down and failed ups ------------------------------------------------------------------


@pytest.fixture
def fresh_name() -> Iterator[str]:
    name = f"e{os.getpid() % 100000}"
    labmod.down(name)
    try:
        yield name
    finally:
        labmod.down(name)


def test_down_from_another_process_leaves_nothing(fresh_name: str) -> None:
    before = snapshot()
    st = labmod.up(fresh_name, hosts=2, make_current=False, docker=True,
                   docker_plugin=PLUGIN_MISSING is None)  # fmt: skip
    for host in ("h1", "h2"):  # running containers: down must not wait 10 s for each
        run = labdocker.docker_cli(st, host, "run", "-d", "--network", "none", labdocker.IMAGE,
                                   "sleep", "600")  # fmt: skip
        assert run.returncode == 0, run.stderr
    assert lab_cgroups(fresh_name)
    down = subprocess.run([GINGHAM, "lab", "down", "--name", fresh_name],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert_nothing_left(fresh_name, before)


def test_down_kills_what_a_killed_daemon_left(fresh_name: str) -> None:
    """A daemon killed with -9 leaves its shims and containers running: down finds them."""
    before = snapshot()
    st = labmod.up(fresh_name, hosts=1, make_current=False, docker=True, docker_plugin=False)
    run = labdocker.docker_cli(st, "h1", "run", "-d", "--network", "none", labdocker.IMAGE,
                               "sleep", "600")  # fmt: skip
    assert run.returncode == 0, run.stderr
    os.kill(st.host("h1").docker_pid, 9)
    assert labdocker._wait_gone([st.host("h1").docker_pid], 5.0) == []
    shims = [p for p, cmd in docker_processes(fresh_name).items() if "containerd-shim" in cmd]
    assert shims
    labmod.down(fresh_name)
    assert_nothing_left(fresh_name, before)


def test_a_plugin_that_dies_fails_up_and_up_cleans_up(
    fresh_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot()
    dies = [sys.executable, "-c", "raise SystemExit(3)"]
    monkeypatch.setattr(labdocker, "plugin_command", lambda lab, host: dies)
    with pytest.raises(LabError, match=r"docker plugin of h1 ended \(exit 3\)"):
        labmod.up(fresh_name, hosts=1, make_current=False, docker=True)
    assert_nothing_left(fresh_name, before)


def test_a_daemon_that_fails_fails_up_and_up_cleans_up(
    fresh_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot()
    monkeypatch.setattr(labdocker, "SAFE_FLAGS", (*labdocker.SAFE_FLAGS, "--no-such-flag"))
    with pytest.raises(LabError, match="dockerd of h1 exited"):
        labmod.up(fresh_name, hosts=1, make_current=False, docker=True, docker_plugin=False)
    assert_nothing_left(fresh_name, before)
