"""Run a command in a mount namespace of its own, with some directories bound over others.

The lab gives every host's Docker daemon its own view of the machine-wide
paths Docker insists on (``/run/docker/plugins`` for plugin discovery,
``/etc/docker`` for ``key.json``, ``/run/containerd`` for the shims'
sockets)::

    python -m gingham.lab.mountns --bind SRC:DST [--bind SRC:DST ...] -- dockerd ...

The new namespace is made a *slave* of the machine's before anything is
mounted: mounts made here (ours, and every mount dockerd and runc make
later) never propagate back to the machine's mount table, while unmounts on
the machine (``ip netns delete`` of a lab host) still reach in, so this
namespace pins no one else's network namespace. The mount points (DST) must
exist already: creating them is the caller's business, since they outlive
this process on the machine's filesystem. The command replaces this process
(``exec``), so its pid is the pid the caller started.

Standard library only (ctypes for the two system calls): it is one short
step before a daemon starts.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Sequence

CLONE_NEWNS = 0x00020000
MS_BIND = 4096
MS_REC = 16384
MS_SLAVE = 1 << 19


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def parse_bind(text: str) -> tuple[str, str]:
    """``SRC:DST`` with both absolute (no ':' inside either)."""
    src, sep, dst = text.partition(":")
    if not sep or not os.path.isabs(src) or not os.path.isabs(dst) or ":" in dst:
        raise argparse.ArgumentTypeError(f"--bind wants SRC:DST, two absolute paths, not {text!r}")
    return src, dst


def enter(binds: Sequence[tuple[str, str]]) -> None:
    """Unshare the mount namespace, make it a slave, bind each SRC over its DST."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(None, b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /")
    for src, dst in binds:
        if not os.path.isdir(src) or not os.path.isdir(dst):
            raise OSError(f"cannot bind {src} over {dst}: both must be directories")
        _check(
            libc.mount(src.encode(), dst.encode(), None, MS_BIND, None), f"bind {src} over {dst}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gingham.lab.mountns",
        description="Run COMMAND in a mount namespace of its own (a slave of the machine's), "
        "with directories bound over others.",
    )
    parser.add_argument("--bind", type=parse_bind, action="append", default=[], metavar="SRC:DST")
    parser.add_argument("command", nargs="+", help="the command, after --")
    args = parser.parse_args(argv)
    try:
        enter(args.bind)
        os.execvp(args.command[0], args.command)
    except OSError as exc:
        print(f"gingham.lab.mountns: {exc}", file=sys.stderr)
        return 127
    return 0  # not reached: exec replaced us


if __name__ == "__main__":
    sys.exit(main())
