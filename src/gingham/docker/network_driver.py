"""libnetwork's remote network API: WorkloadEndpoints in the datastore, veths on the host.

The Docker network's name is the endpoint's namespace (its profile
``kns.<name>`` applies, as for a Kubernetes namespace), so a network of the
same name on every host is one network. Docker sends neither that name nor
the container's labels: the name is read from the daemon at CreateEndpoint,
the labels once the container has started (``labels``).

Fail closed until the labels are known: CreateEndpoint keeps the endpoint as
a *pending* record (``keys.docker_pending_key``), which agents ignore, and
the WorkloadEndpoint is written only with the container's labels on it. Until
then the container's veth is a workload interface no agent knows, and agents
drop its traffic both ways; from then on the node agent programs policy and
routes as for any CNI workload, with the policies that select the labels
from the first packet.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gingham.cni.endpoints import endpoint_name, namespace_doc, namespace_key
from gingham.cni.plumbing import GATEWAY_V4, GATEWAY_V6
from gingham.datastore import keys
from gingham.datastore.base import Datastore
from gingham.datastore.retry import Backoff
from gingham.docker import veth
from gingham.docker.engine import Engine
from gingham.docker.ipam_driver import GLOBAL_SPACE, HANDLE_PREFIX, LOCAL_SPACE
from gingham.errors import AlreadyExists, DockerError, NotFound, RevisionConflict
from gingham.hostfiles import mtu_path, read_mtu
from gingham.ipam.info import who_holds
from gingham.model.meta import check_namespace_name
from gingham.names import NAMESPACE_PROFILE_PREFIX

log = logging.getLogger(__name__)

ORCHESTRATOR = "libnetwork"
NETWORK_ID_ANNOTATION = "libnetwork.gingham.dev/network-id"
GENERIC_OPTIONS = "com.docker.network.generic"
PORT_MAP = "com.docker.network.portmap"
DEFAULT_MTU = 1450
# container side of the pair after Docker moves it in: eth0, eth1, ...
DST_PREFIX = "eth"


def endpoint_key(node: str, namespace: str, endpoint_id: str) -> str:
    name = endpoint_name(node, ORCHESTRATOR, ORCHESTRATOR, endpoint_id)
    return keys.resource_key("WorkloadEndpoint", name, namespace)


def _mac(endpoint_id: str) -> str:
    """A locally administered unicast MAC, stable for the endpoint."""
    raw = bytearray(hashlib.sha1(endpoint_id.encode()).digest()[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def _ids(body: dict[str, Any], *names: str) -> list[str]:
    out = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value or len(value) > 128 \
                or not value.isalnum():
            raise DockerError(f"{name} {value!r} is not a Docker ID")
        out.append(value)
    return out


class NetworkDriver:
    """The ``NetworkDriver.*`` calls. Not thread-safe: the plugin serialises calls."""

    def __init__(self, ds: Datastore, node: str, engine: Engine, run_dir: Path,
                 on_join: Callable[[str, str], None] = lambda _n, _e: None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ds = ds
        self.node = node
        self.engine = engine
        self.run_dir = run_dir
        self.on_join = on_join  # (network id, endpoint id): whose labels to follow
        self.backoff = Backoff(sleep=sleep)
        self._names: dict[str, str] = {}  # network id -> name (fixed for the id's life)

    # -- registration, networks ---------------------------------------------------------

    def capabilities(self, _body: dict[str, Any]) -> dict[str, Any]:
        # each host's daemon has its own networks; a network of the same name on every
        # host is one gingham namespace
        return {"Scope": "local", "ConnectivityScope": "global"}

    def create_network(self, body: dict[str, Any]) -> dict[str, Any]:
        _ids(body, "NetworkID")
        for family in ("IPv4Data", "IPv6Data"):
            for data in body.get(family) or []:
                if data.get("AddressSpace") not in (LOCAL_SPACE, GLOBAL_SPACE):
                    raise DockerError("a gingham network takes its addresses from gingham "
                                      "IPAM: add --ipam-driver gingham")
                if data.get("AuxAddresses"):
                    raise DockerError("--aux-address is not supported on gingham networks")
        options = body.get("Options") or {}
        generic = options.get(GENERIC_OPTIONS) or {}
        if generic:
            raise DockerError("gingham networks take no driver options (-o): "
                              f"{', '.join(sorted(map(str, generic)))}")
        return {}

    def delete_network(self, body: dict[str, Any]) -> dict[str, Any]:
        [network_id] = _ids(body, "NetworkID")
        self._names.pop(network_id, None)
        return {}

    def _namespace(self, network_id: str) -> str:
        name = self._names.get(network_id)
        if name is None:
            found = self.engine.network_name(network_id)
            if found is None:
                raise DockerError(f"the Docker daemon has no network {network_id}")
            try:
                check_namespace_name(found)
            except ValueError as exc:
                raise DockerError(f"Docker network name {found!r} cannot be a gingham "
                                  f"namespace ({exc}); name the network with lower-case "
                                  "letters, digits and '-'") from None
            name = self._names[network_id] = found
        return name

    # -- endpoints -----------------------------------------------------------------------

    def create_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        network_id, endpoint_id = _ids(body, "NetworkID", "EndpointID")
        iface = body.get("Interface") or {}
        addresses = [ipaddress.ip_interface(a).ip
                     for a in (iface.get("Address"), iface.get("AddressIPv6")) if a]
        if not addresses:
            raise DockerError("the endpoint has no address: create the network with "
                              "--ipam-driver gingham")
        for ip in addresses:
            holder = who_holds(self.ds, ip)
            if holder is None or not holder.handle.startswith(HANDLE_PREFIX):
                raise DockerError(f"{ip} was not handed out by gingham IPAM: create the "
                                  "network with --ipam-driver gingham")
        namespace = self._namespace(network_id)
        mac = iface.get("MacAddress") or _mac(endpoint_id)
        key = endpoint_key(self.node, namespace, endpoint_id)
        doc = {
            "apiVersion": "projectcalico.org/v3",
            "kind": "WorkloadEndpoint",
            "metadata": {"name": key.rsplit("/", 1)[1], "namespace": namespace, "labels": {},
                         "annotations": {NETWORK_ID_ANNOTATION: network_id}},
            "spec": {
                "orchestrator": ORCHESTRATOR, "workload": ORCHESTRATOR, "node": self.node,
                "endpoint": endpoint_id, "interfaceName": veth.host_interface(endpoint_id),
                "mac": mac, "ipNetworks": [f"{ip}/{ip.max_prefixlen}" for ip in addresses],
                "profiles": [NAMESPACE_PROFILE_PREFIX + namespace],
            },
        }
        ns_key = namespace_key(namespace)
        if self.ds.get(ns_key) is None:
            with contextlib.suppress(AlreadyExists):
                self.ds.create(ns_key, dict(namespace_doc(namespace)))
        if self.ds.get(key) is None:  # else Docker asks again for one that has its labels
            self._put(keys.docker_pending_key(self.node, endpoint_id), doc)
        # a MAC only when Docker sent none, never the address Docker set
        return {"Interface": {} if iface.get("MacAddress") else {"MacAddress": mac}}

    def _put(self, key: str, doc: dict[str, Any]) -> None:
        def step() -> None:
            current = self.ds.get(key)
            try:
                if current is None:
                    self.ds.create(key, doc)
                else:
                    self.ds.update(key, doc, revision=current.mod_revision)
            except (AlreadyExists, NotFound):
                raise RevisionConflict(key) from None

        self.backoff.run(key, step)

    def _stored(self, network_id: str, endpoint_id: str) -> dict[str, Any]:
        """The endpoint as a WorkloadEndpoint document, pending or written."""
        for key in (keys.docker_pending_key(self.node, endpoint_id),
                    endpoint_key(self.node, self._namespace(network_id), endpoint_id)):
            kv = self.ds.get(key)
            if kv is not None and isinstance(kv.value, dict):
                return kv.value
        raise DockerError(f"no endpoint {endpoint_id} on node {self.node}")

    def oper_info(self, body: dict[str, Any]) -> dict[str, Any]:
        network_id, endpoint_id = _ids(body, "NetworkID", "EndpointID")
        spec = self._stored(network_id, endpoint_id).get("spec") or {}
        return {"Value": {"hostInterface": spec.get("interfaceName", ""),
                          "addresses": spec.get("ipNetworks", [])}}

    def delete_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        network_id, endpoint_id = _ids(body, "NetworkID", "EndpointID")
        veth.delete(endpoint_id)
        for key in (endpoint_key(self.node, self._namespace(network_id), endpoint_id),
                    keys.docker_pending_key(self.node, endpoint_id)):
            with contextlib.suppress(NotFound):
                self.ds.delete(key)
        return {}

    # -- sandboxes -----------------------------------------------------------------------

    def join(self, body: dict[str, Any]) -> dict[str, Any]:
        network_id, endpoint_id = _ids(body, "NetworkID", "EndpointID")
        doc = self._stored(network_id, endpoint_id)
        addresses = [ipaddress.ip_interface(n).ip for n in doc["spec"]["ipNetworks"]]
        mtu = read_mtu(mtu_path(self.node, self.run_dir)) or DEFAULT_MTU
        src = veth.create(endpoint_id, addresses, mtu)
        reply: dict[str, Any] = {"InterfaceName": {"SrcName": src, "DstPrefix": DST_PREFIX},
                                 "StaticRoutes": [], "DisableGatewayService": False}
        if any(a.version == 4 for a in addresses):
            reply["Gateway"] = GATEWAY_V4
            reply["StaticRoutes"].append({"Destination": f"{GATEWAY_V4}/32", "RouteType": 1})
        if any(a.version == 6 for a in addresses):
            reply["GatewayIPv6"] = GATEWAY_V6
        self.on_join(network_id, endpoint_id)
        return reply

    def leave(self, body: dict[str, Any]) -> dict[str, Any]:
        _ids(body, "NetworkID", "EndpointID")
        veth.delete(body["EndpointID"])
        return {}

    def program_external(self, body: dict[str, Any]) -> dict[str, Any]:
        _ids(body, "NetworkID", "EndpointID")
        if (body.get("Options") or {}).get(PORT_MAP):
            raise DockerError("publishing ports (-p) is not supported on gingham networks: "
                              "a container is reachable at its own address")
        return {}

    def revoke_external(self, body: dict[str, Any]) -> dict[str, Any]:
        return {}

    def discover(self, _body: dict[str, Any]) -> dict[str, Any]:
        return {}
