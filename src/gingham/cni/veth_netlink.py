"""Workload veth plumbing over netlink, in-process: what the agent does for a CNI ADD.

The same kernel state as ``plumbing.py`` (DESIGN.md section 4; the layout is
described there), without running ``ip`` or ``nsenter``:

- one RTM_NEWLINK from the host's namespace makes the pair, the workload's
  end placed straight into its namespace (IFLA_NET_NS_FD) and the host's end
  here, so a crash can leave both ends or neither;
- inside the workload's namespace, a netlink socket opened by the calling
  thread between two ``setns`` calls, into the workload's namespace and back
  (a socket stays in the namespace it was opened in); a thread that cannot
  come back raises ``StrandedThread`` and must end;
- host-side sysctls through /proc/sys, written by the calling thread, which
  is in the host's namespace;
- setup returns once the kernel reports both ends operational. Bringing a
  link up returns before the kernel's link watcher has attached its queueing
  discipline (a work item, late on a busy host), and until then the link
  drops what it is asked to send: the host's first ARP request for the new
  workload, say, which is then retried only a second later. Through the
  agent, traffic can reach a new workload within milliseconds of ADD (its
  endpoint is programmed from the agent's own write), so the wait matters:
  without it about 2 % of new workloads answered their first connection a
  second late in bench/ttfr.py.

Deleting a veth costs the kernel 10-20 ms (it waits for an RCU grace period
before it lets the device go), most of a CNI DEL. So DEL's ``teardown`` takes
the host's end down, which stops its traffic and drops its IPv4 routes at
once, and hands the deletion to a ``Reaper`` thread, which deletes the link *by
index*: a new veth that has taken the name meanwhile (the same container
added again) is never touched. An ADD that finds the name still there
deletes it itself first, as it does any left-over.

``NetlinkPlumbing`` is not shared between threads: each agent worker has its
own (its host socket is opened on first use, in that worker's thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import logging
import os
import queue
import threading
import time

from gingham.cni.plumbing import (
    GATEWAY_V4,
    GATEWAY_V6,
    HOST_MAC,
    Macs,
    check_ifname,
    check_netns_path,
    host_sysctls,
    interface_exists,
    parse_ips,
)
from gingham.cni.protocol import ERR_INVALID_CONFIG, ERR_IO
from gingham.cni.rtnl import RT_SCOPE_LINK, NetlinkError, RouteSocket
from gingham.errors import CNIError
from gingham.names import RTPROT_GINGHAM

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
_libc: ctypes.CDLL | None = None
# How long setup waits for the kernel to finish bringing the pair up (then it goes on:
# the link works, a little later).
OPERATIONAL_WAIT = 1.0


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


class StrandedThread(BaseException):
    """This thread could not return to its own network namespace: it must end now (not an
    Exception, so that no handler meant for a failed command carries on with it)."""


def socket_in(netns_fd: int, home_fd: int) -> RouteSocket:
    """A netlink socket in the network namespace of ``netns_fd``, opened by the calling
    thread, which enters that namespace for the moment it takes and returns to
    ``home_fd``'s (its own; StrandedThread if it cannot)."""
    _setns(netns_fd)
    try:
        return RouteSocket.open()
    finally:
        try:
            _setns(home_fd)
        except OSError as exc:
            raise StrandedThread(f"cannot return to the host's network namespace: {exc}") \
                from exc


def _failed(what: str, exc: OSError) -> CNIError:
    return CNIError(ERR_IO, f"{what}: {exc.strerror or exc}", str(exc))


class Reaper:
    """Deletes links by index in a thread of its own, in the namespace it was started in."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[int, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="cni-reaper", daemon=True)
        self._thread.start()

    def delete(self, index: int, name: str) -> None:
        self._queue.put((index, name))

    def _run(self) -> None:
        with RouteSocket.open() as here:
            while (item := self._queue.get()) is not None:
                index, name = item
                try:
                    here.delete_index(index)
                except OSError as exc:
                    log.warning("cannot delete %s (index %d): %s", name, index, exc)

    def close(self, timeout: float = 10.0) -> None:
        """Finish the deletions asked for, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)


class NetlinkPlumbing:
    """``host.Plumbing`` over netlink, for one thread of the agent. With a ``reaper``,
    ``teardown`` leaves the kernel's slow part of deleting the link to it."""

    def __init__(self, reaper: Reaper | None = None) -> None:
        self._host: RouteSocket | None = None
        self._home: int | None = None  # the thread's own network namespace
        self._reaper = reaper

    def _here(self) -> RouteSocket:
        if self._host is None:
            self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            self._host = RouteSocket.open()
        return self._host

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
            self._host = None
        if self._home is not None:
            os.close(self._home)
            self._home = None

    def exists(self, host_if: str) -> bool:
        return interface_exists(host_if)

    def teardown(self, host_if: str, *, wait: bool = True) -> bool:
        """Delete the workload's veth (its routes go with it). Idempotent: False if absent.

        ``wait=False`` (DEL, whose runtime is waiting): the link goes down here, which
        stops its traffic, and the reaper deletes it."""
        if not host_if:
            return False  # an endpoint record without an interface: nothing to remove
        check_ifname(host_if, "host interface name")
        here = self._here()
        try:
            if wait or self._reaper is None:
                return here.delete_link(host_if)
            link = here.link(host_if)
            if link is None:
                return False
            here.set_down(link.index)
        except OSError as exc:
            raise _failed(f"cannot delete {host_if}", exc) from None
        self._reaper.delete(link.index, host_if)
        return True

    def setup(self, netns: str, host_if: str, cidrs: list[str], mtu: int,
              container_ifname: str) -> Macs:
        """Create and configure the workload's veth; on failure nothing is left behind."""
        check_netns_path(netns)
        check_ifname(host_if, "host interface name")
        check_ifname(container_ifname, "container interface name")
        if not isinstance(mtu, int) or not 68 <= mtu <= 65535:
            raise CNIError(ERR_INVALID_CONFIG, f"invalid mtu {mtu!r} (68-65535)")
        addrs = parse_ips(cidrs)
        here = self._here()
        try:
            # left over from a container of the same name whose DEL never came
            here.delete_link(host_if)
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _failed(f"cannot prepare {host_if} in {netns}", exc) from None
        created = False
        assert self._home is not None
        try:
            with socket_in(fd, self._home) as inside:
                here.add_veth(container_ifname, host_if, mtu, HOST_MAC, fd)
                created = True
                mac, index = self._inside(inside, container_ifname, addrs)
                host_sysctls(host_if, any(a.version == 6 for a in addrs))
                host_index = self._host_side(here, host_if, addrs)
                _operational([(here, host_index), (inside, index)])
        except BaseException as exc:
            if created or interface_exists(host_if):
                with contextlib.suppress(OSError):  # the first error wins
                    here.delete_link(host_if)
            if isinstance(exc, NetlinkError | OSError) and not isinstance(exc, CNIError):
                raise _failed(f"cannot set up {host_if} for {netns}", exc) from None
            raise
        finally:
            os.close(fd)
        return {"host_mac": HOST_MAC, "container_mac": mac}

    @staticmethod
    def _inside(inside: RouteSocket, ifname: str,
                addrs: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]) -> tuple[str, int]:
        link = inside.link(ifname)
        if link is None:
            raise CNIError(ERR_IO, f"{ifname} vanished from the workload's namespace")
        for a in addrs:
            inside.add_address(link.index, a.ip, nodad=a.version == 6)
        inside.set_up(link.index)
        if any(a.version == 4 for a in addrs):
            gateway = ipaddress.IPv4Address(GATEWAY_V4)
            inside.add_route(gateway, link.index, scope=RT_SCOPE_LINK)
            inside.add_route(None, link.index, gateway=gateway)
        if any(a.version == 6 for a in addrs):
            inside.add_route(None, link.index, gateway=ipaddress.IPv6Address(GATEWAY_V6),
                             version=6)
        return link.mac, link.index

    @staticmethod
    def _host_side(here: RouteSocket, host_if: str,
                   addrs: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]) -> int:
        link = here.link(host_if)
        if link is None:
            raise CNIError(ERR_IO, f"{host_if} vanished from the host's namespace")
        here.set_up(link.index)
        for a in addrs:
            here.add_route(a.ip, link.index, protocol=RTPROT_GINGHAM, replace=True,
                           scope=RT_SCOPE_LINK if a.version == 4 else 0, version=a.version)
        return link.index


def _operational(links: list[tuple[RouteSocket, int]]) -> None:
    """Wait (at most OPERATIONAL_WAIT) until the kernel reports every link operational."""
    deadline = time.monotonic() + OPERATIONAL_WAIT
    pending = list(links)
    while pending:
        pending = [(sock, index) for sock, index in pending
                   if not ((link := sock.link(index=index)) and link.operational)]
        if not pending:
            return
        if time.monotonic() > deadline:
            log.warning("link(s) %s not operational after %.1f s: going on",
                        [index for _, index in pending], OPERATIONAL_WAIT)
            return
        time.sleep(0.0002)
