"""The fan-out server's listening sockets, and who is at the other end of a unix one."""

from __future__ import annotations

import os
import socket
import stat
import struct

from gingham.errors import ValidationError

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected ``sock``, as the kernel recorded them."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return pid, uid, gid


def listen_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ValidationError(f"cannot listen on {host}:{port}: {exc}", "fan-out server") from None
    return sock


def listen_unix(path: str) -> socket.socket:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise ValidationError("exists and is not a socket; not replacing it", path)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A live server with a full backlog makes connect() wait: that is
        # a live server too, not a stale file.
        probe.settimeout(2.0)
        try:
            probe.connect(path)
        except TimeoutError:
            raise ValidationError("another fan-out server listens on it", path) from None
        except OSError:
            os.unlink(path)  # left behind by a server that is gone
        else:
            raise ValidationError("another fan-out server is serving on it", path)
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Linux gives the socket file the mode of the socket's inode (less
        # the umask) at bind(): set 0600 there, so the file never exists
        # wider, whatever the process umask, and without changing the
        # umask (process-wide, other threads would see it).
        os.fchmod(sock.fileno(), 0o600)
        sock.bind(path)
        # Should a kernel ignore the fchmod: nobody can connect before
        # listen(), so narrowing the file here still leaves no window.
        if stat.S_IMODE(os.stat(path).st_mode) != 0o600:
            os.chmod(path, 0o600)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ValidationError(f"cannot listen on it: {exc}", path) from None
    except BaseException:
        sock.close()
        raise
    return sock
