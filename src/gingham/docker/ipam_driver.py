"""libnetwork's remote IPAM API over gingham IPAM.

Pools are not state: a pool ID spells out what it stands for, so a plugin
restart loses nothing and "the same pool gets the same ID" holds by
construction. ``gingham|0.0.0.0/0|`` (or ``::/0``) stands for every enabled
gingham IPPool of that family; ``gingham|<subnet>|<ip-range>`` for a
``--subnet`` (which must lie in an IPPool) and its optional ``--ip-range``.

Every address comes from the same allocator as CNI, with block affinity to
this node, under a handle ``libnetwork.<random>``: ReleaseAddress frees only
addresses held by such a handle. The network's gateway is the on-link
169.254.1.1 (fe80::ecee:eeff:feee:eeee for IPv6) every workload routes
through, never an address a workload could be given.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from typing import Any

from gingham.cni.plumbing import GATEWAY_V4, GATEWAY_V6
from gingham.datastore.base import Datastore
from gingham.errors import DockerError, GinghamError
from gingham.ipam import IPAM
from gingham.ipam.info import read_pools, who_holds

LOCAL_SPACE = "GinghamLocal"
GLOBAL_SPACE = "GinghamGlobal"
HANDLE_PREFIX = "libnetwork."
GATEWAY_OPTION = "RequestAddressType"
GATEWAY_REQUEST = "com.docker.network.gateway"
MAC_OPTION = "com.docker.network.endpoint.macaddress"  # sent only to drivers that ask
_ID_PREFIX = "gingham"
_ANY = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}
GATEWAYS = {4: ipaddress.ip_address(GATEWAY_V4), 6: ipaddress.ip_address(GATEWAY_V6)}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Pool:
    cidr: Network
    ip_range: Network | None = None

    @property
    def pool_id(self) -> str:
        return f"{_ID_PREFIX}|{self.cidr}|{self.ip_range or ''}"

    @property
    def any_pool(self) -> bool:
        return self.cidr.prefixlen == 0

    @property
    def allocate_in(self) -> Network | None:
        return None if self.any_pool else (self.ip_range or self.cidr)

    @staticmethod
    def parse(pool_id: object) -> Pool:
        parts = pool_id.split("|") if isinstance(pool_id, str) else []
        try:
            if len(parts) != 3 or parts[0] != _ID_PREFIX:
                raise ValueError
            cidr = ipaddress.ip_network(parts[1])
            ip_range = ipaddress.ip_network(parts[2]) if parts[2] else None
        except ValueError:
            raise DockerError(f"PoolID {pool_id!r} is not a gingham pool") from None
        return Pool(cidr, ip_range)


def _network(value: object, field: str) -> Network:
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise DockerError(f"{field} {value!r} is not a CIDR") from None


def _no_options(body: dict[str, Any], allowed: frozenset[str] = frozenset()) -> dict[str, str]:
    options = body.get("Options") or {}
    if not isinstance(options, dict):
        raise DockerError("Options is not an object")
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise DockerError(f"gingham IPAM has no option {', '.join(map(repr, unknown))}")
    return options


class IpamDriver:
    """The ``IpamDriver.*`` calls. Not thread-safe: the plugin serialises calls."""

    def __init__(self, ds: Datastore, node: str) -> None:
        self.ds = ds
        self.node = node
        self.ipam = IPAM(ds, node)

    def capabilities(self, _body: dict[str, Any]) -> dict[str, Any]:
        return {"RequiresMACAddress": False}

    def address_spaces(self, _body: dict[str, Any]) -> dict[str, Any]:
        return {"LocalDefaultAddressSpace": LOCAL_SPACE,
                "GlobalDefaultAddressSpace": GLOBAL_SPACE}

    def request_pool(self, body: dict[str, Any]) -> dict[str, Any]:
        space = body.get("AddressSpace")
        if space not in (LOCAL_SPACE, GLOBAL_SPACE):
            raise DockerError(f"AddressSpace {space!r} is not gingham's "
                              f"({LOCAL_SPACE} or {GLOBAL_SPACE})")
        _no_options(body)
        pools, _unreadable = read_pools(self.ds)
        enabled = [p for p in pools if not p.disabled]
        if not body.get("Pool"):
            if body.get("SubPool"):
                raise DockerError("--ip-range needs --subnet")
            version = 6 if body.get("V6") else 4
            if not any(p.version == version for p in enabled):
                raise DockerError(f"no enabled IPv{version} IPPool: create one "
                                  "(gingham apply) before the network")
            pool = Pool(_ANY[version])
        else:
            cidr = _network(body["Pool"], "--subnet")
            homes = [p for p in pools if p.version == cidr.version
                     and cidr.subnet_of(p.cidr)]  # type: ignore[arg-type]
            if not homes:
                raise DockerError(f"--subnet {cidr} lies in no gingham IPPool "
                                  f"(pools: {', '.join(str(p.cidr) for p in pools) or 'none'})")
            if all(p.disabled for p in homes):
                raise DockerError(f"--subnet {cidr} lies in disabled IPPool {homes[0].cidr}")
            ip_range = _network(body["SubPool"], "--ip-range") if body.get("SubPool") else None
            if ip_range is not None and not (ip_range.version == cidr.version
                                             and ip_range.subnet_of(cidr)):  # type: ignore[arg-type]
                raise DockerError(f"--ip-range {ip_range} is not inside --subnet {cidr}")
            pool = Pool(cidr, ip_range)
        return {"PoolID": pool.pool_id, "Pool": str(pool.cidr), "Data": {}}

    def release_pool(self, body: dict[str, Any]) -> dict[str, Any]:
        Pool.parse(body.get("PoolID"))  # nothing is held for a pool itself
        return {}

    def request_address(self, body: dict[str, Any]) -> dict[str, Any]:
        pool = Pool.parse(body.get("PoolID"))
        options = _no_options(body, frozenset({GATEWAY_OPTION, MAC_OPTION}))
        version = pool.cidr.version
        bits = pool.cidr.max_prefixlen
        wanted = body.get("Address") or ""
        if options.get(GATEWAY_OPTION) == GATEWAY_REQUEST:
            gateway = GATEWAYS[version]
            if wanted and ipaddress.ip_address(wanted) != gateway:
                raise DockerError(f"--gateway {wanted}: gingham workloads route through "
                                  f"{gateway} on their own link; leave --gateway out")
            return {"Address": f"{gateway}/{bits}", "Data": {}}
        handle = HANDLE_PREFIX + uuid.uuid4().hex
        if wanted:
            try:
                ip = ipaddress.ip_address(wanted)
            except ValueError:
                raise DockerError(f"--ip {wanted!r} is not an address") from None
            within = pool.allocate_in
            if ip.version != version or (within is not None and ip not in within):
                raise DockerError(f"--ip {ip} is outside the network's "
                                  f"{within or 'IPv' + str(version)} range")
            self.ipam.assign(ip, handle, {"host": self.node})
            return {"Address": f"{ip}/{bits}", "Data": {}}
        within = pool.allocate_in
        if within is None:
            got = self.ipam.allocate(handle, {"host": self.node}, num_v4=int(version == 4),
                                     num_v6=int(version == 6))[0]
        else:
            got = self.ipam.allocate_within(handle, within, {"host": self.node})
        return {"Address": f"{got.ip}/{bits}", "Data": {}}

    def release_address(self, body: dict[str, Any]) -> dict[str, Any]:
        Pool.parse(body.get("PoolID"))
        text = str(body.get("Address") or "").split("/")[0]
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise DockerError(f"Address {text!r} is not an address") from None
        if ip in GATEWAYS.values():
            return {}
        holder = who_holds(self.ds, ip)
        if holder is None:
            return {}  # released already (a retry, or reconciled while Docker was away)
        if not holder.handle.startswith(HANDLE_PREFIX):
            raise DockerError(f"{ip} is held by {holder.handle!r}, not by the Docker driver: "
                              "not released")
        self.release_handle(holder.handle)
        return {}

    def release_handle(self, handle: str) -> None:
        try:
            self.ipam.release_by_handle(handle)
        except GinghamError as exc:
            raise DockerError(f"releasing {handle}: {exc}") from None
