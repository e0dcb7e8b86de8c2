"""The veth of a Docker endpoint, both ends in this (the daemon's) network namespace.

Docker moves the container end (``SrcName``) into the sandbox itself and names
and addresses it there; the driver makes the pair and the host end as the CNI
path does (workload prefix, MAC ee:ee:ee:ee:ee:ee, proxy ARP, a route per
address with gingham's protocol). Deleting the host end deletes the pair,
wherever Docker has put the other end.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os

from gingham.cni.plumbing import HOST_MAC, host_sysctls, veth_name
from gingham.cni.rtnl import RT_SCOPE_LINK, RouteSocket
from gingham.errors import DockerError
from gingham.names import RTPROT_GINGHAM

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def host_interface(endpoint_id: str) -> str:
    return veth_name("libnetwork", endpoint_id)


def container_interface(endpoint_id: str) -> str:
    """``SrcName``: unique per endpoint, 15 characters at most."""
    return "ghd" + hashlib.sha1(endpoint_id.encode()).hexdigest()[:11]


def create(endpoint_id: str, addresses: list[IPAddress], mtu: int) -> str:
    """Make the pair and configure the host end; the container end's name. All or nothing."""
    host_if, src = host_interface(endpoint_id), container_interface(endpoint_id)
    try:
        with RouteSocket.open() as here:
            for name in (host_if, src):  # left by a Join that never got its Leave
                here.delete_link(name)
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                here.add_veth(src, host_if, mtu, HOST_MAC, own)
            finally:
                os.close(own)
            try:
                host_sysctls(host_if, any(a.version == 6 for a in addresses))
                link = here.link(host_if)
                if link is None:
                    raise DockerError(f"{host_if} vanished while being set up")
                here.set_up(link.index)
                for a in addresses:
                    here.add_route(a, link.index, protocol=RTPROT_GINGHAM, replace=True,
                                   scope=RT_SCOPE_LINK if a.version == 4 else 0,
                                   version=a.version)
            except BaseException:
                with contextlib.suppress(OSError):
                    here.delete_link(host_if)
                raise
    except OSError as exc:
        raise DockerError(f"cannot create {host_if}/{src}: {exc}") from None
    return src


def delete(endpoint_id: str) -> bool:
    """Remove the pair if it still exists (idempotent): True if something was removed."""
    removed = False
    try:
        with RouteSocket.open() as here:
            for name in (host_interface(endpoint_id), container_interface(endpoint_id)):
                removed = here.delete_link(name) or removed
    except OSError as exc:
        raise DockerError(f"cannot delete {host_interface(endpoint_id)}: {exc}") from None
    return removed
