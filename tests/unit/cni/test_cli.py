"""``gingham cni install`` and ``gingham cni config``: names checked before anything is
written, and no datastore password in a world-readable file or on stdout."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gingham.cli.main import cli
from gingham.cni import netconf, protocol
from gingham.datastore.url import parse_url

PASSWORD = "p/a#s?s@w:o&r=d+ x"
QUOTED = "p%2Fa%23s%3Fs%40w%3Ao%26r%3Dd%2B%20x"


def _run(tmp_path: Path, url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        ["--datastore", url, "cni", "install", "--bin-dir", str(tmp_path / "bin"),
         "--conf-dir", str(tmp_path / "conf"), "--host", "h1", *args],
    )  # fmt: skip
    return result.exit_code, result.output


@pytest.fixture(autouse=True)
def _forget_secrets() -> Any:
    yield
    protocol._secrets.clear()


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "", "-x", "x y", "x\n"])
def test_install_refuses_a_bad_network_name_and_writes_nothing(tmp_path: Path, name: str) -> None:
    code, out = _run(tmp_path, "sqlite:///var/lib/gingham/gingham.db", "--name", name)
    assert code != 0
    assert "Traceback" not in out and "network name" in out, out
    assert not (tmp_path / "bin").exists() and not (tmp_path / "conf").exists()
    assert list(tmp_path.iterdir()) == []


def test_install_refuses_a_bad_host_name_and_writes_nothing(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "sqlite:///x.db", "--host", "../h1")
    assert code != 0 and "Traceback" not in out and "node name" in out, out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        f"etcd://10.0.0.1:2379?user=gingham&password={QUOTED}&timeout=5",
        f"etcd://gingham:{QUOTED}@10.0.0.1:2379?timeout=5",
    ],
)
def test_install_keeps_the_password_out_of_the_configuration(tmp_path: Path, url: str) -> None:
    code, out = _run(tmp_path, url, "--name", "blue")
    assert code == 0, out
    assert PASSWORD not in out and QUOTED not in out
    conflist = tmp_path / "conf" / "10-blue.conflist"
    creds = tmp_path / "conf" / "10-blue.credentials"
    text = conflist.read_text()
    assert PASSWORD not in text and QUOTED not in text and "password" not in text
    assert stat.S_IMODE(conflist.stat().st_mode) == 0o644
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert json.loads(creds.read_text()) == {"user": "gingham", "password": PASSWORD}
    # ... and the plugin, handed that configuration, talks to the same datastore as the URL
    doc = json.loads(text)
    plugin_conf = doc["plugins"][0] | {"name": doc["name"], "cniVersion": doc["cniVersion"]}
    assert plugin_conf["datastoreCredentials"] == str(creds)
    inv = netconf.parse("DEL", plugin_conf, {"CNI_CONTAINERID": "c1"})
    a, b = parse_url(inv.datastore), parse_url(url)
    assert (a.hosts, dict(a.options), a.user, a.password) == (b.hosts, dict(b.options), b.user, b.password)


def test_reinstalling_without_credentials_removes_the_old_file(tmp_path: Path) -> None:
    assert _run(tmp_path, f"etcd://h:2379?password={QUOTED}", "--name", "blue")[0] == 0
    creds = tmp_path / "conf" / "10-blue.credentials"
    assert creds.exists()
    assert _run(tmp_path, "sqlite:///var/lib/gingham/gingham.db", "--name", "blue")[0] == 0
    assert not creds.exists()
    doc = json.loads((tmp_path / "conf" / "10-blue.conflist").read_text())
    assert "datastoreCredentials" not in doc["plugins"][0]
    assert sorted(p.name for p in (tmp_path / "conf").iterdir()) == ["10-blue.conflist"]


def test_install_writes_a_readable_configuration_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        assert _run(tmp_path, "sqlite:///x.db")[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "conf" / "10-gingham.conflist").stat().st_mode) == 0o644


def test_config_needs_a_credentials_file_for_a_url_with_a_password(tmp_path: Path) -> None:
    url = f"etcd://h:2379?user=u&password={QUOTED}"
    base = ["--datastore", url, "cni", "config", "--name", "blue", "--host", "h1"]
    result = CliRunner().invoke(cli, base)
    assert result.exit_code != 0 and "--credentials-file" in result.output
    assert PASSWORD not in result.output and QUOTED not in result.output
    result = CliRunner().invoke(cli, [*base, "--credentials-file", "/etc/cni/net.d/blue.creds"])
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output and QUOTED not in result.output
    doc = json.loads(result.output)
    assert doc["plugins"][0]["datastore"] == "etcd://h:2379"
    assert doc["plugins"][0]["datastoreCredentials"] == "/etc/cni/net.d/blue.creds"


def test_config_refuses_a_bad_network_name() -> None:
    result = CliRunner().invoke(cli, ["--datastore", "sqlite:///x.db", "cni", "config",
                                      "--name", "../x"])  # fmt: skip
    assert result.exit_code != 0 and "network name" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
