"""Start and stop real etcd members: for tests, benchmarks and the lab.

Each member gets its own directory (data, log) and listens on loopback TCP
ports, optionally also on a unix socket. etcd 3.4 only accepts a *relative*
unix URL (``unix://NAME:2379``) and creates the socket in its working
directory, so members run with ``cwd`` set to their own directory and the
socket's absolute path is ``<dir>/<name>:2379``: reachable from every network
namespace through the filesystem, which loopback TCP is not.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gingham.errors import Unavailable


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports that were free a moment ago."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class EtcdProcess:
    """One etcd member. ``start()`` launches it; ``wait_healthy()`` waits for /health."""

    name: str
    directory: Path
    client_port: int
    peer_port: int
    initial_cluster: str = ""
    cluster_token: str = ""  # the same for every member of one cluster
    host: str = "127.0.0.1"
    unix_socket: bool = False
    binary: str = "etcd"
    extra_args: list[str] = field(default_factory=list)
    # TLS on the client port: server certificate, its key, and the CA that
    # signed it (clients verify the server with it). Peers stay on plain
    # loopback HTTP.
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    # Tests and benchmarks: the kernel kills etcd when the starting process
    # dies, even by SIGKILL, so no member outlives an interrupted run. The lab
    # leaves this off: its cluster must outlive ``gingham lab up``.
    die_with_parent: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        scheme = "https" if self.cert_file else "http"
        return f"{scheme}://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def socket_path(self) -> Path:
        return self.directory / f"{self.name}:2379"

    @property
    def datastore_url(self) -> str:
        """The gingham URL of this member alone (TCP)."""
        if self.cert_file:
            return f"etcds://{self.host}:{self.client_port}?cacert={self.ca_file}"
        return f"etcd://{self.host}:{self.client_port}"

    @property
    def unix_datastore_url(self) -> str:
        return f"etcd+unix://{self.socket_path}"

    def command(self) -> list[str]:
        listen = self.client_url
        if self.unix_socket:
            listen += f",unix://{self.name}:2379"
        return [
            self.binary,
            "--name", self.name,
            "--data-dir", str(self.directory / "data"),
            "--listen-client-urls", listen,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster or f"{self.name}={self.peer_url}",
            "--initial-cluster-state", "new",
            "--initial-cluster-token", self.cluster_token or f"gingham-{self.name}",
            "--log-level", "warn",
            *self._tls_args(),
            *self.extra_args,
        ]  # fmt: skip

    def _tls_args(self) -> list[str]:
        if not self.cert_file:
            return []
        # No --trusted-ca-file: etcd would then demand client certificates,
        # which the health probe does not carry. ca_file is for clients.
        return ["--cert-file", self.cert_file, "--key-file", self.key_file or ""]

    def start(self) -> None:
        if shutil.which(self.binary) is None:
            raise Unavailable(f"{self.binary} is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        log = open(self.directory / "etcd.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        finally:
            log.close()

    def healthy(self) -> bool:
        try:
            verify = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True
            r = httpx.get(self.client_url + "/health", timeout=1.0, verify=verify)
            return r.status_code == 200 and r.json().get("health") == "true"
        except (httpx.HTTPError, ValueError):
            return False

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise Unavailable(
                    f"etcd {self.name} exited with {self.proc.returncode}: {self.log_tail()}"
                )
            if self.healthy() and (not self.unix_socket or self.socket_path.exists()):
                return
            time.sleep(0.1)
        raise Unavailable(f"etcd {self.name} not healthy after {timeout}s: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = (self.directory / "etcd.log").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate (then kill) the member; safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _die_with_parent() -> None:
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def start_etcd_cluster(
    data_dir: str | Path,
    n: int = 1,
    *,
    host: str = "127.0.0.1",
    unix_socket: bool = False,
    timeout: float = 30.0,
    binary: str = "etcd",
    die_with_parent: bool = False,
    extra_args: list[str] | None = None,
) -> list[EtcdProcess]:
    """Start an ``n``-member cluster under ``data_dir`` (one sub-directory each), wait for health.

    On failure every member started is stopped again before the error is raised.
    """
    base = Path(data_dir)
    ports = free_ports(2 * n, host)
    members = [
        EtcdProcess(
            name=f"etcd{i}",
            directory=base / f"etcd{i}",
            client_port=ports[2 * i],
            peer_port=ports[2 * i + 1],
            host=host,
            unix_socket=unix_socket,
            binary=binary,
            cluster_token=f"gingham-{base.name}",
            die_with_parent=die_with_parent,
            extra_args=list(extra_args or []),
        )
        for i in range(n)
    ]
    cluster = ",".join(f"{m.name}={m.peer_url}" for m in members)
    try:
        for m in members:
            m.initial_cluster = cluster
            m.start()
        for m in members:
            m.wait_healthy(timeout)
    except BaseException:
        stop_etcd_cluster(members)
        raise
    return members


def stop_etcd_cluster(members: list[EtcdProcess]) -> None:
    for m in members:
        m.stop()


def cluster_url(members: list[EtcdProcess], *, unix: bool = False) -> str:
    """One gingham datastore URL naming every member."""
    if unix:
        return "etcd+unix://" + ",".join(str(m.socket_path) for m in members)
    return "etcd://" + ",".join(f"{m.host}:{m.client_port}" for m in members)
