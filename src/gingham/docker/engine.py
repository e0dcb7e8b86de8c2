"""The few Docker Engine API calls the driver makes, over the daemon's unix socket.

Docker tells a network driver neither the network's name nor the container's
labels; the driver reads them here, and after a restart asks which endpoints
still exist. Errors become ``DockerError`` naming the call.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

from gingham.errors import DockerError

DEFAULT_HOST = "unix:///run/docker.sock"
API_VERSION = "v1.41"  # Docker 20.10


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def socket_path(host: str) -> str:
    """The socket of a ``unix://PATH`` Docker host (the only kind the driver talks to)."""
    if not host.startswith("unix://") or not host[len("unix://"):].startswith("/"):
        raise DockerError(f"--docker-host {host!r}: only unix:///absolute/path is supported")
    return host[len("unix://"):]


@dataclass(frozen=True, slots=True)
class Attached:
    """One endpoint the daemon has on a network: which container, which addresses."""

    network_id: str
    endpoint_id: str
    container_id: str
    addresses: tuple[str, ...]  # without prefix


class Engine:
    def __init__(self, host: str = DEFAULT_HOST, timeout: float = 10.0) -> None:
        self._path = socket_path(host)
        self._timeout = timeout

    def _get(self, path: str, *, missing_ok: bool = False) -> Any:
        conn = _UnixConnection(self._path, self._timeout)
        try:
            conn.request("GET", f"/{API_VERSION}{path}")
            resp = conn.getresponse()
            body = resp.read()
        except OSError as exc:
            raise DockerError(f"Docker daemon at {self._path}: GET {path}: {exc}") from None
        finally:
            conn.close()
        if resp.status == 404 and missing_ok:
            return None
        if resp.status != 200:
            raise DockerError(f"Docker daemon at {self._path}: GET {path}: HTTP {resp.status} "
                              f"{body[:200].decode(errors='replace')}")
        try:
            return json.loads(body)
        except ValueError:
            raise DockerError(f"Docker daemon at {self._path}: GET {path}: not JSON") from None

    def ping(self) -> bool:
        try:
            conn = _UnixConnection(self._path, self._timeout)
            conn.request("GET", "/_ping")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def network(self, network_id: str) -> dict[str, Any] | None:
        """``docker network inspect``; None if the daemon has no such network."""
        got = self._get(f"/networks/{urllib.parse.quote(network_id, safe='')}", missing_ok=True)
        return got if isinstance(got, dict) else None

    def network_name(self, network_id: str) -> str | None:
        net = self.network(network_id)
        name = net.get("Name") if net else None
        return name if isinstance(name, str) else None

    def container_labels(self, container_id: str) -> dict[str, str] | None:
        """The container's labels; None if it is gone."""
        got = self._get(f"/containers/{urllib.parse.quote(container_id, safe='')}/json",
                        missing_ok=True)
        if not isinstance(got, dict):
            return None
        labels = (got.get("Config") or {}).get("Labels") or {}
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    def attached(self, driver: str) -> list[Attached]:
        """Every endpoint of every network of ``driver``, as the daemon sees it now."""
        query = urllib.parse.quote(json.dumps({"driver": [driver]}))
        nets = self._get(f"/networks?filters={query}")
        out: list[Attached] = []
        for summary in nets if isinstance(nets, list) else []:
            net = self.network(str(summary.get("Id", "")))
            if net is None or net.get("Driver") != driver:
                continue
            for cid, ep in (net.get("Containers") or {}).items():
                addrs = tuple(a.split("/")[0] for a in (ep.get("IPv4Address"),
                                                        ep.get("IPv6Address")) if a)
                out.append(Attached(net["Id"], str(ep.get("EndpointID", "")), cid, addrs))
        return out
