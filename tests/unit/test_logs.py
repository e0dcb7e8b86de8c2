"""``--log-format json``: one JSON object a line, from the formatter and from real
gingham processes (a CLI command, ``fanout serve``, ``docker serve``); text stays the
default. The agent's JSON log is checked where a real agent runs
(tests/integration/agent/test_agent_observability.py)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import keys, open_datastore
from gingham.hostfiles import RUN_DIR_ENV
from gingham.logs import JsonFormatter, setup_logging
from gingham.names import DATASTORE_ENV, LOG_FORMAT_ENV
from gingham.timestamps import rfc3339

GINGHAM = str(Path(sys.executable).with_name("gingham"))
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object (fails on any line that is not one)."""
    docs = []
    for line in text.splitlines():
        doc = json.loads(line)
        assert isinstance(doc, dict), line
        assert RFC3339.match(doc["time"]), doc
        assert {"level", "logger", "message"} <= set(doc), doc
        docs.append(doc)
    return docs


def _record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("gingham.test")
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logger.makeRecord("gingham.test", logging.WARNING, __file__, 1, msg, args,
                             exc_info, extra=extra)  # fmt: skip


def test_a_json_line_holds_time_level_logger_message_extras_and_exception() -> None:
    record = _record("applied %d rules\nin one go", 3, exc=True, host="h1", took=0.5,
                     where={"table": "gingham"}, obj=object(), time="clash")  # fmt: skip
    line = JsonFormatter().format(record)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["time"] == rfc3339(record.created)
    assert (doc["level"], doc["logger"]) == ("warning", "gingham.test")
    assert doc["message"] == "applied 3 rules\nin one go"
    assert (doc["host"], doc["took"], doc["where"]) == ("h1", 0.5, {"table": "gingham"})
    assert doc["obj"].startswith("<object object")  # not JSON: its str
    assert doc["extra_time"] == "clash"  # never hides the record's own time
    assert doc["exception"].startswith("Traceback") and "ValueError: boom" in doc["exception"]
    assert set(doc) == {"time", "level", "logger", "message", "host", "took", "where", "obj",
                        "extra_time", "exception"}


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    root.handlers[:] = before
    root.setLevel(level)


def test_setup_replaces_its_own_handler_only(root_handlers: None) -> None:
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", "text", stream=first)
    setup_logging("debug", "json", stream=second)
    logging.getLogger("gingham.test").debug("once")
    assert first.getvalue() == ""
    assert json_lines(second.getvalue())[0]["message"] == "once"
    assert other in logging.getLogger().handlers


def test_text_is_the_default_and_carries_the_same_time(root_handlers: None) -> None:
    out = io.StringIO()
    setup_logging("info", None, stream=out)
    logging.getLogger("gingham.test").info("hello")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO gingham.test: hello\n$",
                    out.getvalue())


def test_a_cli_command_logs_json_when_told(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'g.db'}"
    with open_datastore(url, create=True) as ds:
        ds.put_raw(keys.IPAM + "blocks/198.18.0.0-26", b"{nope")  # IPAM warns about it
    env = {k: v for k, v in os.environ.items() if k != LOG_FORMAT_ENV}
    argv = ["--datastore", url, "ipam", "show", "--ip", "198.18.0.5"]
    as_json = subprocess.run([GINGHAM, "--log-format", "json", *argv], capture_output=True,
                             text=True, timeout=60, env=env)  # fmt: skip
    logged = [line for line in as_json.stderr.splitlines() if line.startswith("{")]
    (doc,) = json_lines("\n".join(logged))
    assert (doc["level"], doc["logger"]) == ("warning", "gingham.ipam")
    assert doc["message"].startswith("IPAM: skipping /gingham/v1/ipam/blocks/198.18.0.0-26")
    as_text = subprocess.run([GINGHAM, *argv], capture_output=True, text=True, timeout=60,
                             env=env)  # fmt: skip
    assert "\nIPAM: skipping" in "\n" + as_text.stderr and "{" not in as_text.stderr


def _serve(argv: list[str], env: dict[str, str], log: Path, until: str) -> str:
    """Run a long-running command until its log says ``until``; SIGTERM; its log."""
    with open(log, "w") as out:
        proc = subprocess.Popen([GINGHAM, *argv], stdout=subprocess.DEVNULL, stderr=out,
                                env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while until not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return log.read_text()


def test_fanout_serve_logs_json_from_the_global_flag(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'g.db'}"
    with open_datastore(url, create=True):
        pass
    env = {k: v for k, v in os.environ.items() if k != LOG_FORMAT_ENV}
    text = _serve(["--log-format", "json", "--datastore", url, "fanout", "serve", "--socket",
                   str(tmp_path / "f.sock")], env, tmp_path / "fanout.log", "in sync")
    docs = json_lines(text)
    assert any(d["message"].startswith("fan-out server on ") for d in docs)
    assert docs[-1]["message"].startswith("stopped: ")
    # The command's own flag wins over the global one.
    text = _serve(["--log-format", "json", "--datastore", url, "fanout", "serve", "--socket",
                   str(tmp_path / "f.sock"), "--log-format", "text"], env,
                  tmp_path / "fanout2.log", "in sync")  # fmt: skip
    assert not text.startswith("{") and " INFO gingham.fanout: fan-out server on " in text


def test_docker_serve_logs_json_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'g.db'}"
    with open_datastore(url, create=True):
        pass
    env = dict(os.environ, **{LOG_FORMAT_ENV: "json", DATASTORE_ENV: url,
                              RUN_DIR_ENV: str(tmp_path / "run")})
    text = _serve(["docker", "serve", "--node", "h1", "--socket", str(tmp_path / "p.sock"),
                   "--docker-host", f"unix://{tmp_path / 'no-docker.sock'}"], env,
                  tmp_path / "plugin.log", "gingham Docker driver")  # fmt: skip
    docs = json_lines(text)
    assert any(d["message"].startswith("gingham Docker driver for node h1") for d in docs)


def test_a_bad_format_is_refused_by_name(tmp_path: Path) -> None:
    env = dict(os.environ, **{LOG_FORMAT_ENV: "yaml"})
    proc = subprocess.run([GINGHAM, "version"], capture_output=True, text=True, timeout=60,
                          env=env)  # fmt: skip
    assert proc.returncode == 2
    assert "--log-format" in proc.stderr and "yaml" in proc.stderr
