"""READY=1 reaches systemd exactly when the service is ready, not when its process exists.

Real processes (`gingham node run` in a throwaway host namespace, `gingham fanout
serve` against a real etcd) with NOTIFY_SOCKET naming a datagram socket the test
holds, as systemd would for a ``Type=notify`` unit. Each test first holds the
service back from readiness and checks that what it says then is "not ready",
then lets it become ready and checks that READY=1 comes with readiness.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gingham.datastore import keys, open_datastore
from gingham.datastore.cluster import ensure_cluster_id
from gingham.datastore.etcd_process import start_etcd_cluster, stop_etcd_cluster
from gingham.fanout import FanoutClient
from gingham.lab.netns import run_in_netns, spawn_in_netns, stop_process
from tests.fixtures.notify import NotifyListener

pytestmark = pytest.mark.integration

GINGHAM = str(Path(sys.executable).with_name("gingham"))
READYZ = """
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen("http://127.0.0.1:9099/readyz", timeout=10).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
"""


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gingham-ready-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _readyz(netns: str) -> int:
    out = run_in_netns(netns, [sys.executable, "-c", READYZ]).stdout
    return int(out.strip())


def test_agent_is_ready_for_systemd_when_readyz_is(netns: Callable[[str], str],
                                                   workdir: Path) -> None:
    host = netns("host")
    url = f"sqlite://{workdir / 'g.db'}"
    ds = open_datastore(url, create=True)
    try:
        # No cluster ID: the agent leaves the host alone and is not ready (cluster_guard.py).
        ds.delete(keys.CLUSTER)
        env = dict(os.environ, GINGHAM_RUN_DIR=str(workdir / "run"), GINGHAM_DATASTORE=url)
        with NotifyListener(workdir) as notify, open(workdir / "agent.log", "ab") as log:
            env.update(notify.env())
            proc = spawn_in_netns(host, [GINGHAM, "node", "run", "--name", "h1"],
                                  stdout=log, stderr=log, env=env)  # fmt: skip
            try:
                first = notify.next()
                assert "READY" not in first, notify.seen
                assert first["STATUS"].startswith("not ready") and "no cluster ID" in \
                    first["STATUS"], first  # fmt: skip
                assert _readyz(host) == 503
                ensure_cluster_id(ds)  # the agent programs the host now
                ready = notify.until("READY")
                assert ready["READY"] == "1"
                assert ready["STATUS"].startswith("ready"), ready
                assert _readyz(host) == 200  # as /readyz says at the same moment
                os.kill(proc.pid, signal.SIGTERM)
                assert notify.until("STOPPING")["STOPPING"] == "1"
            finally:
                code = stop_process(proc, timeout=30)
        assert code == 0, (workdir / "agent.log").read_text(errors="replace")[-3000:]
    finally:
        ds.close()


@pytest.mark.etcd
def test_fanout_server_is_ready_once_it_holds_the_datastore(workdir: Path) -> None:
    members = start_etcd_cluster(workdir / "etcd", 1, die_with_parent=True)
    try:
        member = members[0]
        with open_datastore(member.datastore_url) as ds:
            ensure_cluster_id(ds)
            ds.create("/gingham/v1/resources/Tier/default", {"kind": "Tier"})
        member.stop()  # the server starts without a datastore to read
        sock = workdir / "fanout.sock"
        with NotifyListener(workdir) as notify:
            proc = subprocess.Popen(
                [GINGHAM, "--datastore", member.datastore_url, "fanout", "serve", "--socket",
                 str(sock)], env=dict(os.environ, **notify.env()), stderr=subprocess.PIPE,
                text=True)  # fmt: skip
            try:
                first = notify.next()
                assert "READY" not in first, notify.seen
                assert first["STATUS"].startswith("not ready"), first
                member.start()
                member.wait_healthy()
                ready = notify.until("READY")
                assert ready["STATUS"].startswith("ready"), ready
                # Ready means an agent connecting now is served the whole state.
                client = FanoutClient(str(sock), retry_interval=0.05)
                try:
                    got: dict[str, object] = {}
                    while not client.status.in_sync:
                        got.update(client.poll(1.0))
                    assert "/gingham/v1/resources/Tier/default" in got
                finally:
                    client.close()
                proc.send_signal(signal.SIGTERM)
                assert notify.until("STOPPING")["STOPPING"] == "1"
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        stop_etcd_cluster(members)
