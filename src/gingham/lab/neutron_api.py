"""A small client of the Neutron API, for the lab, its tests and the benchmarks.

JSON over ``http.client`` (standard library only: it also runs where httpx is
not installed). The lab's server runs with ``auth_strategy = noauth``, which
makes every request an admin one and answers 400 to an ``X-Project-Id``
header: the project goes in request bodies instead (``project_id``).
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from gingham.errors import LabError

DEFAULT_PROJECT = "gingham-lab"


class NeutronAPIError(LabError):
    """A request Neutron refused (``status`` is its HTTP status) or could not be sent (0)."""

    def __init__(self, message: str, status: int = 0) -> None:
        self.status = status
        super().__init__(message)


class NeutronAPI:
    """Networks, subnets, ports, security groups and their rules at ``url`` (``http://host:port``)."""

    def __init__(self, url: str, project_id: str = DEFAULT_PROJECT, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise LabError(f"Neutron URL {url!r} is not http://HOST:PORT")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 80
        self.project_id = project_id
        self.timeout = timeout

    # -- transport --------------------------------------------------------------------

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """One request to ``/v2.0{path}``; the decoded JSON answer (None for 204)."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, f"/v2.0{path}", body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:  # TimeoutError is an OSError
            raise NeutronAPIError(
                f"{method} {path}: Neutron at {self.url} did not answer: {exc}") from None
        finally:
            conn.close()
        if resp.status >= 300:
            raise NeutronAPIError(f"{method} {path}: {resp.status} {_message(raw)}", resp.status)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise NeutronAPIError(f"{method} {path}: the answer is not JSON: {raw[:200]!r}",
                                  resp.status) from None

    def ready(self) -> bool:
        """Whether the server answers a list of networks."""
        try:
            self.request("GET", "/networks?limit=1")
        except NeutronAPIError:
            return False
        return True

    def _create(self, kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        body = {"project_id": self.project_id, **fields}
        out: dict[str, Any] = self.request("POST", f"/{kind}s", {kind: body})[kind]
        return out

    def _list(self, kind: str, **filters: str) -> list[dict[str, Any]]:
        query = f"?{urllib.parse.urlencode(filters)}" if filters else ""
        out: list[dict[str, Any]] = self.request("GET", f"/{kind}s{query}")[f"{kind}s"]
        return out

    # -- resources ----------------------------------------------------------------------

    def create_network(self, name: str, **fields: Any) -> dict[str, Any]:
        return self._create("network", {"name": name, **fields})

    def create_subnet(self, network_id: str, cidr: str, *, ip_version: int = 4,
                      enable_dhcp: bool = False, **fields: Any) -> dict[str, Any]:
        return self._create("subnet", {"network_id": network_id, "cidr": cidr,
                                       "ip_version": ip_version, "enable_dhcp": enable_dhcp,
                                       **fields})  # fmt: skip

    def create_security_group(self, name: str, **fields: Any) -> dict[str, Any]:
        return self._create("security_group", {"name": name, **fields})

    def create_security_group_rule(self, security_group_id: str, direction: str,
                                   **fields: Any) -> dict[str, Any]:
        """A rule: ``direction`` ingress or egress; ``protocol``, ``port_range_min``,
        ``port_range_max``, ``remote_ip_prefix``, ``remote_group_id``, ``ethertype`` as Neutron
        names them."""
        return self._create("security_group_rule", {"security_group_id": security_group_id,
                                                    "direction": direction, **fields})  # fmt: skip

    def create_port(self, network_id: str, *, host: str | None = None,
                    security_groups: list[str] | None = None, **fields: Any) -> dict[str, Any]:
        """A port; with ``host``, bound to that host (``binding:host_id``), as Nova asks."""
        body: dict[str, Any] = {"network_id": network_id, **fields}
        if host is not None:
            body["binding:host_id"] = host
        if security_groups is not None:
            body["security_groups"] = security_groups
        return self._create("port", body)

    def update_port(self, port_id: str, **fields: Any) -> dict[str, Any]:
        out: dict[str, Any] = self.request("PUT", f"/ports/{_id(port_id)}", {"port": fields})["port"]
        return out

    def get(self, kind: str, resource_id: str) -> dict[str, Any]:
        """``kind`` network, subnet, port, security_group or security_group_rule."""
        out: dict[str, Any] = self.request("GET", f"/{kind}s/{_id(resource_id)}")[kind]
        return out

    def get_port(self, port_id: str) -> dict[str, Any]:
        return self.get("port", port_id)

    def delete(self, kind: str, resource_id: str) -> None:
        self.request("DELETE", f"/{kind}s/{_id(resource_id)}")

    def networks(self, **filters: str) -> list[dict[str, Any]]:
        return self._list("network", **filters)

    def subnets(self, **filters: str) -> list[dict[str, Any]]:
        return self._list("subnet", **filters)

    def ports(self, **filters: str) -> list[dict[str, Any]]:
        return self._list("port", **filters)

    def security_groups(self, **filters: str) -> list[dict[str, Any]]:
        return self._list("security_group", **filters)

    def security_group_rules(self, **filters: str) -> list[dict[str, Any]]:
        return self._list("security_group_rule", **filters)


def _id(resource_id: str) -> str:
    # IDs go into the path: nothing in them may change which resource is meant.
    if not resource_id or not all(c.isalnum() or c in "-_" for c in resource_id):
        raise LabError(f"{resource_id!r} is not a Neutron resource ID")
    return resource_id


def _message(raw: bytes) -> str:
    """Neutron's own words from an error body (``{"NeutronError": {"message": …}}``)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace").strip()[:300]
    if isinstance(doc, dict):
        err = doc.get("NeutronError")
        if isinstance(err, dict) and err.get("message"):
            return f"{err.get('type', '')}: {err['message']}".lstrip(": ")
        if isinstance(err, str):
            return err
    return json.dumps(doc)[:300]
