"""Many connection attempts at once from inside one workload; prints a JSON list of booleans.

Run by path inside the source workload's network namespace:
``python -I -S prober.py TIMEOUT PROTO:ADDRESS:PORT[:SOURCE_PORT] ...``. Standard library
only. All probes run in parallel threads, so a round costs one timeout
whatever the number of blocked targets (``gingham.lab.matrix`` spends one
process and up to one timeout per cell).

TCP: the handshake completing is success (the kernel answers for the
listener). UDP: the listener echoes the datagram; three tries within the
timeout, since a datagram can be lost while a neighbour entry resolves.
A UDP probe leaves from the source port it is given: a port the kernel
picked could repeat the tuple of an earlier allowed probe whose conntrack
entry still lives, and pass as a reply where policy now denies.
"""

from __future__ import annotations

import json
import socket
import sys
import threading


def probe(proto: str, address: str, port: int, timeout: float, sport: int = 0) -> bool:
    if proto == "tcp":
        try:
            with socket.create_connection((address, port), timeout=timeout):
                return True
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        if sport:
            sock.bind(("", sport))
        sock.settimeout(timeout / 3)
        for _ in range(3):
            try:
                sock.sendto(b"oracle", (address, port))
                data, _ = sock.recvfrom(64)
            except OSError:
                continue
            if data == b"oracle":
                return True
        return False


def main(argv: list[str]) -> None:
    timeout = float(argv[0])
    targets = [spec.split(":") for spec in argv[1:]]
    results = [False] * len(targets)

    def run(i: int, proto: str, address: str, port: str, sport: str = "0") -> None:
        results[i] = probe(proto, address, int(port), timeout, int(sport))

    threads = [threading.Thread(target=run, args=(i, *t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
