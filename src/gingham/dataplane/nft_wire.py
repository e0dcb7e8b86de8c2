"""nfnetlink plumbing for nf_tables: attributes, messages and one batch per send.

The kernel applies a batch (``NFNL_MSG_BATCH_BEGIN`` … ``BATCH_END``) all or
nothing, and it does so inside the ``sendmsg`` that hands it over: by the
time the call returns, every answer is queued on the socket. Only the last
message of a batch asks for an acknowledgement; a message the kernel refuses
is answered anyway (with its errno), and a batch that fails as a whole is
answered on its BEGIN message. So reading until the last message's answer
(or a failure of the whole batch) has arrived, then draining what is left,
sees every error without one acknowledgement per message.

Facts (numbers, attribute layouts) are those of the kernel's uapi header
``linux/netfilter/nf_tables.h``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
_BATCH_BEGIN, _BATCH_END = 0x10, 0x11
_NLMSG_ERROR = 2
_CLONE_NEWNET = 0x40000000

# NFT_MSG_* (message types inside the nf_tables subsystem)
NEWTABLE, DELTABLE = 0, 2
NEWCHAIN, DELCHAIN = 3, 5
NEWRULE, DELRULE = 6, 8
NEWSET, DELSET = 9, 11
NEWSETELEM, DELSETELEM = 12, 14

# nlmsg flags
F_REQUEST, F_ACK = 0x1, 0x4
F_REPLACE, F_EXCL, F_CREATE, F_APPEND = 0x100, 0x200, 0x400, 0x800

NLA_F_NESTED = 0x8000
NLA_MAX_LEN = 0xFFFF  # an attribute's length is 16 bits: bigger payloads are split

FAMILY = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}


# ------------------------------------------------------------------ attributes


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute (padded to 4 bytes)."""
    if 4 + len(payload) > NLA_MAX_LEN:
        raise OverflowError(f"netlink attribute {kind} too long ({len(payload)} bytes)")
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def nest(kind: int, *parts: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(parts))


def u32(kind: int, value: int) -> bytes:
    """A 32-bit attribute in network byte order (nf_tables' convention)."""
    return attr(kind, struct.pack("!I", value & 0xFFFFFFFF))


def u64(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("!Q", value))


def strz(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def tlv(kind: int, payload: bytes) -> bytes:
    """One libnftnl "udata" item (1-byte type, 1-byte length): comments and
    the hints nft keeps for itself in tables, chains, sets and rules."""
    if len(payload) > 255:
        raise OverflowError("userdata item too long")
    return bytes((kind, len(payload))) + payload


# ------------------------------------------------------------------ messages


@dataclass(frozen=True, slots=True)
class Message:
    """One nf_tables message: ``kind`` is an NFT_MSG_* type; ``op`` is the index
    of the transaction operation it belongs to (for error reports)."""

    kind: int
    flags: int
    payload: bytes
    op: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """The kernel refused message ``index`` (None: the batch as a whole) with ``code``."""

    index: int | None
    code: int

    @property
    def text(self) -> str:
        return os.strerror(self.code)


def _header(mtype: int, flags: int, seq: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), mtype, flags, seq, 0) + body


def _nfgen(family: int, res_id: int = 0) -> bytes:
    return struct.pack("=BBH", family, 0, socket.htons(res_id))


def encode_batch(family: int, messages: Sequence[Message], first_seq: int) -> bytes:
    """BEGIN (seq ``first_seq``), the messages (seq ``first_seq + 1 + i``), END."""
    out = [_header(_BATCH_BEGIN, F_REQUEST, first_seq, _nfgen(0, NFNL_SUBSYS_NFTABLES))]
    last = len(messages) - 1
    for i, msg in enumerate(messages):
        flags = F_REQUEST | msg.flags | (F_ACK if i == last else 0)
        out.append(_header((NFNL_SUBSYS_NFTABLES << 8) | msg.kind, flags, first_seq + 1 + i,
                           _nfgen(family) + msg.payload))
    out.append(_header(_BATCH_END, F_REQUEST, first_seq + len(messages) + 1,
                       _nfgen(0, NFNL_SUBSYS_NFTABLES)))
    return b"".join(out)


# ------------------------------------------------------------------ socket


def _open(netns: str | None) -> socket.socket:
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    # setns changes only the calling thread's namespace, and only for the
    # moment the socket is created: the socket stays in the target namespace.
    libc = ctypes.CDLL(None, use_errno=True)
    path = netns if netns.startswith("/") else f"/run/netns/{netns}"
    with open("/proc/thread-self/ns/net", "rb") as home, open(path, "rb") as target:
        if libc.setns(target.fileno(), _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
        try:
            return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        finally:
            if libc.setns(home.fileno(), _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")


class NFNetlink:
    """A netfilter netlink socket (in ``netns`` when given) that sends batches."""

    def __init__(self, netns: str | None = None, timeout: float = 5.0) -> None:
        self.netns = netns
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._sndbuf = 0
        self._seq = int(time.time()) & 0x3FFFFFFF

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = _open(self.netns)
            sock.bind((0, 0))
            self._sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            self._sock = sock
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _room(self, sock: socket.socket, size: int) -> None:
        # A batch must travel in one sendmsg; the kernel refuses one larger
        # than the socket's send buffer (a full sync is megabytes).
        if size + 4096 <= self._sndbuf // 2:
            return
        want = max(2 * (size + 4096), 1 << 20)
        opt = getattr(socket, "SO_SNDBUFFORCE", 32)
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, want)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, want)
        self._sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)

    def send(self, family: int, messages: Sequence[Message]) -> list[Refusal]:
        """Send ``messages`` as one batch; the refusals (none: the batch is committed).

        Raises OSError when the socket itself fails (no answer, namespace gone).
        """
        if not messages:
            return []
        sock = self._socket()
        first = self._seq
        self._seq = (self._seq + len(messages) + 2) & 0x3FFFFFFF
        data = encode_batch(family, messages, first)
        self._room(sock, len(data))
        sock.sendall(data)
        last = first + len(messages)
        refusals: list[Refusal] = []
        done = False
        deadline = time.monotonic() + self.timeout
        while not done:
            sock.settimeout(max(0.0, deadline - time.monotonic()) or 0.001)
            try:
                reply = sock.recv(1 << 20)
            except TimeoutError as exc:
                raise OSError(errno.ETIMEDOUT, "no answer to an nf_tables batch") from exc
            done = self._answers(reply, first, last, refusals)
        sock.setblocking(False)
        try:
            while True:  # whatever else the kernel queued for this batch
                self._answers(sock.recv(1 << 20), first, last, refusals)
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            sock.setblocking(True)
        return refusals

    @staticmethod
    def _answers(data: bytes, first: int, last: int, out: list[Refusal]) -> bool:
        """Collect refusals from ``data``; True once the batch's last answer is in."""
        done = False
        off = 0
        while off + 16 <= len(data):
            length, mtype, _, seq, _ = struct.unpack_from("=IHHII", data, off)
            if mtype == _NLMSG_ERROR and length >= 20:
                (code,) = struct.unpack_from("=i", data, off + 16)
                if seq == last:
                    done = True
                if code:
                    index = None if seq == first or not first < seq <= last else seq - first - 1
                    out.append(Refusal(index, -code))
                    if index is None:
                        done = True
            off += max((length + 3) & ~3, 16)
        return done
