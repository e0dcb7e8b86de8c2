"""A real node agent (``gingham node run``) in a throwaway host namespace, serving the CNI
socket the plugin hands its commands to; and the two ways the CNI tests run a command."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from gingham.hostfiles import cni_socket_path
from gingham.lab.netns import spawn_in_netns, stop_process

GINGHAM = str(Path(sys.executable).with_name("gingham"))
# The two paths every CNI conformance test runs through: the plugin hands the command to
# the agent of its node, or runs it itself (no agent there, or told not to ask one).
PATHS = ["agent", "direct"]


class NodeAgent:
    def __init__(self, host_netns: str, url: str, run_dir: Path, name: str = "h1") -> None:
        self.host_netns = host_netns
        self.url = url
        self.run_dir = run_dir
        self.name = name
        self.log_path = run_dir / f"agent-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return cni_socket_path(self.name, self.run_dir)

    def start(self, timeout: float = 30.0) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GINGHAM_RUN_DIR=str(self.run_dir), GINGHAM_DATASTORE=self.url)
        with open(self.log_path, "ab") as log:
            self.proc = spawn_in_netns(self.host_netns, [GINGHAM, "node", "run", "--name",
                                                         self.name, "--log-level", "debug"],
                                       stdout=log, stderr=log, env=env)  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.serving():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the agent did not serve {self.socket}:\n{self.log()}")
            time.sleep(0.05)

    def serving(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.socket))
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def handled(self, command: str) -> int:
        """How many commands of this kind the agent answered (its debug log)."""
        return self.log().count(f"CNI {command} ")

    def kill(self) -> None:
        """kill -9: no clean-up of any kind."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
            self.proc = None


def path_conf(path: str, run_dir: Path) -> dict[str, object]:
    """What the network configuration says for ``path`` ("agent" or "direct")."""
    return {"runDir": str(run_dir)} if path == "agent" else {"agent": False}


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """``check`` holds now or within ``timeout`` (a veth DEL took down is deleted by the
    agent's reaper a few milliseconds after DEL returned)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@contextlib.contextmanager
def node_agent(host_netns: str, url: str, run_dir: Path, name: str = "h1") -> Iterator[NodeAgent]:
    agent = NodeAgent(host_netns, url, run_dir, name)
    try:
        agent.start()
        yield agent
    finally:
        agent.stop()
