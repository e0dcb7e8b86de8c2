"""The agent's CNI socket: ``gingham-cni`` hands its commands to the agent of its node.

The agent runs each command with the one implementation the direct path runs
(``cni.entry.execute`` -> ``cni.plugin``), on its own surroundings
(``AgentHost``): a datastore connection and an IPAM per worker thread, kept
warm between commands; veth plumbing over netlink in-process
(``cni.veth_netlink``); log lines sent back to the client for its stderr;
and every write handed to the agent's loop (``cni_handover.py``) so the new
workload is programmed without waiting for the watch.

The socket is ``$GINGHAM_RUN_DIR/<host>/cni.sock`` (``hostfiles.py``), mode
0600, and a peer that is not root (or the agent's own user) is turned away
by its credentials as well. The exchange is ``cni/wire.py``'s: REQUEST,
ACCEPT or DECLINE, GO, REPLY. A request is declined, and the client runs the
command itself, when it is not this agent's to run:
- another node's, or from a process in another network namespace (the
  host's end of the veth is made in the agent's own);
- ADD or CHECK whose CNI_NETNS is not the namespace the client sees under
  that path (another mount namespace);
- another datastore than the agent's, or, for sqlite, a file at the path that
  is not (or no longer) the one the agent has open (moved, replaced, gone:
  the plugin on its own then says what it finds there);
- while the agent's cluster guard leaves the host alone, or the server is
  stopping.

``workers`` long-lived threads each accept a connection and serve it whole,
the exchange and the command, on their own datastore connection (sqlite and
etcd connections are per thread) and IPAM: no thread is started and no
command handed between threads per request (each of those costs a wake-up
and the interpreter lock, milliseconds on a busy host). Connections beyond
the workers wait in the listen queue; a client that waits longer than its
ACCEPT timeout runs the command itself. Stopping: no new connections (the
socket file goes first), then commands in flight finish.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from gingham.agent.cni_handover import Handover
from gingham.cni import wire
from gingham.cni.entry import execute
from gingham.cni.host import Addresses, Plumbing, Session, Store
from gingham.cni.netconf import Invocation
from gingham.cni.protocol import ERR_IO, PluginError, scrub
from gingham.cni.veth_netlink import NetlinkPlumbing, Reaper, StrandedThread
from gingham.datastore import open_datastore
from gingham.datastore.base import Datastore
from gingham.datastore.url import parse_url
from gingham.errors import ValidationError
from gingham.hostfiles import cni_socket_path, mtu_path, read_mtu
from gingham.ipam import IPAM
from gingham.names import DATASTORE_ENV

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 5.0
SEND_TIMEOUT = 10.0
DEFAULT_WORKERS = 4
LISTEN_BACKLOG = 256
STOP_TIMEOUT = 30.0
_NEEDS_SANDBOX = ("ADD", "CHECK")


def namespace_id(path: str) -> str:
    """What the client sends for a namespace (``client._namespace_id``)."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_dev}:{st.st_ino}"


def _file_identity(url: str) -> tuple[int, int] | None:
    """(device, inode) of an sqlite datastore's file; None for other backends or no file."""
    try:
        parsed = parse_url(url)
    except ValidationError:
        return None
    if parsed.scheme != "sqlite":
        return None
    try:
        st = os.stat(parsed.path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def same_datastore(a: str, b: str) -> bool:
    """Whether two datastore URLs name one datastore (credentials aside)."""
    try:
        x, y = parse_url(a), parse_url(b)
    except ValidationError:
        return False
    if x.scheme == "sqlite" or y.scheme == "sqlite":
        return x.scheme == y.scheme and os.path.realpath(x.path) == os.path.realpath(y.path)
    if x.is_etcd and y.is_etcd:
        return x.scheme == y.scheme and set(x.hosts) == set(y.hosts)
    return x.scheme == y.scheme and x.path == y.path


class _Worker:
    """What one worker thread keeps between commands."""

    def __init__(self, ds: Datastore, hostname: str, reaper: Reaper) -> None:
        self.store: Store = ds
        self.ipam = IPAM(ds, host=hostname)
        self.plumbing = NetlinkPlumbing(reaper)

    @property
    def addresses(self) -> Addresses:
        return self.ipam


class AgentHost:
    """``cni.host.Host`` inside the agent, for one command."""

    def __init__(self, server: CniServer, worker: _Worker) -> None:
        self._server = server
        self._worker = worker
        self.lines: list[str] = []

    @property
    def plumbing(self) -> Plumbing:
        return self._worker.plumbing

    @contextlib.contextmanager
    def session(self, inv: Invocation) -> Iterator[Session]:
        if inv.node != self._server.hostname:  # the exchange checked the client's view of it
            raise PluginError(ERR_IO, f"the agent of {self._server.hostname} was asked to act"
                              f" for node {inv.node!r}")
        yield self._worker

    def log(self, message: str) -> None:
        line = scrub(f"gingham-cni: {message}")
        log.info("%s", line)
        self.lines.append(line + "\n")

    def written(self, key: str, value: Mapping[str, object] | None, revision: int) -> None:
        self._server.handover.put(key, value, revision)

    def mtu(self, inv: Invocation) -> int | None:
        return read_mtu(mtu_path(self._server.hostname, self._server.run_dir))


class CniServer:
    def __init__(self, hostname: str, datastore_url: str, run_dir: Path, handover: Handover,
                 *, blocked: Callable[[], str] = lambda: "",
                 workers: int = DEFAULT_WORKERS) -> None:
        self.hostname = hostname
        self.datastore_url = datastore_url
        self.run_dir = run_dir
        self.handover = handover
        self.path = cni_socket_path(hostname, run_dir)
        self._blocked = blocked
        self._netns = namespace_id("/proc/self/ns/net")
        self._ds = open_datastore(datastore_url)
        self._file = _file_identity(datastore_url)  # None: not sqlite
        self._reaper = Reaper()
        self._here = threading.local()  # run_here's workers, by thread
        self._here_workers: list[_Worker] = []
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._listener: socket.socket | None = None

    # -- life -------------------------------------------------------------------------

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)  # born 0600: no moment at which others may connect
        try:
            sock.bind(str(self.path))
        except BaseException:
            sock.close()
            raise
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(LISTEN_BACKLOG)
        self._listener = sock
        for _ in range(self._workers):
            self._spawn(sock)
        log.info("CNI socket %s", self.path)

    def _spawn(self, listener: socket.socket) -> None:
        thread = threading.Thread(target=self._work, args=(listener,), daemon=True,
                                  name=f"cni-worker-{len(self._threads)}")  # fmt: skip
        self._threads.append(thread)
        thread.start()

    def _remove_stale(self) -> None:
        if not self.path.exists():
            return
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink(missing_ok=True)  # left by an agent that is gone
            return
        finally:
            probe.close()
        raise OSError(f"{self.path}: another agent of {self.hostname} is serving it")

    def close(self) -> None:
        """Take no more commands, let those in flight finish, release everything."""
        self._stopping = True
        with contextlib.suppress(OSError):
            if self._listener is not None and self.path.exists():
                self.path.unlink()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes every worker in accept()
        deadline = time.monotonic() + STOP_TIMEOUT
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.close()
        for worker in self._here_workers:
            worker.plumbing.close()
        self._reaper.close()
        self._ds.close()

    # -- connections ----------------------------------------------------------------------

    def _work(self, listener: socket.socket) -> None:
        worker = _Worker(self._ds, self.hostname, self._reaper)
        try:
            while not self._stopping:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    if self._stopping:
                        return
                    time.sleep(0.01)  # e.g. out of file descriptors: do not spin
                    continue
                with conn:
                    try:
                        conn.settimeout(HANDSHAKE_TIMEOUT)
                        self._exchange(conn, worker)
                    except (OSError, wire.WireError) as exc:
                        log.debug("CNI connection: %s", exc)
                    except Exception:  # a bug: this connection only, never the worker
                        log.exception("CNI connection failed")
        except StrandedThread:
            # In a workload's network namespace for good: this thread ends, another takes
            # its place (the client sees the connection end and runs the command itself).
            log.exception("a CNI worker is lost")
            if not self._stopping:
                self._spawn(listener)
        finally:
            worker.plumbing.close()

    def _exchange(self, conn: socket.socket, worker: _Worker) -> None:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        uid = int.from_bytes(creds[4:8], sys.byteorder)
        if uid not in (0, os.geteuid()):
            log.warning("CNI socket: refused a peer with uid %d", uid)
            return
        header, stdin = _read_request(conn)
        why = self._not_mine(header, stdin)
        if why:
            self._decline(conn, why)
            return
        conn.sendall(wire.ACCEPT)
        if conn.recv(1) != wire.GO:
            return  # the client gave up before GO: it runs the command itself
        self.handover.begin()
        started = time.perf_counter()
        try:
            code, out, err = self._run(header, stdin, worker)
        except Exception as exc:  # execute answers every failure: this is a bug
            log.exception("CNI command failed")
            code, out, err = 1, _internal_error(exc), b""
        finally:
            self.handover.end()
        conn.settimeout(SEND_TIMEOUT)
        conn.sendall(wire.encode_reply(code, out, err))
        log.info("CNI %s %s: exit %d in %.1f ms", header.get(wire.COMMAND),
                  header.get(wire.ENV_PREFIX + "CNI_CONTAINERID"), code,
                  (time.perf_counter() - started) * 1e3)

    @staticmethod
    def _decline(conn: socket.socket, why: str) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(wire.DECLINE + why.encode("utf-8", "replace"))

    def _not_mine(self, header: Mapping[str, str], stdin: bytes) -> str:
        """Why this agent must not run the request ("" if it may)."""
        if self._stopping:
            return "the agent is stopping"
        blocked = self._blocked()
        if blocked:
            return f"the agent leaves this host alone: {blocked}"
        node = header.get(wire.NODE, "")
        if node != self.hostname:
            return f"this is the agent of {self.hostname}, not of {node!r}"
        if header.get(wire.CLIENT_NETNS) != self._netns:
            return "the plugin runs in another network namespace than the agent"
        command = header.get(wire.COMMAND, "")
        if command in _NEEDS_SANDBOX:
            sandbox = header.get(wire.ENV_PREFIX + "CNI_NETNS", "")
            seen = header.get(wire.SANDBOX, "")
            if sandbox and (not seen or namespace_id(sandbox) != seen):
                return f"CNI_NETNS {sandbox} is not the same namespace here"
        url = _datastore_of(header, stdin)
        if url and not same_datastore(url, self.datastore_url):
            return "the network configuration names another datastore"
        if self._file is not None and _file_identity(self.datastore_url) != self._file:
            return "the datastore file is not the one the agent opened (moved, replaced or gone)"
        return ""

    # -- commands -------------------------------------------------------------------------

    def run_here(self, header: Mapping[str, str], stdin: bytes) -> tuple[int, bytes, bytes]:
        """Run one request in the calling thread as a worker runs it, past the exchange
        (for benchmarks and tests: the thread must be in the agent's network namespace)."""
        worker: _Worker | None = getattr(self._here, "worker", None)
        if worker is None:
            worker = self._here.worker = _Worker(self._ds, self.hostname, self._reaper)
            self._here_workers.append(worker)
        return self._run(header, stdin, worker)

    def _run(self, header: Mapping[str, str], stdin: bytes,
             worker: _Worker) -> tuple[int, bytes, bytes]:
        env = {name[len(wire.ENV_PREFIX):]: value for name, value in header.items()
               if name.startswith(wire.ENV_PREFIX)}  # fmt: skip
        host = AgentHost(self, worker)
        code, out = execute(header.get(wire.COMMAND, ""), stdin, env,
                            ipam_only=header.get(wire.IPAM_ONLY) == "1", host=host)
        return code, out.encode(), "".join(host.lines).encode()


def _internal_error(exc: Exception) -> bytes:
    import json

    from gingham.cni.protocol import DEFAULT_VERSION

    doc = {"cniVersion": DEFAULT_VERSION, "code": ERR_IO,
           "msg": f"internal error: {type(exc).__name__}", "details": scrub(str(exc))}
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        chunk = conn.recv(min(n, 1 << 16))
        if not chunk:
            raise wire.WireError("request cut short")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_request(conn: socket.socket) -> tuple[dict[str, str], bytes]:
    if _read_exactly(conn, len(wire.MAGIC)) != wire.MAGIC:
        raise wire.WireError("not a gingham-cni request")
    size = int.from_bytes(_read_exactly(conn, 4), "big")
    if size > wire.MAX_HEADER:
        raise wire.WireError("header too large")
    header = wire.decode_header(_read_exactly(conn, size))
    size = int.from_bytes(_read_exactly(conn, 4), "big")
    if size > wire.MAX_STDIN:
        raise wire.WireError("configuration too large")
    return header, _read_exactly(conn, size)


def _datastore_of(header: Mapping[str, str], stdin: bytes) -> str:
    """The datastore URL the request names ("" if it names none, or cannot be read: the
    command then fails here as it would anywhere)."""
    import json

    try:
        conf = json.loads(stdin)
    except ValueError:
        return ""
    url = conf.get("datastore") if isinstance(conf, dict) else None
    if not url:
        url = header.get(wire.ENV_PREFIX + DATASTORE_ENV, "")
    return url if isinstance(url, str) else ""
