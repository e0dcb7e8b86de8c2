"""Listeners inside a workload: TCP accepts (and answers), UDP echoes each datagram.

Run by path with ``python -I -S serve.py tcp:80 udp:80 …``: standard library
only, so it starts in milliseconds and needs nothing from the virtualenv.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import sys


def _listen(spec: str) -> socket.socket:
    proto, _, port = spec.partition(":")
    family = socket.AF_INET6
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # v4 and v6 together
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::", int(port)))
    if kind == socket.SOCK_STREAM:
        sock.listen(128)
    sock.setblocking(False)
    return sock


def main(specs: list[str]) -> None:
    sel = selectors.DefaultSelector()
    for spec in specs:
        listener = _listen(spec)
        sel.register(listener, selectors.EVENT_READ, spec.startswith("tcp"))
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            if not isinstance(sock, socket.socket):
                continue
            conn: socket.socket
            if key.data:  # TCP: accept, say who we are, close
                try:
                    conn, _ = sock.accept()
                except OSError:
                    continue
                with contextlib.suppress(OSError):
                    conn.sendall(b"ok\n")
                conn.close()
            else:
                try:
                    data, peer = sock.recvfrom(65535)
                    sock.sendto(data, peer)
                except OSError:
                    continue


if __name__ == "__main__":
    main(sys.argv[1:])
