"""Wires the Docker driver: one datastore, one lock, two APIs on one socket.

    Docker ──HTTP/unix──▶ server ──(lock)──▶ IpamDriver ──▶ gingham IPAM
                                        └──▶ NetworkDriver ──▶ WorkloadEndpoints, veths
                                                  └─ on_join ──▶ LabelFollower ──▶ Engine
    start: snapshot (before serving) ──▶ once the daemon answers: reconcile
                                          (and follow the labels of pending endpoints)

Calls are served one at a time (IPAM and the datastore connection are not
thread-safe, and Docker makes one call at a time per container anyway).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gingham.datastore.base import Datastore
from gingham.docker import reconcile
from gingham.docker.engine import Engine
from gingham.docker.ipam_driver import IpamDriver
from gingham.docker.labels import LabelFollower
from gingham.docker.network_driver import NetworkDriver
from gingham.docker.server import Handler, PluginServer
from gingham.errors import GinghamError
from gingham.sdnotify import Notifier

log = logging.getLogger(__name__)

DRIVER_NAME = "gingham"
DEFAULT_SOCKET = Path("/run/docker/plugins") / f"{DRIVER_NAME}.sock"


class Plugin:
    def __init__(self, ds: Datastore, node: str, engine: Engine, run_dir: Path) -> None:
        self.ds = ds
        self.node = node
        self.engine = engine
        self.lock = threading.RLock()
        self.ipam = IpamDriver(ds, node)
        self.labels = LabelFollower(ds, node, engine, self.lock)
        self.network = NetworkDriver(ds, node, engine, run_dir, on_join=self.labels.follow)
        self._held = reconcile.snapshot(ds, node)
        self._stop = threading.Event()

    def routes(self) -> dict[str, Handler]:
        i, n = self.ipam, self.network
        table: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "Plugin.Activate": lambda _b: {"Implements": ["NetworkDriver", "IpamDriver"]},
            "IpamDriver.GetCapabilities": i.capabilities,
            "IpamDriver.GetDefaultAddressSpaces": i.address_spaces,
            "IpamDriver.RequestPool": i.request_pool,
            "IpamDriver.ReleasePool": i.release_pool,
            "IpamDriver.RequestAddress": i.request_address,
            "IpamDriver.ReleaseAddress": i.release_address,
            "NetworkDriver.GetCapabilities": n.capabilities,
            "NetworkDriver.CreateNetwork": n.create_network,
            "NetworkDriver.DeleteNetwork": n.delete_network,
            "NetworkDriver.CreateEndpoint": n.create_endpoint,
            "NetworkDriver.EndpointOperInfo": n.oper_info,
            "NetworkDriver.DeleteEndpoint": n.delete_endpoint,
            "NetworkDriver.Join": n.join,
            "NetworkDriver.Leave": n.leave,
            "NetworkDriver.ProgramExternalConnectivity": n.program_external,
            "NetworkDriver.RevokeExternalConnectivity": n.revoke_external,
            "NetworkDriver.DiscoverNew": n.discover,
            "NetworkDriver.DiscoverDelete": n.discover,
        }
        return {path: self._serialised(path, fn) for path, fn in table.items()}

    def _serialised(self, path: str, fn: Handler) -> Handler:
        def call(body: dict[str, Any]) -> dict[str, Any]:
            with self.lock:
                started = time.monotonic()
                reply = fn(body)
            log.debug("%s in %.1f ms", path, (time.monotonic() - started) * 1e3)
            return reply
        return call

    def reconcile_when_ready(self, poll: float = 0.25) -> None:
        """Wait for the daemon, then reconcile the start-up snapshot (in a thread)."""
        def run() -> None:
            while not self._stop.is_set():
                if self.engine.ping():
                    try:
                        attached = self.engine.attached(DRIVER_NAME)
                        with self.lock:
                            done = reconcile.reconcile(self.ds, self.ipam.ipam, self._held,
                                                       attached)
                        for network_id, endpoint_id in done.follow:
                            self.labels.follow(network_id, endpoint_id)
                        return
                    except GinghamError as exc:
                        log.warning("reconcile with the Docker daemon failed, retrying: %s",
                                    exc)
                self._stop.wait(poll)
        threading.Thread(target=run, name="reconcile", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.labels.stop()


def serve(ds: Datastore, node: str, socket_path: Path, engine: Engine, run_dir: Path,
          stop: threading.Event) -> None:
    """Serve until ``stop`` is set."""
    plugin = Plugin(ds, node, engine, run_dir)
    server = PluginServer(socket_path, plugin.routes())
    server.start()
    plugin.reconcile_when_ready()
    log.info("gingham Docker driver for node %s on %s", node, socket_path)
    # Ready for systemd (Type=notify) once the socket answers: Docker finds the plugin
    # by that file, and the start-up reconcile waits for the daemon on its own thread.
    notifier = Notifier()
    notifier.update(True, f"ready: serving Docker on {socket_path}")
    try:
        stop.wait()
    finally:
        notifier.stopping()
        plugin.stop()
        server.close()
