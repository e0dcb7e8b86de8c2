"""Telling systemd how a service is doing: ``READY=1``, ``STATUS=``, ``STOPPING=1``, ``WATCHDOG=1``.

A unit of ``Type=notify`` (packaging/systemd/) is "activating" until its process
sends ``READY=1`` to the datagram socket systemd names in ``$NOTIFY_SOCKET``;
units ordered after it wait until then, and ``systemctl start`` returns then.
The protocol is one datagram of ``KEY=value`` lines (sd_notify(3)); a socket
name starting with ``@`` is in the abstract namespace (a leading NUL byte).

Standard library only, and no dependency on libsystemd: without
``NOTIFY_SOCKET`` (not under systemd, or another ``Type``) every call does
nothing. A notification that cannot be sent is logged and dropped: systemd's
bookkeeping must never take a service down.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"  # systemd's names (sd_notify(3), sd_watchdog_enabled(3))
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"


def _address(name: str) -> str | bytes:
    if name.startswith("@"):
        return b"\0" + name[1:].encode()  # abstract namespace
    return name


def notify(*fields: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``fields`` (``"READY=1"``...) as one datagram; True when systemd got it."""
    env = os.environ if environ is None else environ
    name = env.get(NOTIFY_SOCKET_ENV, "")
    if not name:
        return False
    if not (name.startswith(("/", "@"))):
        log.warning("%s=%r is neither a path nor an abstract name: not notified",
                    NOTIFY_SOCKET_ENV, name)  # fmt: skip
        return False
    payload = "\n".join(f.replace("\n", " ") for f in fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(payload, _address(name))
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", name, exc)
        return False
    return True


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Seconds within which systemd wants ``WATCHDOG=1`` (``WatchdogSec=``), or None when
    it wants none from this process."""
    env = os.environ if environ is None else environ
    usec, pid = env.get(WATCHDOG_USEC_ENV, ""), env.get(WATCHDOG_PID_ENV, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # meant for another process of the unit
    return int(usec) / 1e6


class Notifier:
    """The service's side of the protocol: ``READY=1`` exactly once, when it first is ready;
    ``STATUS=`` when the one-line status changes; ``STOPPING=1`` on the way out."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self._environ = environ
        self._lock = threading.Lock()  # the docker plugin reports from more than one thread
        self._ready = False
        self._status: str | None = None

    @property
    def is_ready(self) -> bool:
        return self._ready

    def update(self, ready: bool, status: str) -> None:
        """What the service is now. ``ready`` going back to False later only shows in the
        status: systemd has no way back to "activating"."""
        with self._lock:
            fields: list[str] = []
            if ready and not self._ready:
                fields.append("READY=1")
            if status != self._status:
                fields.append(f"STATUS={status}")
            if not fields:
                return
            self._ready = self._ready or ready
            self._status = status
            notify(*fields, environ=self._environ)

    def stopping(self, status: str = "stopping") -> None:
        with self._lock:
            self._status = status
            notify("STOPPING=1", f"STATUS={status}", environ=self._environ)

    def watchdog(self) -> None:
        notify("WATCHDOG=1", environ=self._environ)
