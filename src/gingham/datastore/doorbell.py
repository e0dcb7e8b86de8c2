"""Wake sqlite watchers when a writer commits: a futex word in a file beside the database.

Every process that shares the database shares its files, whatever network
namespace it runs in, so the channel is a file too: the first 4 bytes of
``<db>-lock`` (the file writers already flock), mapped shared. The word
counts commits. A writer, after COMMIT and still holding the writers' flock
(so increments never race), adds one and calls FUTEX_WAKE for every waiter.
A watcher reads the word, then reads the database, then calls FUTEX_WAIT
with the value it read: the kernel compares the word with that value and
goes to sleep in one step, so a commit that lands after the watcher's read
(it raised the word) makes the wait return at once and is never slept
through.

Why a futex and not sockets, a FIFO or inotify: the writer's cost is one
store and one system call however many watchers there are (0 or 1,000), it
keeps no list of watchers, so a watcher that died or is stopped costs
nothing, and it cannot block or fail a write (errors are swallowed; the
write has committed). inotify on the ``-wal`` file would fire before the
commit is visible to readers and needs an inotify instance per watcher
(128 per user by default). A shared futex is keyed by the file's inode and
offset, so it works across processes and mount namespaces.

A lost ring (a writer killed between COMMIT and the ring, a writer of an
older version, a writer that could not map the file) costs watchers at most
their safety poll (``sqlite_watch.SAFETY_POLL``). Where futexes are not
available (an architecture whose system call number is not known here, no
libc), ``open_doorbell`` returns None and watchers poll as before.

The file must never be truncated while mapped (a mapped page past the end
of a file raises SIGBUS): it only ever grows to ``_SIZE`` bytes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import mmap
import os
import platform
from typing import Any

# futex(2) system call numbers of the 64-bit Linux architectures.
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98, "riscv64": 98, "ppc64le": 221, "ppc64": 221,
              "s390x": 238}  # fmt: skip
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1  # shared (not FUTEX_PRIVATE_FLAG): other processes wait too
_WAKE_ALL = 0x7FFFFFFF
_SIZE = 8  # the word, and room to keep the file size stable


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _load_syscall() -> tuple[Any, int] | None:
    number = _SYS_FUTEX.get(platform.machine())
    if number is None or ctypes.sizeof(ctypes.c_long) != 8:
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        syscall = libc.syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    return syscall, number


_syscall = _load_syscall()


class Doorbell:
    """One mapping of a datastore's futex word, shared by the threads of a process."""

    def __init__(self, fd: int) -> None:
        self._map: mmap.mmap | None = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED,
                                                mmap.PROT_READ | mmap.PROT_WRITE)
        # One aligned 32-bit load or store per access: never a torn value.
        self._word: ctypes.c_uint32 | None = ctypes.c_uint32.from_buffer(self._map)
        self._addr = ctypes.c_void_p(ctypes.addressof(self._word))

    def value(self) -> int:
        """The commit count now (read it before looking at the database); -1 once closed."""
        word = self._word
        return -1 if word is None else int(word.value)

    def ring(self) -> None:
        """After a commit: bump the word and wake every waiter. Never raises.

        Callers hold the writers' flock, so no two rings interleave.
        """
        word = self._word
        if word is None or _syscall is None:
            return
        with contextlib.suppress(Exception):
            word.value = (word.value + 1) & 0xFFFFFFFF
            self._futex(_FUTEX_WAKE, _WAKE_ALL, None)

    def nudge(self) -> None:
        """Wake every waiter without a new value (they find nothing new and wait on)."""
        if self._word is not None and _syscall is not None:
            with contextlib.suppress(Exception):
                self._futex(_FUTEX_WAKE, _WAKE_ALL, None)

    def wait(self, seen: int, timeout: float) -> None:
        """Sleep until the word differs from ``seen``, a ring, or ``timeout`` seconds.

        May return early (spurious wake-ups, signals, a nudge): callers re-check.
        """
        word = self._word  # held: the mapping stays while this thread sleeps on it
        if timeout <= 0 or word is None or _syscall is None:
            return
        sec = int(timeout)
        ts = _Timespec(sec, int((timeout - sec) * 1e9))
        # ctypes drops the GIL for the call: other threads run while this one sleeps.
        self._futex(_FUTEX_WAIT, seen & 0xFFFFFFFF, ctypes.byref(ts))
        del word

    def _futex(self, op: int, val: int, timeout: Any) -> None:
        assert _syscall is not None
        syscall, number = _syscall
        syscall(ctypes.c_long(number), self._addr, ctypes.c_long(op), ctypes.c_long(val),
                timeout, None, ctypes.c_long(0))  # fmt: skip

    def close(self) -> None:
        """Drop the mapping; a thread still using it keeps it alive until it is done."""
        mapped, self._map, self._word = self._map, None, None
        if mapped is not None:
            # Refused while another thread holds the word: then it goes when that does.
            with contextlib.suppress(BufferError, ValueError):
                mapped.close()


def open_doorbell(path: str) -> Doorbell | None:
    """Map the futex word in ``path`` (created if missing, grown to its size; never
    shrunk); None when this platform has no futex or the file cannot be mapped."""
    if _syscall is None:
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size < _SIZE:
            os.ftruncate(fd, _SIZE)  # racing openers both grow it to the same size
        return Doorbell(fd)  # mmap keeps its own descriptor
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
