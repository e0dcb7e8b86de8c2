"""Kernel settings under /proc/sys, in the caller's (or a named) network namespace.

pyroute2 has no sysctl API; writing /proc/sys directly is cheap. Files under
/proc/sys/net belong to the network namespace of the *thread* that opens
them, so the agent, running inside its host namespace, sets its own host's
values; ``Sysctl(netns=...)`` enters another namespace around each access
(the calling thread only, and back).

Settings are computed as data (``{path: value}``) by the ``*_settings``
functions and applied by :meth:`Sysctl.apply`, which writes only what differs.
:class:`WorkloadSysctlSync` keeps the host side of every programmed workload
interface routing for it: forwarding, proxy ARP for the on-link gateway and the
reverse-path filter the managers want.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from gingham.errors import DataplaneError

log = logging.getLogger(__name__)
_CLONE_NEWNET = 0x40000000

_IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}$")
RP_FILTER = {"off": 0, "strict": 1, "loose": 2}


def _ifname(name: str) -> str:
    if name in ("all", "default"):
        return name
    if not _IFNAME_RE.match(name) or name in (".", ".."):
        raise DataplaneError(f"invalid interface name {name!r}")
    return name


def forwarding_settings(ipv6: bool = True) -> dict[str, str]:
    """Host-wide forwarding (the host routes workload traffic)."""
    out = {"net/ipv4/ip_forward": "1"}
    if ipv6:
        out["net/ipv6/conf/all/forwarding"] = "1"
    return out


def workload_interface_settings(ifname: str, ipv6: bool = False) -> dict[str, str]:
    """A workload's host-side veth: answer ARP for 169.254.1.1 at once, forward.

    ``proxy_arp_pvlan`` stays off: each veth has one workload behind it, so
    there is nobody on the same link to proxy for.
    """
    n = _ifname(ifname)
    out = {
        f"net/ipv4/conf/{n}/forwarding": "1",
        f"net/ipv4/conf/{n}/proxy_arp": "1",
        f"net/ipv4/neigh/{n}/proxy_delay": "0",
    }
    if ipv6:
        out |= {
            f"net/ipv6/conf/{n}/disable_ipv6": "0",
            f"net/ipv6/conf/{n}/forwarding": "1",
            f"net/ipv6/conf/{n}/accept_ra": "0",
            f"net/ipv6/conf/{n}/accept_dad": "0",
        }
    return out


def rp_filter_settings(ifname: str, mode: str) -> dict[str, str]:
    """Reverse-path filter for ``ifname`` (or ``all``/``default``): off, strict or loose."""
    if mode not in RP_FILTER:
        raise DataplaneError(f"rp_filter mode must be one of {sorted(RP_FILTER)}, got {mode!r}")
    return {f"net/ipv4/conf/{_ifname(ifname)}/rp_filter": str(RP_FILTER[mode])}


class Sysctl:
    """Reads and writes /proc/sys (``root`` is a parameter so tests can use a directory).

    ``netns``: a network namespace (name under /run/netns or a path) to read
    and write in instead of the caller's.
    """

    def __init__(self, root: str | Path = "/proc/sys", netns: str | None = None) -> None:
        self.root = Path(root)
        self.netns = netns
        self._depth = 0

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Inside: this thread is in ``netns`` (re-entrant; a no-op without one)."""
        if self.netns is None or self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        libc = ctypes.CDLL(None, use_errno=True)
        path = self.netns if self.netns.startswith("/") else f"/run/netns/{self.netns}"
        try:
            home = open("/proc/thread-self/ns/net", "rb")  # noqa: SIM115 - closed below
            target = open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise DataplaneError(f"cannot open network namespace {path}: {exc}") from exc
        with home, target:
            if libc.setns(target.fileno(), _CLONE_NEWNET) != 0:
                raise DataplaneError(f"cannot enter network namespace {path}: "
                                     f"{os.strerror(ctypes.get_errno())}")
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if libc.setns(home.fileno(), _CLONE_NEWNET) != 0:
                    # this thread would go on in the wrong namespace: nothing is safe now
                    raise SystemExit(f"cannot return from network namespace {path}")

    def interfaces(self) -> set[str]:
        """Names of the interfaces that have IPv4 settings (all of them, normally)."""
        with self.entered():
            try:
                names = os.listdir(self.root / "net/ipv4/conf")
            except OSError as exc:
                raise DataplaneError(f"cannot list interfaces: {exc.strerror or exc}") from exc
        return set(names) - {"all", "default"}

    def _path(self, key: str) -> Path:
        key = key.replace(".", "/") if "/" not in key else key
        if ".." in key.split("/") or key.startswith("/"):
            raise DataplaneError(f"invalid sysctl {key!r}")
        return self.root / key

    def read(self, key: str) -> str:
        try:
            with self.entered():
                return self._path(key).read_text().strip()
        except OSError as exc:
            raise DataplaneError(f"cannot read sysctl {key}: {exc.strerror or exc}") from exc

    def write(self, key: str, value: str | int) -> None:
        try:
            with self.entered():
                self._path(key).write_text(f"{value}\n")
        except OSError as exc:
            raise DataplaneError(
                f"cannot set sysctl {key}={value}: {exc.strerror or exc}"
            ) from exc

    def apply(self, settings: Mapping[str, str | int]) -> dict[str, str]:
        """Write the settings that differ; returns those written (key -> new value).

        Keys are slash paths under /proc/sys (``net/ipv4/ip_forward``); the
        interface part may contain dots, so dotted keys are only for names
        without an interface (``net.ipv4.ip_forward``).
        """
        changed = {}
        with self.entered():
            for key, value in settings.items():
                if self.read(key) != str(value):
                    self.write(key, value)
                    changed[key] = str(value)
        return changed


LOOSE_ALL = ("net.ipv4.conf.all.rp_filter is 2 (loose): the kernel uses the larger of 'all' "
             "and an interface's own value, so strict reverse-path filtering on workload "
             "interfaces has no effect (the nft anti-spoofing still holds); set it to 0 or 1")


class WorkloadSysctlSync:
    """Keeps the IPv4 settings of workload interfaces: forwarding, proxy ARP with no
    delay (``workload_interface_settings``: the workload's on-link gateway
    169.254.1.1 is answered by the host), and the reverse-path filter as the
    managers want it. The CNI path and the Docker driver set the first ones when
    they make the veth; a tap made by someone else (Nova's, for a Neutron port)
    has none of them until the agent programs its endpoint.

    ``sync(desired)`` takes interface -> mode (``strict``/``off``, see
    :attr:`gingham.dataplane.managers.PolicyDataplane.rp_filter`) and writes
    only what it has not confirmed yet; ``full=True`` (first apply of a
    process, after a failure) reads every interface back, so a value changed
    behind the agent's back (or reset by a re-created interface) is restored.
    An interface that does not exist yet is not an error: it is listed in
    :attr:`problems` and tried again after ``retry_after`` seconds (or at the
    next full sync). Interfaces no longer wanted are left as they are.
    """

    def __init__(self, sysctl: Sysctl | None = None, retry_after: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sysctl = sysctl or Sysctl()
        self.retry_after = retry_after
        self.clock = clock
        self._done: dict[str, str] = {}  # interface -> mode confirmed in the kernel
        self._problems: dict[str, str] = {}
        self._next_retry = 0.0

    @property
    def problems(self) -> Mapping[str, str]:
        """Interface (or ``all``) -> why its rp_filter is not as wanted (read-only view)."""
        return MappingProxyType(self._problems)

    def _report(self, key: str, problem: str | None) -> None:
        old = self._problems.get(key)
        if problem is None:
            self._problems.pop(key, None)
        elif old != problem:
            self._problems[key] = problem
            # a workload interface that does not exist yet is routine (the
            # endpoint may be written before its veth); anything else is not
            level = logging.DEBUG if problem.startswith("no interface") else logging.WARNING
            log.log(level, "rp_filter of %s: %s", key, problem)

    def _missing(self, ifn: str) -> bool:
        return self._problems.get(ifn, "").startswith("no interface")

    def waiting(self) -> bool:
        """An interface that was missing is due to be looked for again."""
        return self.clock() >= self._next_retry and any(map(self._missing, self._problems))

    def sync(self, desired: Mapping[str, str], changed: Iterable[str] | None = None, *,
             full: bool = False) -> dict[str, str]:
        """Write what differs; returns the interfaces written (interface -> value).

        ``changed``: the interfaces whose desired mode may have changed since the
        last call (None: any of them); those missing earlier are added when a
        retry is due. Cost is proportional to them, not to all interfaces.
        """
        now = self.clock()
        retry = full or now >= self._next_retry
        if full:
            self._done.clear()
        if full or changed is None:
            candidates = set(desired) | set(self._done) | (set(self._problems) - {"all"})
        else:
            candidates = set(changed)
            if retry:
                candidates |= {i for i in self._problems if self._missing(i)}
        todo: dict[str, str] = {}
        for ifn in candidates:
            mode = desired.get(ifn)
            if mode is None:  # no longer ours: forget it, leave the kernel alone
                self._done.pop(ifn, None)
                self._problems.pop(ifn, None)
            elif self._done.get(ifn) != mode and (retry or not self._missing(ifn)):
                todo[ifn] = mode
        if not todo:
            return {}
        written: dict[str, str] = {}
        with self.sysctl.entered():
            present = self.sysctl.interfaces()
            for ifn, mode in sorted(todo.items()):
                if ifn not in present:
                    self._report(ifn, "no interface of that name (yet)")
                    continue
                try:
                    written |= self.sysctl.apply(workload_interface_settings(ifn)
                                                 | rp_filter_settings(ifn, mode))
                except DataplaneError as exc:
                    self._report(ifn, str(exc))
                    continue
                self._done[ifn] = mode
                self._report(ifn, None)
            try:
                loose = self.sysctl.read("net/ipv4/conf/all/rp_filter") == "2"
            except DataplaneError as exc:
                self._report("all", str(exc))
            else:
                self._report("all", LOOSE_ALL if loose else None)
        if retry:
            self._next_retry = now + self.retry_after
        return written
