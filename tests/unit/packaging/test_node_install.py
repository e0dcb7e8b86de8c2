"""``gingham node install`` / ``uninstall`` into a throwaway prefix: what is written, with which
modes and paths, idempotence, --dry-run, refusals that write nothing, and an uninstall that
removes exactly what the install wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gingham.cli.main import cli
from gingham.node_install import gingham_program

ROOT = Path(__file__).resolve().parents[3]
URL = "etcd://gingham:s3cr%24t@10.0.0.1:2379,10.0.0.2:2379"
UNITS = ["gingham-node.service", "gingham-fanout.service", "gingham-docker.service"]
FILES = {
    "opt/cni/bin/gingham": 0o755,
    "opt/cni/bin/gingham-ipam": 0o755,
    "etc/cni/net.d/10-gingham.conflist": 0o644,
    "etc/cni/net.d/10-gingham.credentials": 0o600,
    "etc/gingham/gingham.env": 0o600,
    **{f"etc/systemd/system/{u}": 0o644 for u in UNITS},
    "var/lib/gingham/node-install.json": 0o644,
}


def install(prefix: Path, *extra: str, url: str | None = URL) -> Result:
    args = ["node", "install", "--prefix", str(prefix), "--node", "h1", *extra]
    if url is not None:
        args += ["--datastore", url]
    # No GINGHAM_DATASTORE from the machine running the tests.
    return CliRunner().invoke(cli, args, env={"GINGHAM_DATASTORE": None})


def uninstall(prefix: Path, *extra: str) -> Result:
    return CliRunner().invoke(cli, ["node", "uninstall", "--prefix", str(prefix), *extra])


def tree(prefix: Path) -> dict[str, int]:
    return {p.relative_to(prefix).as_posix(): p.stat().st_mode & 0o7777
            for p in prefix.rglob("*") if p.is_file() or p.is_symlink()}  # fmt: skip


def test_install_writes_units_env_and_cni_with_absolute_paths(tmp_path: Path) -> None:
    result = install(tmp_path)
    assert result.exit_code == 0, result.output
    assert tree(tmp_path) == FILES
    assert (tmp_path / "etc/gingham").stat().st_mode & 0o777 == 0o700
    program = gingham_program()
    assert os.path.isabs(program) and os.access(program, os.X_OK)
    for unit in UNITS:
        text = (tmp_path / "etc/systemd/system" / unit).read_text()
        assert f"ExecStart={program} " in text, unit
        assert "%H" not in text  # the Node name given, the same as the CNI configuration's
    node = (tmp_path / "etc/systemd/system/gingham-node.service").read_text()
    assert f"ExecStart={program} node run --name h1\n" in node
    env = (tmp_path / "etc/gingham/gingham.env").read_text()
    assert f"GINGHAM_DATASTORE='{URL}'\n" in env
    conf = json.loads((tmp_path / "etc/cni/net.d/10-gingham.conflist").read_text())
    plugin = conf["plugins"][0]
    assert plugin["nodename"] == "h1"
    assert "s3cr" not in json.dumps(conf)  # the password is in the 0600 file only
    assert plugin["datastoreCredentials"] == "/etc/cni/net.d/10-gingham.credentials"
    creds = json.loads((tmp_path / "etc/cni/net.d/10-gingham.credentials").read_text())
    assert creds == {"user": "gingham", "password": "s3cr$t"}
    # systemd is told nothing about a prefix
    assert "daemon-reload: done" not in result.output
    assert "systemd not told (--prefix" in result.output


def test_the_installed_plugin_runs_and_names_no_checkout_path(tmp_path: Path) -> None:
    assert install(tmp_path).exit_code == 0
    for name in ("gingham", "gingham-ipam"):
        plugin = tmp_path / "opt/cni/bin" / name
        assert not plugin.is_symlink()
        text = plugin.read_text()
        assert str(ROOT / "src") not in text
        assert text.splitlines()[0] == f"#!{sys.executable} -IS"
        proc = subprocess.run([str(plugin)], env={"CNI_COMMAND": "VERSION"}, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["supportedVersions"] == ["0.4.0", "1.0.0", "1.1.0"]


def test_install_again_changes_nothing(tmp_path: Path) -> None:
    assert install(tmp_path).exit_code == 0
    before = {p: (tmp_path / p).stat().st_mtime_ns for p in FILES}
    inodes = {p: (tmp_path / p).stat().st_ino for p in FILES}
    again = install(tmp_path)
    assert again.exit_code == 0, again.output
    changes = [line for line in again.output.splitlines() if line.startswith(
        ("created", "updated", "removed"))]  # fmt: skip
    assert changes == [], again.output
    assert again.output.count("unchanged: ") == len(FILES) - 1  # all but the manifest
    # the manifest is rewritten (same content); nothing else is touched
    for p in FILES:
        if not p.endswith("node-install.json"):
            assert (tmp_path / p).stat().st_mtime_ns == before[p], p
            assert (tmp_path / p).stat().st_ino == inodes[p], p


def test_a_changed_url_updates_and_drops_credentials_no_longer_used(tmp_path: Path) -> None:
    assert install(tmp_path).exit_code == 0
    result = install(tmp_path, url="etcd://10.0.0.1:2379")
    assert result.exit_code == 0, result.output
    assert "updated: /etc/gingham/gingham.env" in result.output
    assert "removed: /etc/cni/net.d/10-gingham.credentials" in result.output
    assert not (tmp_path / "etc/cni/net.d/10-gingham.credentials").exists()
    conf = json.loads((tmp_path / "etc/cni/net.d/10-gingham.conflist").read_text())
    assert "datastoreCredentials" not in conf["plugins"][0]


def test_a_mode_changed_by_hand_is_put_back(tmp_path: Path) -> None:
    assert install(tmp_path).exit_code == 0
    env = tmp_path / "etc/gingham/gingham.env"
    env.chmod(0o644)  # the password readable by all
    result = install(tmp_path)
    assert "updated: /etc/gingham/gingham.env" in result.output
    assert env.stat().st_mode & 0o777 == 0o600


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    result = install(tmp_path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would create: /etc/systemd/system/gingham-node.service" in result.output
    assert list(tmp_path.iterdir()) == []
    assert install(tmp_path).exit_code == 0
    result = uninstall(tmp_path, "--dry-run")
    assert "would remove: /etc/gingham/gingham.env" in result.output
    assert tree(tmp_path) == FILES


@pytest.mark.parametrize(("args", "url", "says"), [
    ([], None, "give the cluster's datastore"),
    ([], "postgres://h/db", "unknown datastore scheme"),
    ([], "etcd://h:1?password=it's", "percent-encode"),
    (["--node", "Bad_Name"], URL, "--node"),
])  # fmt: skip
def test_refusals_write_nothing(tmp_path: Path, args: list[str], url: str | None,
                                says: str) -> None:
    result = install(tmp_path, *args, url=url)
    assert result.exit_code != 0
    assert says in result.output
    assert list(tmp_path.iterdir()) == []


def test_prefix_must_be_absolute(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["node", "install", "--prefix", "relative", "--datastore",
                                      URL, "--node", "h1"])  # fmt: skip
    assert result.exit_code == 2 and "absolute" in result.output


def test_uninstall_removes_what_install_wrote_and_keeps_an_edited_file(tmp_path: Path) -> None:
    assert install(tmp_path).exit_code == 0
    mine = tmp_path / "etc/cni/net.d/99-other.conflist"  # someone else's file
    mine.write_text("{}")
    env = tmp_path / "etc/gingham/gingham.env"
    env.write_text(env.read_text() + "GINGHAM_FANOUT=/run/gingham/fanout.sock\n")
    wants = tmp_path / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir()
    (wants / "gingham-node.service").symlink_to("/etc/systemd/system/gingham-node.service")
    result = uninstall(tmp_path)
    assert result.exit_code == 0, result.output
    assert "kept (changed since it was installed; remove it yourself): " \
        "/etc/gingham/gingham.env" in result.output  # fmt: skip
    assert tree(tmp_path) == {"etc/cni/net.d/99-other.conflist": 0o644,
                              "etc/gingham/gingham.env": 0o600}  # fmt: skip
    assert not (wants / "gingham-node.service").is_symlink()  # enable's link, now dangling
    again = uninstall(tmp_path)
    assert again.exit_code == 0 and "nothing to remove" in again.output


def test_uninstall_cleans_up_empty_directories_of_its_own(tmp_path: Path) -> None:
    assert install(tmp_path).exit_code == 0
    assert uninstall(tmp_path).exit_code == 0
    assert tree(tmp_path) == {}
    assert not (tmp_path / "etc/gingham").exists()
    assert not (tmp_path / "var/lib/gingham").exists()
    assert (tmp_path / "etc/cni/net.d").is_dir()  # shared with other plugins: left
