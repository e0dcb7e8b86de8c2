"""The lab's supervisor as a real process: it restarts what ends, backs off from what
cannot start, and leaves nothing behind when stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from gingham.lab.supervisor import BACKOFF, RUNNING, STOPPED, Status, read_status

pytestmark = pytest.mark.integration

GINGHAM = str(Path(sys.executable).with_name("gingham"))


class Supervised:
    def __init__(self, tmp: Path, command: Sequence[str], *options: str) -> None:
        self.status_path, self.log = tmp / "status.json", tmp / "agent.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gingham.lab.supervisor", "--status", str(self.status_path),
             "--log", str(self.log), *options, "--", *command],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip

    def status(self) -> Status:
        st = read_status(self.status_path)
        assert st is not None, (
            f"no status yet; log:\n{self.log.read_text() if self.log.exists() else ''}"
        )
        return st

    def wait_for(
        self, what: str, predicate: Callable[[Status], object], timeout: float = 10.0
    ) -> Status:
        deadline = time.monotonic() + timeout
        while True:
            st = read_status(self.status_path)
            if st is not None and predicate(st):
                return st
            assert time.monotonic() < deadline, f"never {what}: {st}"
            time.sleep(0.02)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)

    def kill_everything(self) -> None:
        """Test clean-up, also on failure: the supervisor and whatever agent it has."""
        st = read_status(self.status_path)
        with_pid = [self.proc.pid] + ([st.agent_pid] if st and st.agent_pid else [])
        for pid in with_pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[list[Supervised]]:
    made: list[Supervised] = []
    yield made
    for s in made:
        s.kill_everything()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return "zombie" not in Path(f"/proc/{pid}/status").read_text()


def test_a_killed_agent_comes_back_and_its_log_grows(
    tmp_path: Path, supervised: list[Supervised]
) -> None:
    script = "import os, sys, time; print('agent up', os.getpid(), flush=True); time.sleep(60)"
    s = Supervised(tmp_path, [sys.executable, "-c", script])
    supervised.append(s)
    first = s.wait_for("running", lambda st: st.state == RUNNING and st.agent_pid)
    assert first.restarts == 0 and first.supervisor_pid == s.proc.pid
    # Killed before it printed, the first agent would leave one line, not two.
    s.wait_for("up", lambda st: s.log.exists() and "agent up" in s.log.read_text())
    os.kill(first.agent_pid, signal.SIGKILL)
    t0 = time.monotonic()
    second = s.wait_for(
        "restarted", lambda st: st.state == RUNNING and st.agent_pid != first.agent_pid
    )
    assert time.monotonic() - t0 < 3.0  # the first step of the backoff, not more
    assert second.restarts == 1 and second.last_exit == "signal 9 (SIGKILL)"
    assert not _alive(first.agent_pid)
    s.wait_for("logged", lambda st: s.log.read_text().count("agent up") == 2)
    log = s.log.read_text()
    assert f"agent up {first.agent_pid}" in log and f"agent up {second.agent_pid}" in log
    assert "agent ended (signal 9 (SIGKILL))" in log

    assert s.stop() == 0
    assert not _alive(second.agent_pid), "the supervisor left its agent running"
    final = s.status()
    assert final.state == STOPPED and final.agent_pid == 0 and final.restarts == 1


def test_an_agent_that_cannot_start_is_backed_off_not_spun(
    tmp_path: Path, supervised: list[Supervised]
) -> None:
    # The real agent with a flag it does not know: exit 2 at every start.
    s = Supervised(tmp_path, [GINGHAM, "node", "run", "--name", "x", "--no-such-flag"])
    supervised.append(s)
    s.wait_for("a first exit", lambda st: st.last_exit)
    t0 = time.monotonic()
    time.sleep(6.0)
    st = s.status()
    # 0.5 + 1 + 2 (+ 4 ...) s between starts: four or five in six seconds, where a
    # restart loop without backoff would have made a hundred.
    assert st.restarts <= 5, st
    assert st.last_exit == "exit 2"
    assert st.state == BACKOFF and st.next_start_at - time.time() > 1.0, st
    assert "No such option" in s.log.read_text()  # the agent's own words are in the log
    gaps = [line for line in s.log.read_text().splitlines() if "restart" in line and " in " in line]
    assert [g.rsplit(" in ", 1)[1] for g in gaps[:4]] == ["0.5 s", "1 s", "2 s", "4 s"]
    # A stop in the middle of a backoff is immediate.
    t1 = time.monotonic()
    assert s.stop() == 0
    assert time.monotonic() - t1 < 2.0
    assert time.monotonic() - t0 < 10.0


def test_stop_kills_an_agent_that_ignores_sigterm(
    tmp_path: Path, supervised: list[Supervised]
) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    s = Supervised(tmp_path, [sys.executable, "-c", script], "--stop-timeout", "0.5")
    supervised.append(s)
    st = s.wait_for("running", lambda st: st.state == RUNNING and st.agent_pid)
    time.sleep(0.3)  # let the agent install its handler
    assert s.stop() == 0
    assert not _alive(st.agent_pid)
    assert "ignored SIGTERM" in s.log.read_text()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--initial-delay", "0"], "more than 0"),
        (["--max-delay", "abc"], "not a number"),
        (["--initial-delay", "5", "--max-delay", "1"], "maximum delay"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(
    tmp_path: Path, supervised: list[Supervised], options: list[str], words: str
) -> None:
    s = Supervised(tmp_path, ["true"], *options)
    supervised.append(s)
    out, _ = s.proc.communicate(timeout=10)
    assert s.proc.returncode == 2 and words in out, out
    assert not s.status_path.exists() and not s.log.exists()
