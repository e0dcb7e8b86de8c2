"""``gingham fanout serve`` and ``gingham node run --fanout``, as an operator runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from gingham.datastore import open_datastore
from gingham.fanout import FanoutClient
from gingham.names import FANOUT_ENV


def _gingham() -> str:
    import sys

    return str(Path(sys.executable).with_name("gingham"))


def test_serve_serves_the_agents_keys_and_cleans_up_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'g.db'}"
    with open_datastore(url, create=True) as ds:
        ds.create("/gingham/v1/resources/Tier/default", {"kind": "Tier"})
        ds.create("/gingham/v1/liveness/h1", {"at": 1})  # other agents' chatter: not served
    sock = tmp_path / "f.sock"
    proc = subprocess.Popen([_gingham(), "--datastore", url, "fanout", "serve", "--socket",
                             str(sock)], stderr=subprocess.PIPE, text=True)  # fmt: skip
    client = FanoutClient(str(sock), retry_interval=0.05)
    try:
        got: dict[str, object] = {}
        deadline = time.monotonic() + 30
        while not client.status.in_sync and time.monotonic() < deadline:
            got.update(client.poll(0.1))
        assert client.status.in_sync, client.status
        assert "/gingham/v1/resources/Tier/default" in got
        assert not any(k.startswith("/gingham/v1/liveness/") for k in got)
        assert (sock.stat().st_mode & 0o777) == 0o600
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not sock.exists()
    assert "1 clients served" in err


def test_serve_refuses_tcp_and_creates_no_datastore(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'g.db'}"
    proc = subprocess.run([_gingham(), "--datastore", url, "fanout", "serve", "--socket",
                           "0.0.0.0:5473"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 1
    assert "TCP is not supported" in proc.stderr
    assert not (tmp_path / "g.db").exists()


def test_node_run_refuses_a_tcp_fanout_before_doing_anything(tmp_path: Path) -> None:
    env = dict(os.environ, **{FANOUT_ENV: "tcp://192.0.2.1:5473"})
    proc = subprocess.run([_gingham(), "--datastore", f"sqlite://{tmp_path / 'g.db'}", "node",
                           "run", "--name", "h1"], capture_output=True, text=True, timeout=60,
                          env=env)  # fmt: skip
    assert proc.returncode == 2
    assert "--fanout" in proc.stderr and "TCP is not supported" in proc.stderr


def test_serve_refuses_tcp_without_tls(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'g.db'}"
    proc = subprocess.run([_gingham(), "--datastore", url, "fanout", "serve", "--listen",
                           "127.0.0.1:5473"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 1
    assert "mutual TLS only" in proc.stderr


def test_serve_says_why_it_cannot_listen(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'g.db'}"
    with open_datastore(url, create=True):
        pass
    proc = subprocess.run([_gingham(), "--datastore", url, "fanout", "serve", "--socket",
                           str(tmp_path / "no-such-dir" / "f.sock")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "cannot listen on it" in proc.stderr and "Traceback" not in proc.stderr
