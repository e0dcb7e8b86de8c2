"""One lab host's agent under supervision, the way systemd's ``Restart=always`` runs it.

``gingham lab up`` starts one supervisor per host, inside the host's network
namespace::

    python -m gingham.lab.supervisor --status FILE --log FILE -- gingham node run ...

The supervisor owns the agent: it starts it (in a session of its own, so that
a signal to the agent's process group reaches the agent and nothing else),
waits for it to exit, and starts it again after a delay. The delay doubles
while starts keep failing fast (0.5 s, 1 s, 2 s ... up to 10 s) and falls back
to the first step once an agent has stayed up for 10 s: a crash now and then
costs half a second, an agent that can never start (a bad flag, a datastore
that is not there) costs one start every 10 s instead of a busy loop.

Everything it knows goes to the status FILE (JSON, written whole and renamed,
so a reader never sees half of one): its own pid, the agent's pid, the state,
how many times it restarted the agent, how the last one ended. The agent's
output and one line per supervisor decision go to the log FILE, opened for
appending at every start, so the log of a host tells its whole story.

SIGTERM, SIGINT or SIGHUP: stop the agent (SIGTERM, SIGKILL after a grace
period), record ``stopped`` and exit 0. If the supervisor itself is killed
with SIGKILL the agent keeps running, unsupervised; ``lab down`` still finds
it by the pid in the status file.

Standard library only (and :mod:`gingham.timestamps`, which is too): it is one
small process per host and must not pay for importing the agent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import FrameType
from typing import Any

from gingham.timestamps import rfc3339

# States written to the status file.
STARTING, RUNNING, BACKOFF, STOPPING, STOPPED = (
    "starting",
    "running",
    "backoff",
    "stopping",
    "stopped",
)

INITIAL_DELAY = 0.5
MAX_DELAY = 10.0
RESET_AFTER = 10.0
STOP_TIMEOUT = 2.0


class Backoff:
    """Delay before each restart: doubles from ``initial`` to ``cap`` while the agent
    keeps dying young, back to ``initial`` after a run of at least ``reset_after``."""

    def __init__(
        self,
        initial: float = INITIAL_DELAY,
        cap: float = MAX_DELAY,
        reset_after: float = RESET_AFTER,
    ) -> None:
        if not initial > 0:
            raise ValueError(f"initial delay must be > 0 s, not {initial}")
        if not cap >= initial:
            raise ValueError(f"maximum delay ({cap} s) must be >= the initial delay ({initial} s)")
        if not reset_after > 0:
            raise ValueError(f"reset-after must be > 0 s, not {reset_after}")
        self.initial, self.cap, self.reset_after = initial, cap, reset_after
        self._next = initial

    def after_exit(self, uptime: float) -> float:
        """The delay before the next start, given how long the agent that just ended ran."""
        if uptime >= self.reset_after:
            self._next = self.initial
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay


@dataclass
class Status:
    """What the status file holds. Times are seconds since the epoch (0: never)."""

    supervisor_pid: int
    state: str = STARTING
    agent_pid: int = 0
    starts: int = 0
    started_at: float = 0.0
    last_exit: str = ""
    last_exit_at: float = 0.0
    last_uptime: float = 0.0
    next_start_at: float = 0.0

    @property
    def restarts(self) -> int:
        """Starts after the first one: what systemd counts as NRestarts."""
        return max(self.starts - 1, 0)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "restarts": self.restarts}, sort_keys=True)


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "str": str, "float": (int, float)}


def read_status(path: str | Path) -> Status | None:
    """The status in ``path``; None if there is none or it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    values: dict[str, Any] = {}
    for f in fields(Status):
        if f.name not in data:
            continue
        value = data[f.name]
        # bool is an int to Python, never to this file.
        ok = not isinstance(value, bool) and isinstance(value, _FIELD_TYPES[str(f.type)])
        if not ok:
            return None
        values[f.name] = value
    try:
        return Status(**values)
    except TypeError:  # supervisor_pid missing
        return None


def write_status(path: str | Path, status: Status) -> None:
    """Replace the status file whole; a vanished directory (lab removed) is not an error."""
    target = Path(path)
    tmp = target.with_name(target.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        tmp.write_text(status.to_json())
        tmp.replace(target)


def describe_exit(returncode: int) -> str:
    """``exit 2`` or ``signal 9 (SIGKILL)``, from a Popen return code."""
    if returncode >= 0:
        return f"exit {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"
    return f"signal {-returncode} ({name})"


class Supervisor:
    def __init__(
        self,
        argv: Sequence[str],
        status_path: str | Path,
        log_path: str | Path,
        backoff: Backoff,
        stop_timeout: float = STOP_TIMEOUT,
        what: str = "agent",
    ) -> None:
        if not argv:
            raise ValueError("no command to supervise")
        self.argv = list(argv)
        self.what = what  # what the log calls the supervised process
        self.status_path = Path(status_path)
        self.log_path = Path(log_path)
        self.backoff = backoff
        self.stop_timeout = stop_timeout
        self.status = Status(supervisor_pid=os.getpid())
        self.stopping = False
        self._wake_r = -1

    # -- plumbing ---------------------------------------------------------------
    def _say(self, message: str) -> None:
        stamp = rfc3339()
        with contextlib.suppress(OSError), open(self.log_path, "a") as log:
            log.write(f"{stamp} supervisor[{os.getpid()}]: {message}\n")

    def _save(self, **changes: object) -> None:
        for key, value in changes.items():
            setattr(self.status, key, value)
        write_status(self.status_path, self.status)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _install_signals(self) -> None:
        # Every handled signal also writes a byte to the wake-up pipe, so the
        # select() below returns at once on SIGCHLD (agent ended) or a stop
        # request, with no window between checking and sleeping.
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w)
        self._wake_r = r
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)

    def _sleep(self, seconds: float) -> None:
        """Sleep until ``seconds`` pass or a signal arrives."""
        if seconds > 0:
            select.select([self._wake_r], [], [], seconds)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 512):
                pass

    # -- the agent --------------------------------------------------------------
    def _start(self) -> subprocess.Popen[bytes] | None:
        try:
            with open(self.log_path, "ab") as log:
                return subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True,
                )  # fmt: skip
        except OSError as exc:
            self._say(f"cannot start {self.argv[0]}: {exc}")
            return None

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        self._save(state=STOPPING)
        self._signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while proc.poll() is None and time.monotonic() < deadline:
            self._sleep(min(0.1, deadline - time.monotonic()))
        if proc.poll() is None:
            self._say(f"{self.what} pid {proc.pid} ignored SIGTERM for {self.stop_timeout:g} s: SIGKILL")
        # Also reaches whatever the agent left in its group.
        self._signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        self._say(f"{self.what} pid {proc.pid} stopped ({describe_exit(proc.returncode)})")

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def run(self) -> int:
        self._install_signals()
        self._save()
        while not self.stopping:
            began = time.monotonic()
            proc = self._start()
            if proc is not None:
                self._save(state=RUNNING, agent_pid=proc.pid, starts=self.status.starts + 1,
                           started_at=time.time(), next_start_at=0.0)  # fmt: skip
                which = "started" if self.status.starts == 1 else f"restart {self.status.restarts}"
                self._say(f"{self.what} {which}: pid {proc.pid}")
                while proc.poll() is None and not self.stopping:
                    self._sleep(1.0)
                if self.stopping:
                    self._stop(proc)
                    break
                ended = describe_exit(proc.returncode)
            else:
                self._save(starts=self.status.starts + 1)
                ended = "exit 127"
            uptime = time.monotonic() - began
            delay = self.backoff.after_exit(uptime)
            self._save(state=BACKOFF, agent_pid=0, last_exit=ended, last_exit_at=time.time(),
                       last_uptime=round(uptime, 3), next_start_at=time.time() + delay)  # fmt: skip
            self._say(f"{self.what} ended ({ended}) after {uptime:.1f} s; "
                      f"restart {self.status.starts} in {delay:g} s")  # fmt: skip
            deadline = time.monotonic() + delay
            while not self.stopping and time.monotonic() < deadline:
                self._sleep(deadline - time.monotonic())
        self._save(state=STOPPED, agent_pid=0, next_start_at=0.0)
        self._say("stopped")
        return 0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gingham.lab.supervisor",
        description="Run a command, restart it with backoff whenever it ends (Restart=always).",
    )
    parser.add_argument("--status", required=True, help="JSON status file (rewritten whole)")
    parser.add_argument("--log", required=True, help="log file (appended)")
    parser.add_argument("--initial-delay", type=_positive, default=INITIAL_DELAY)
    parser.add_argument("--max-delay", type=_positive, default=MAX_DELAY)
    parser.add_argument("--reset-after", type=_positive, default=RESET_AFTER)
    parser.add_argument("--stop-timeout", type=_positive, default=STOP_TIMEOUT)
    parser.add_argument("--what", default="agent", help="what the log calls the process")
    parser.add_argument("command", nargs="+", help="the command, after --")
    args = parser.parse_args(argv)
    try:
        backoff = Backoff(args.initial_delay, args.max_delay, args.reset_after)
    except ValueError as exc:
        parser.error(str(exc))
    return Supervisor(args.command, args.status, args.log, backoff, args.stop_timeout,
                      args.what).run()


if __name__ == "__main__":
    sys.exit(main())
