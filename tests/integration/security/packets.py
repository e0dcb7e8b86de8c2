"""Hand-made packets for anti-spoofing tests: frames built byte by byte, sent
and captured with AF_PACKET sockets opened inside a chosen network namespace.

Sockets keep the namespace they were created in, so :func:`socket_in`
creates one from a short-lived thread that entered the namespace (``setns``
changes only the calling thread) and hands it back to the test.
"""

from __future__ import annotations

import ctypes
import ipaddress
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

_CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
TCP, UDP = 6, 17
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

T = TypeVar("T")


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """``fn()`` run by a fresh thread inside ``netns`` (the caller's thread is untouched)."""
    out: list[T] = []
    err: list[BaseException] = []

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            with open(f"/run/netns/{netns}", "rb") as f:
                if libc.setns(f.fileno(), _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            out.append(fn())
        except BaseException as exc:  # handed to the caller
            err.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]


def socket_in(netns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    return in_netns(netns, lambda: socket.socket(family, kind, proto))


def packet_socket(netns: str, ifname: str) -> socket.socket:
    """An AF_PACKET socket on ``ifname`` in ``netns``: sends whole frames, sees every frame."""
    s = socket_in(netns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, ETH_P_ALL))
    return s


# ----------------------------------------------------------------- building


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(data: bytes) -> int:
    return ~_sum16(data) & 0xFFFF


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        return s.packed + d.packed + struct.pack("!BBH", 0, proto, length)
    return s.packed + d.packed + struct.pack("!I3xB", length, proto)


def tcp(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
        payload: bytes = b"", window: int = 502) -> bytes:
    head = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                       5 << 4, flags, window, 0, 0)
    seg = head + payload
    csum = checksum(_pseudo(src, dst, TCP, len(seg)) + seg)
    return seg[:16] + struct.pack("!H", csum) + seg[18:]


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    dgram = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    csum = checksum(_pseudo(src, dst, UDP, len(dgram)) + dgram) or 0xFFFF
    return dgram[:6] + struct.pack("!H", csum) + dgram[8:]


def ip_packet(src: str, dst: str, proto: int, l4: bytes, ident: int = 4242) -> bytes:
    """An IPv4 or IPv6 header (by the addresses) in front of ``l4``."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0x4000, 64, proto, 0,
                           s.packed, d.packed)
        head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
        return head + l4
    return struct.pack("!IHBB16s16s", 6 << 28, len(l4), proto, 64, s.packed, d.packed) + l4


def frame(dst_mac: str, src_mac: str, packet: bytes) -> bytes:
    ethertype = ETH_P_IP if packet[0] >> 4 == 4 else ETH_P_IPV6
    return (bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
            + struct.pack("!H", ethertype) + packet)


# ----------------------------------------------------------------- capturing


@dataclass(frozen=True)
class Segment:
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes


def parse_tcp(data: bytes) -> Segment | None:
    """The TCP segment in an Ethernet frame (None for anything else)."""
    if len(data) < 14:
        return None
    (ethertype,) = struct.unpack_from("!H", data, 12)
    ip = data[14:]
    if ethertype == ETH_P_IP and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        if ip[9] != TCP:
            return None
        src, dst = socket.inet_ntop(socket.AF_INET, ip[12:16]), socket.inet_ntop(socket.AF_INET, ip[16:20])
        l4 = ip[ihl:total]
    elif ethertype == ETH_P_IPV6 and len(ip) >= 40:
        if ip[6] != TCP:
            return None
        plen = struct.unpack_from("!H", ip, 4)[0]
        src = socket.inet_ntop(socket.AF_INET6, ip[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
        l4 = ip[40:40 + plen]
    else:
        return None
    if len(l4) < 20:
        return None
    sport, dport, seq, ack, off, flags = struct.unpack_from("!HHIIBB", l4)
    return Segment(src, dst, sport, dport, seq, ack, flags, l4[(off >> 4) * 4:])


def drain(sock: socket.socket, settle: float = 0.2) -> list[bytes]:
    """Every frame the socket has seen, waiting ``settle`` seconds for stragglers."""
    out: list[bytes] = []
    deadline = time.monotonic() + settle
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([sock], [], [], max(0.0, left))
        if not ready:
            return out
        out.append(sock.recv(65535))


def received(sock: socket.socket, timeout: float) -> bytes | None:
    """The next datagram/bytes on ``sock`` within ``timeout`` seconds, else None."""
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        return None
    try:
        return sock.recv(65535)
    except OSError:
        return None


def nstat_counter(netns: str, name: str) -> int:
    """A kernel SNMP counter of ``netns`` (e.g. ``TcpExtIPReversePathFilter``).

    /proc/thread-self/net shows the namespace of the reading thread.
    """
    def read() -> int:
        with open("/proc/thread-self/net/netstat") as f:
            lines = f.read().splitlines()
        for head, values in zip(lines[::2], lines[1::2], strict=False):
            prefix, _, names = head.partition(": ")
            for key, value in zip(names.split(), values.split()[1:], strict=False):
                if prefix + key == name:
                    return int(value)
        raise KeyError(name)

    return in_netns(netns, read)
