"""A datastore password reaches the plugin three ways (in the URL, in a credentials file,
in GINGHAM_DATASTORE); it never comes back out, whatever the command and however it
fails, on stdout (error JSON) or stderr (log lines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

CNI = str(Path(sys.executable).with_name("gingham-cni"))
PASSWORD = "s3cr/e#t?p@ss:w&rd=x"
FORMS = [PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD), "s3cr"]
# nothing listens on port 1 of the loopback address: the datastore is unreachable
UNREACHABLE = "127.0.0.1:1"


def _run(command: str, conf: dict[str, object], env: dict[str, str]) -> tuple[dict[str, Any], str]:
    full = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": "c1",
            "CNI_IFNAME": "eth0", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
            **env}  # fmt: skip
    proc = subprocess.run([CNI], input=json.dumps(conf), capture_output=True, text=True,
                          env=full, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 1, proc.stdout
    out: dict[str, Any] = json.loads(proc.stdout)
    return out, proc.stderr


def _conf(**extra: object) -> dict[str, object]:
    return {"cniVersion": "1.1.0", "name": "blue", "type": "gingham", "nodename": "h1",
            "ipam": {"type": "gingham-ipam"}, "cni.dev/valid-attachments": []} | extra  # fmt: skip


def _ways(tmp_path: Path) -> list[tuple[dict[str, object], dict[str, str]]]:
    creds = tmp_path / "creds"
    creds.write_text(json.dumps({"user": "gingham", "password": PASSWORD}))
    creds.chmod(0o600)
    quoted = quote(PASSWORD, safe="")
    return [
        (_conf(datastore=f"etcd://gingham:{quoted}@{UNREACHABLE}?timeout=0.5"), {}),
        (_conf(datastore=f"etcd://{UNREACHABLE}?user=gingham&password={quoted}&timeout=0.5"), {}),
        (_conf(datastore=f"etcd://{UNREACHABLE}?timeout=0.5", datastoreCredentials=str(creds)),
         {}),
        (_conf(), {"GINGHAM_DATASTORE": f"etcd://gingham:{quoted}@{UNREACHABLE}?timeout=0.5"}),
    ]


@pytest.mark.parametrize("way", range(4), ids=["userinfo", "query", "credentials-file", "env"])
@pytest.mark.parametrize("command", ["DEL", "GC", "STATUS"])
def test_the_password_never_comes_back_out(tmp_path: Path, way: int, command: str) -> None:
    conf, env = _ways(tmp_path)[way]
    out, err = _run(command, conf, env)
    assert out["code"] in (11, 50), out  # try again / not available: the datastore is down
    text = json.dumps(out) + err
    for form in FORMS:
        assert form not in text, (form, text)


def test_a_world_readable_credentials_file_is_refused_without_quoting_it(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text(json.dumps({"password": PASSWORD}))
    creds.chmod(0o644)
    out, err = _run("DEL", _conf(datastore="etcd://h:2379", datastoreCredentials=str(creds)), {})
    assert out["code"] == 7 and "chmod 600" in out["msg"], out
    assert PASSWORD not in json.dumps(out) + err
