"""BIRD process control: one BIRD per host (namespace), files under ``<run_dir>/<host>/bird/``.

``apply(text)`` is what the agent calls on every change: it starts BIRD if it is
not running, reloads it (``birdc configure``) only when the rendered text
differs from what BIRD runs, and leaves it alone otherwise. A configuration is
checked with ``bird -p`` before it replaces the running one, so a bad render
never takes sessions down. The configuration file is mode 0600 (it may hold BGP
passwords); BIRD is started with its path only, so no secret is ever on a
command line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Literal

from gingham.errors import RoutingError
from gingham.hostfiles import DEFAULT_RUN_DIR
from gingham.routing.status import PeerStatus, bgp_status, birdc

ApplyResult = Literal["started", "reloaded", "unchanged"]


def _run(argv: list[str], timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RoutingError(f"{' '.join(argv)}: {exc}") from exc


class BirdProcess:
    def __init__(
        self, host: str, netns: str | None = None, run_dir: str | Path = DEFAULT_RUN_DIR
    ) -> None:
        self.host = host
        self.netns = netns
        self.dir = Path(run_dir) / host / "bird"
        self.conf = self.dir / "bird.conf"
        self.sock = self.dir / "bird.ctl"
        self.pidfile = self.dir / "bird.pid"
        self.log = self.dir / "bird.log"

    # -- state ------------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def running(self) -> bool:
        return self.pid() is not None and self.sock.exists()

    def status(self) -> list[PeerStatus]:
        return bgp_status(self.sock)

    # -- changes ----------------------------------------------------------------
    def _check(self, path: Path) -> None:
        proc = _run(["bird", "-p", "-c", str(path)])
        if proc.returncode != 0:
            raise RoutingError(
                f"BIRD rejects the configuration for {self.host}: {proc.stderr.strip()}"
            )

    def _write(self, text: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.conf.with_suffix(".conf.new")
        # The text may hold BGP passwords: 0600 from the first byte, never readable
        # by others even for a moment (a mode set after writing would be too late).
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        try:
            self._check(tmp)
        except RoutingError:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(self.conf)

    def apply(self, text: str) -> ApplyResult:
        if self.running():
            try:
                current = self.conf.read_text()
            except OSError:
                current = None
            if current == text:
                return "unchanged"
            self._write(text)
            self.reload()
            return "reloaded"
        self._write(text)
        self.start()
        return "started"

    def start(self, timeout: float = 10.0) -> None:
        argv = ["bird", "-c", str(self.conf), "-s", str(self.sock), "-P", str(self.pidfile)]
        if self.netns:
            target = self.netns if "/" in self.netns else f"/run/netns/{self.netns}"
            argv = ["nsenter", f"--net={target}", *argv]
        self.sock.unlink(missing_ok=True)
        proc = _run(argv)
        if proc.returncode != 0:
            raise RoutingError(f"bird for {self.host} did not start: {proc.stderr.strip()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running():
                return
            time.sleep(0.02)
        raise RoutingError(
            f"bird for {self.host} started but its socket {self.sock} never appeared"
        )

    def reload(self) -> None:
        out = birdc(self.sock, "configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise RoutingError(f"birdc configure for {self.host}: {out.strip()}")

    def stop(self, timeout: float = 5.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        try:
            birdc(self.sock, "down", timeout=timeout)
        except RoutingError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() == pid:
            time.sleep(0.02)
        if self.pid() == pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.sock.unlink(missing_ok=True)
        self.pidfile.unlink(missing_ok=True)
