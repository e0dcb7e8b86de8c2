"""The CNI fast path stays lean: VERSION runs on the standard library alone, and DEL and
GC (even past a malformed endpoint) never import pydantic or the etcd client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from gingham.datastore import open_datastore

PROBE = r"""
import io, json, os, sys
before = set(sys.modules)  # what the interpreter and site-packages' .pth files loaded
conf, command = sys.argv[1], sys.argv[2]
os.environ.update({"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
                   "CNI_ARGS": "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=w"})
sys.stdin = io.TextIOWrapper(io.BytesIO(conf.encode()))
out = io.TextIOWrapper(io.BytesIO())
real, sys.stdout = sys.stdout, out
from gingham.cni import entry
rc = entry.main()
sys.stdout = real
out.flush()
out.seek(0)
top = sorted({m.split(".")[0] for m in set(sys.modules) - before}
             - set(sys.stdlib_module_names))
print(json.dumps({"rc": rc, "out": out.read(), "modules": top,
                  "gingham": sorted(m for m in sys.modules if m.startswith("gingham"))}))
"""


def _probe(conf: Mapping[str, object], command: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(conf), command],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def store() -> Iterator[str]:
    tmp = tempfile.mkdtemp(prefix="gingham-cni-startup-")
    try:
        url = f"sqlite://{tmp}/gingham.db"
        ds = open_datastore(url, create=True)
        try:
            # malformed endpoints where DEL looks (its own key) and where GC lists
            key = "/gingham/v1/resources/WorkloadEndpoint/ns/h1-k8s-w-eth0"
            ds.create(key, {"kind": "WorkloadEndpoint", "metadata": {"name": "x"}, "spec": "oops"})
            ds.put_raw("/gingham/v1/resources/WorkloadEndpoint/ns/h1-k8s-v-eth0", b"\xff{not")
        finally:
            ds.close()
        yield url
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_version_imports_only_the_standard_library() -> None:
    got = _probe({}, "VERSION")
    assert got["rc"] == 0 and got["modules"] == ["gingham"], got
    assert got["gingham"] == ["gingham", "gingham.cni", "gingham.cni.entry",
                              "gingham.cni.protocol"], got


@pytest.mark.parametrize("command", ["DEL", "GC"])
def test_del_and_gc_do_not_import_pydantic(store: str, command: str) -> None:
    conf = {"cniVersion": "1.1.0", "name": "blue", "type": "gingham", "datastore": store,
            "nodename": "h1", "ipam": {"type": "gingham-ipam"}, "agent": False,
            "cni.dev/valid-attachments": []}  # fmt: skip
    got = _probe(conf, command)
    assert got["rc"] == 0, got
    assert got["modules"] == ["gingham"], got  # no pydantic, httpx, yaml, click, pyroute2


def test_no_datastore_at_the_configured_path_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "gingham.db"
    conf = {"cniVersion": "1.0.0", "name": "blue", "type": "gingham",
            "datastore": f"sqlite://{missing}", "nodename": "h1", "agent": False}  # fmt: skip
    got = _probe(conf, "DEL")
    err = json.loads(str(got["out"]))
    assert got["rc"] == 1 and err["code"] == 7, err
    assert str(missing) in err["msg"] and "datastore" in err["msg"]
    assert not missing.parent.exists()
    assert os.listdir(tmp_path) == []


CLIENT_PROBE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
before = set(sys.modules)
from gingham.cni import client, entry
conf = b'{"cniVersion": "1.0.0", "name": "n", "nodename": "h1", "runDir": "/nonexistent"}'
answer = client.hand_to_agent("DEL", conf, {"CNI_CONTAINERID": "c1"}, ipam_only=False)
loaded = sorted(set(sys.modules) - before)
import json
print(json.dumps({"answer": answer, "loaded": loaded}))
"""


def test_the_path_to_the_agent_loads_nothing_slow() -> None:
    """Each of json, re, typing, pathlib, enum, socket and site costs the plugin several
    milliseconds of a start the runtime waits for; the path to the agent needs none."""
    src = str(Path(entry_module_file()).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", CLIENT_PROBE, src],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["answer"] is None  # no agent there
    slow = {"json", "re", "typing", "pathlib", "enum", "socket", "site", "selectors"}
    assert not slow & {m.split(".")[0] for m in got["loaded"]}, got["loaded"]


def entry_module_file() -> str:
    import gingham.cni.entry

    return str(gingham.cni.entry.__file__)


def test_the_installed_plugin_is_a_launcher_without_site(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gingham.cli.main import cli

    result = CliRunner().invoke(cli, ["--datastore", "sqlite:///nonexistent/x.db", "cni",
                                      "install", "--bin-dir", str(tmp_path / "bin"),
                                      "--conf-dir", str(tmp_path / "conf"), "--host", "h1"])
    assert result.exit_code == 0, result.output
    plugin = tmp_path / "bin" / "gingham"
    assert plugin.read_text().splitlines()[0] == f"#!{sys.executable} -IS"
    assert os.stat(plugin).st_mode & 0o777 == 0o755
    out = subprocess.run([str(plugin)], env={"CNI_COMMAND": "VERSION"}, capture_output=True,
                         text=True, timeout=60, check=True).stdout  # fmt: skip
    assert json.loads(out)["supportedVersions"] == ["0.4.0", "1.0.0", "1.1.0"]
    # the direct path still finds what it needs (site-packages: here, for nothing missing)
    conf = json.dumps({"cniVersion": "1.0.0", "name": "n", "nodename": "h1", "agent": False,
                       "datastore": "etcd://127.0.0.1:1"})
    proc = subprocess.run([str(plugin)], input=conf, env={"CNI_COMMAND": "DEL",
                          "CNI_CONTAINERID": "c1"}, capture_output=True, text=True, timeout=60)
    assert json.loads(proc.stdout)["code"] == 11, proc.stdout + proc.stderr  # httpx was found
