"""The lab supervisor's pure parts: the restart delays, exit descriptions, the status file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gingham.lab.supervisor import Backoff, Status, describe_exit, read_status, write_status


def test_delay_doubles_while_the_agent_dies_young_up_to_the_cap() -> None:
    b = Backoff(initial=0.5, cap=10.0, reset_after=10.0)
    assert [b.after_exit(0.1) for _ in range(8)] == [0.5, 1, 2, 4, 8, 10, 10, 10]


def test_a_run_long_enough_starts_the_sequence_over() -> None:
    b = Backoff(initial=0.5, cap=10.0, reset_after=10.0)
    for _ in range(5):
        b.after_exit(0.0)
    assert b.after_exit(10.0) == 0.5  # a crash after a healthy run costs the first step only
    assert b.after_exit(9.9) == 1.0  # and a young death after that doubles again
    assert b.after_exit(60.0) == 0.5


def test_first_crash_of_a_fresh_agent_costs_the_first_step() -> None:
    assert Backoff(0.5, 10.0, 10.0).after_exit(0.2) == 0.5


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((0.0, 10.0, 10.0), "initial delay"),
        ((-1.0, 10.0, 10.0), "initial delay"),
        ((2.0, 1.0, 10.0), "maximum delay"),
        ((0.5, 10.0, 0.0), "reset-after"),
    ],
)
def test_nonsense_delays_are_refused(args: tuple[float, float, float], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Backoff(*args)


def test_exit_descriptions() -> None:
    assert describe_exit(0) == "exit 0"
    assert describe_exit(2) == "exit 2"
    assert describe_exit(-9) == "signal 9 (SIGKILL)"
    assert describe_exit(-15) == "signal 15 (SIGTERM)"
    assert describe_exit(-200) == "signal 200"


def test_restarts_count_starts_after_the_first() -> None:
    assert Status(supervisor_pid=1).restarts == 0
    assert Status(supervisor_pid=1, starts=1).restarts == 0
    assert Status(supervisor_pid=1, starts=4).restarts == 3


def test_status_file_round_trip_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    assert read_status(path) is None  # none yet
    st = Status(supervisor_pid=7, state="running", agent_pid=9, starts=2, last_exit="exit 1")
    write_status(path, st)
    assert read_status(path) == st
    assert json.loads(path.read_text())["restarts"] == 1  # for readers other than us
    assert not (tmp_path / "s.json.new").exists()
    for junk in ("", "{", "[1, 2]", '{"state": "running"}', '{"supervisor_pid": 1, "starts": [1]}',
                 '{"supervisor_pid": "1"}', '{"supervisor_pid": true}', '{"supervisor_pid": 1, "state": 5}'):  # fmt: skip
        path.write_text(junk)
        assert read_status(path) is None, junk
    path.write_text('{"supervisor_pid": 1, "started_at": 5}')  # a whole number of seconds
    assert read_status(path) == Status(supervisor_pid=1, started_at=5)
    # A reader of a newer supervisor's file ignores fields it does not know.
    path.write_text(json.dumps({"supervisor_pid": 3, "state": "backoff", "since": 1.0}))
    assert read_status(path) == Status(supervisor_pid=3, state="backoff")


def test_writing_into_a_removed_lab_directory_is_quiet(tmp_path: Path) -> None:
    write_status(tmp_path / "gone" / "s.json", Status(supervisor_pid=1))
    assert not (tmp_path / "gone").exists()
