"""Where the CNI commands run: what ``plugin.py`` needs from its surroundings.

One implementation of ADD, DEL, CHECK, GC and STATUS (``plugin.py``) runs in
two places:

- the direct path: ``gingham-cni`` itself, when no agent takes the command
  (``DirectHost``): it opens the datastore for this one call, plumbs with the
  ``ip`` program (``plumbing.py``), logs to its stderr;
- the node agent (``agent/cni_server.py``): a warm datastore connection and
  IPAM per worker, plumbing over netlink in-process (``veth_netlink.py``),
  log lines returned to the client, and every write it makes handed to the
  agent's own calculation graph (``written``) without waiting for its watch.

The protocols below are all ``plugin.py`` may use of either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import TYPE_CHECKING, Protocol

from gingham.cni import plumbing
from gingham.cni.plumbing import Macs
from gingham.cni.protocol import log

if TYPE_CHECKING:
    from gingham.cni.netconf import Invocation
    from gingham.datastore.base import Datastore

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface


class Stored(Protocol):
    """One key as read (``datastore.base.KeyValue``)."""

    @property
    def key(self) -> str: ...
    @property
    def value(self) -> Mapping[str, object]: ...
    @property
    def mod_revision(self) -> int: ...


class Store(Protocol):
    """The datastore calls the commands make (``datastore.base.Datastore``)."""

    def get(self, key: str) -> Stored | None: ...
    def list(self, prefix: str) -> tuple[Sequence[Stored], int]: ...
    def create(self, key: str, value: dict[str, object]) -> int: ...
    def update(self, key: str, value: dict[str, object], *, revision: int) -> int: ...
    def delete(self, key: str, *, revision: int | None = None) -> int: ...
    def revision(self) -> int: ...


class Addresses(Protocol):
    """The IPAM calls the commands make (``ipam.IPAM`` of this node)."""

    def auto_assign(self, handle: str, attrs: Mapping[str, str] | None = None,
                    num_v4: int = 1, num_v6: int = 0) -> list[IPInterface]: ...
    def release_by_handle(self, handle: str) -> list[IPAddress]: ...
    def release_ips(self, ips: Iterable[str | IPAddress], *,
                    handle: str | None = None) -> list[IPAddress]: ...
    def held_by(self, handle: str) -> list[IPAddress]: ...


class Plumbing(Protocol):
    """The workload's veth (DESIGN.md section 4); errors are ``CNIError``."""

    def setup(self, netns: str, host_if: str, cidrs: list[str], mtu: int,
              container_ifname: str) -> Macs: ...
    def teardown(self, host_if: str, *, wait: bool = True) -> bool:
        """Remove the veth; False if it was not there. ``wait=False``: out of service at
        once (down, no routes), the kernel's slow deletion may finish after the return."""
    def exists(self, host_if: str) -> bool: ...


class Session(Protocol):
    store: Store

    @property
    def addresses(self) -> Addresses: ...


class Host(Protocol):
    @property
    def plumbing(self) -> Plumbing: ...

    def session(self, inv: Invocation) -> contextlib.AbstractContextManager[Session]: ...
    def log(self, message: str) -> None: ...
    def written(self, key: str, value: Mapping[str, object] | None, revision: int) -> None:
        """``key`` now holds ``value`` (None: deleted) at ``revision``, written by a command."""
    def mtu(self, inv: Invocation) -> int | None:
        """The MTU the agent computed for this host's workloads; None if unknown."""


# -- the direct path ----------------------------------------------------------------


class ProcessPlumbing:
    """``plumbing.py``: ``ip``/``nsenter`` processes, standard library only."""

    def setup(self, netns: str, host_if: str, cidrs: list[str], mtu: int,
              container_ifname: str) -> Macs:
        return plumbing.setup_workload_interface(netns, host_if, cidrs, mtu,
                                                 container_ifname=container_ifname)

    def teardown(self, host_if: str, *, wait: bool = True) -> bool:
        return plumbing.teardown_workload_interface(host_if)

    def exists(self, host_if: str) -> bool:
        return plumbing.interface_exists(host_if)


class _DirectSession:
    def __init__(self, ds: Datastore, node: str) -> None:
        self.store: Store = ds
        self._ds = ds
        self._node = node
        self._addresses: Addresses | None = None

    @property
    def addresses(self) -> Addresses:
        if self._addresses is None:  # STATUS and CHECK need none
            from gingham.ipam import IPAM

            self._addresses = IPAM(self._ds, host=self._node)
        return self._addresses


class DirectHost:
    """``gingham-cni`` doing the work itself: one datastore connection per call."""

    def __init__(self) -> None:
        self.plumbing: Plumbing = ProcessPlumbing()

    def open_datastore(self, inv: Invocation) -> Datastore:
        from gingham.datastore import open_datastore

        return open_datastore(inv.datastore)

    @contextlib.contextmanager
    def session(self, inv: Invocation) -> Iterator[Session]:
        ds = self.open_datastore(inv)
        try:
            yield _DirectSession(ds, inv.node)
        finally:
            ds.close()

    def log(self, message: str) -> None:
        log(message)

    def written(self, key: str, value: Mapping[str, object] | None, revision: int) -> None:
        """The agent learns of it from its watch."""

    def mtu(self, inv: Invocation) -> int | None:
        from pathlib import Path

        from gingham.hostfiles import mtu_path, read_mtu

        return read_mtu(mtu_path(inv.node, Path(inv.run_dir)))
