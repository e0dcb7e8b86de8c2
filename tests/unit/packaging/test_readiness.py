"""``gingham docker serve`` tells systemd READY=1 once its socket answers, STOPPING=1 on the way
out: the real process, a real NOTIFY_SOCKET. (The agent and the fan-out server:
tests/integration/packaging/test_readiness.py.)"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from gingham.datastore import open_datastore
from tests.fixtures.notify import NotifyListener

GINGHAM = str(Path(sys.executable).with_name("gingham"))


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.unix_path)


def test_docker_plugin_is_ready_when_its_socket_answers(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'g.db'}"
    with open_datastore(url, create=True):
        pass
    plugin_sock = tmp_path / "plugins" / "gingham.sock"
    env = dict(os.environ, GINGHAM_RUN_DIR=str(tmp_path / "run"))
    with NotifyListener(tmp_path) as notify:
        env.update(notify.env())
        proc = subprocess.Popen(
            [GINGHAM, "--datastore", url, "docker", "serve", "--node", "h1", "--socket",
             str(plugin_sock), "--docker-host", f"unix://{tmp_path / 'no-docker.sock'}"],
            env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            first = notify.next()
            assert first.get("READY") == "1", notify.seen
            assert first["STATUS"].startswith("ready"), first
            # Ready means Docker can talk to it now: no retry.
            conn = _UnixHTTP(str(plugin_sock))
            conn.request("POST", "/Plugin.Activate", body=b"{}")
            answer = conn.getresponse()
            assert answer.status == 200
            assert "NetworkDriver" in json.loads(answer.read())["Implements"]
            conn.close()
            proc.send_signal(signal.SIGTERM)
            assert notify.until("STOPPING").get("STOPPING") == "1"
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not plugin_sock.exists()
