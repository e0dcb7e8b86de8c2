"""One connection attempt from inside a workload: exit 0 on success, 1 otherwise.

Run by path with ``python -I -S probe.py tcp|udp ADDRESS PORT TIMEOUT``:
standard library only (a matrix runs dozens of these in parallel).
"""

from __future__ import annotations

import socket
import sys


def probe(proto: str, address: str, port: int, timeout: float) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    if proto == "tcp":
        try:
            with socket.create_connection((address, port), timeout=timeout):
                return True
        except OSError:
            return False
    # A datagram can be lost while a neighbour entry resolves: try three times.
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout / 3)
        for _ in range(3):
            try:
                sock.sendto(b"gingham-probe", (address, port))
                data, _ = sock.recvfrom(64)
            except OSError:
                continue
            if data == b"gingham-probe":
                return True
        return False


if __name__ == "__main__":
    ok = probe(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    sys.exit(0 if ok else 1)
