"""A real agent (``gingham node run --log-format json``) in a throwaway host namespace
against a sqlite datastore, no lab: its /metrics as Prometheus scrapes it, its /readyz
reasons over HTTP, and every line of its log as JSON."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gingham import __version__
from gingham.datastore import keys, open_datastore
from gingham.hostfiles import RUN_DIR_ENV
from gingham.lab.netns import spawn_in_netns, stop_process
from gingham.names import DATASTORE_ENV, LOG_FORMAT_ENV
from tests.integration.faults.tools import run_py, wait_until

pytestmark = pytest.mark.integration

GINGHAM = str(Path(sys.executable).with_name("gingham"))
PORT = 9099
GET = """
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen('http://127.0.0.1:PORT' + sys.argv[1], timeout=5)
    print(r.status); print(r.read().decode(), end='')
except urllib.error.HTTPError as exc:
    print(exc.code); print(exc.read().decode(), end='')
except OSError as exc:
    print(0); print(exc)
""".replace("PORT", str(PORT))


@dataclass
class Running:
    netns: str
    url: str
    log: Path

    def get(self, path: str) -> tuple[int, str]:
        out = run_py(self.netns, GET, path).stdout
        code, _, text = out.partition("\n")
        return int(code or 0), text


@pytest.fixture
def agent(netns: Callable[[str], str]) -> Iterator[Running]:
    tmp = Path(tempfile.mkdtemp(prefix="gingham-obs-"))
    proc = None
    try:
        url = f"sqlite://{tmp / 'gingham.db'}"
        open_datastore(url, create=True).close()
        host = netns("host")
        log = tmp / "agent.log"
        env = {k: v for k, v in os.environ.items() if k != LOG_FORMAT_ENV}
        env.update({RUN_DIR_ENV: str(tmp / "run"), DATASTORE_ENV: url})
        with open(log, "wb") as out:
            proc = spawn_in_netns(host, [GINGHAM, "node", "run", "--name", "h1",
                                         "--health-port", str(PORT), "--log-format", "json"],
                                  stdout=out, stderr=out, env=env)  # fmt: skip
        running = Running(host, url, log)
        wait_until(lambda: running.get("/readyz")[0] == 200 or proc.poll() is not None, 60,
                   "agent ready")  # fmt: skip
        assert proc.poll() is None, log.read_text()
        yield running
    finally:
        if proc is not None:
            stop_process(proc, timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def test_metrics_as_prometheus_scrapes_them(agent: Running) -> None:
    code, text = agent.get("/metrics")
    assert code == 200
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}  # fmt: skip
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total",
            "process_open_fds", "process_start_time_seconds"} <= names
    assert {"python_info", "python_gc_collections_total"} <= names
    assert re.search(rf'^gingham_build_info{{python="[0-9.]+",version="{re.escape(__version__)}"}}'
                     r" 1\.0$", text, re.M), text
    assert not [n for n in names if n.endswith("_created")]
    assert re.search(r'^gingham_datastore_requests_total{operation="list"} [1-9]', text, re.M)
    assert re.search(r'^gingham_datastore_request_duration_seconds_count{operation="list"} '
                     r"[1-9]", text, re.M)  # fmt: skip
    for gauge in ("gingham_datastore_watch_revision", "gingham_datastore_revision",
                  "gingham_datastore_watch_revisions_behind",
                  "gingham_datastore_watch_last_change_age_seconds",
                  "gingham_datastore_last_sync_age_seconds"):
        assert gauge in names, gauge


def test_readyz_reasons_over_http_and_json_logs(agent: Running) -> None:
    assert agent.get("/readyz") == (200, "ok\n")
    code, text = agent.get("/readyz?verbose")
    assert code == 200
    assert text.splitlines() == ["[+]datastore-sync ok", "[+]datastore-cluster ok",
                                 "[+]dataplane ok", "readyz check passed"]
    ds = open_datastore(agent.url)
    try:
        cluster = ds.get(keys.CLUSTER)
        assert cluster is not None
        ds.delete(keys.CLUSTER)  # the cluster guard stops the agent from programming
        wait_until(lambda: agent.get("/readyz")[0] == 503, 30, "readyz 503")
        code, text = agent.get("/readyz")
        assert text.startswith(f"not ready: {agent.url} has no cluster ID"), text
        code, text = agent.get("/readyz?verbose")
        assert "[+]datastore-sync ok" in text.splitlines()
        assert f"[-]datastore-cluster failed: {agent.url} has no cluster ID" in text
        ds.create(keys.CLUSTER, cluster.value)  # the same cluster: ready again
        wait_until(lambda: agent.get("/readyz") == (200, "ok\n"), 30, "ready again")
    finally:
        ds.close()
    lines = agent.log.read_text().splitlines()
    assert lines
    docs = [json.loads(line) for line in lines]  # every line: one JSON object
    assert all({"time", "level", "logger", "message"} <= set(d) for d in docs)
    assert any(d["level"] == "error" and d["message"].startswith("not programming this host")
               for d in docs)  # fmt: skip
    assert any(d["message"].startswith("agent h1: datastore ") for d in docs)
