"""The command lines the lab starts for a host's Docker daemon and plugin (no daemon runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gingham.lab import docker as labdocker
from gingham.lab import mountns
from gingham.lab.state import HostState, LabState


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabState:
    monkeypatch.setattr(labdocker, "_binary", lambda name: f"/usr/sbin/{name}")
    return LabState(name="x", datastore="sqlite:///d.db", datastore_kind="sqlite", fabric={},
                    hosts=[HostState("h1", "gh-x-h1", "192.0.2.11", "192.0.2.0/24")],
                    run_dir=str(tmp_path / "run"))  # fmt: skip


def test_the_daemon_leaves_the_machine_alone_and_keeps_to_its_directory(lab: LabState) -> None:
    argv = labdocker.daemon_command(lab, lab.hosts[0])
    split = argv.index("--")
    binds = [argv[i + 1] for i in range(split) if argv[i] == "--bind"]
    home = Path(lab.run_dir) / "h1" / "docker"
    assert binds == [f"{home}/plugins:/run/docker/plugins", f"{home}/etc:/etc/docker",
                     f"{home}/containerd:/run/containerd"]  # fmt: skip
    daemon = argv[split + 1 :]
    assert daemon[0] == "/usr/sbin/dockerd"
    for flag in ("--iptables=false", "--ip6tables=false", "--ip-forward=false",
                 "--ip-masq=false", "--bridge=none", "--storage-driver=vfs"):  # fmt: skip
        assert flag in daemon
    assert f"--data-root={home}/data" in daemon and f"--exec-root={home}/exec" in daemon
    assert f"--pidfile={home}/dockerd.pid" in daemon
    assert f"--host=unix://{home}/docker.sock" in daemon
    assert "--cgroup-parent=/gingham-docker-x-h1" in daemon
    assert not home.exists()  # building the command makes nothing


def test_the_plugin_is_told_its_node_socket_and_daemon(lab: LabState) -> None:
    argv = labdocker.plugin_command(lab, lab.hosts[0])
    home = Path(lab.run_dir) / "h1" / "docker"
    assert argv[1:] == ["docker", "serve", "--node", "h1",
                        "--socket", f"{home}/plugins/gingham.sock",
                        "--docker-host", f"unix://{home}/docker.sock"]  # fmt: skip
    assert "sqlite" not in " ".join(argv)  # the datastore goes in the environment


@pytest.mark.parametrize("text", ["a:b", "/a", "/a:b", "a:/b", "/a:/b:/c", ""])
def test_a_bind_is_two_absolute_paths(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        mountns.parse_bind(text)


def test_a_bind_parses() -> None:
    assert mountns.parse_bind("/x/y:/run/docker/plugins") == ("/x/y", "/run/docker/plugins")
