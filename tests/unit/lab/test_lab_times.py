"""Times the lab prints (status JSON and table, the supervisor's log) are RFC 3339 in UTC."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gingham.cli.lab import _last_exit
from gingham.lab import fanout as labfanout
from gingham.lab import state as labstate
from gingham.lab.state import LabState
from gingham.lab.supervisor import Backoff, Status, Supervisor, write_status

RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture
def lab_name() -> Iterator[str]:
    name = f"t17times{os.getpid()}"
    try:
        yield name
    finally:
        shutil.rmtree(labstate.lab_dir(name), ignore_errors=True)


def test_status_json_has_rfc3339_or_null_never_a_float(lab_name: str) -> None:
    lab = LabState(name=lab_name, datastore="sqlite:///x.db", datastore_kind="sqlite", fabric={},
                   fanout="/nowhere.sock", fanout_supervisor_pid=os.getpid())
    labstate.lab_dir(lab_name).mkdir(parents=True)
    write_status(labfanout.status_path(lab_name),
                 Status(supervisor_pid=os.getpid(), last_exit="exit 1", last_exit_at=5.0))
    report = labfanout.report(lab)
    assert report is not None and report["last_exit_at"] == "1970-01-01T00:00:05.000Z"
    assert _last_exit(report) == "exit 1 at 1970-01-01T00:00:05Z"
    write_status(labfanout.status_path(lab_name), Status(supervisor_pid=os.getpid()))
    report = labfanout.report(lab)
    assert report is not None and report["last_exit_at"] is None and _last_exit(report) == "-"


def test_the_supervisors_log_lines_start_with_rfc3339(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    Supervisor(["true"], tmp_path / "status.json", log, Backoff(0.5, 1.0, 1.0))._say("hello")
    line = log.read_text()
    assert re.fullmatch(RFC3339 + r" supervisor\[\d+\]: hello\n", line), line
