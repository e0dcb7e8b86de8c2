"""A small rtnetlink client: the links, addresses and routes of a workload's veth.

Standard library only (``socket``, ``struct``). The agent plumbs workloads
with it in-process (``veth_netlink.py``). Not pyroute2: its sockets in another
network namespace come from a forked child (about 10 ms each, and unsafe
beside the agent's threads), and what a veth needs is a dozen fixed-layout
requests. A ``RouteSocket`` belongs to the network namespace of the thread
that opened it, for good: one opened by a thread that had entered a
workload's namespace (``veth_netlink.socket_in``) talks to that namespace.

Every request asks for an acknowledgement; an error comes back as
``NetlinkError`` (an OSError with the kernel's errno and, where the kernel
gives one, its extended message).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass

NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_ACK_TLVS = 0x200  # in an error reply: extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1

SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # errors do not echo the whole request back
NETLINK_EXT_ACK = 11  # errors carry the kernel's message

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_EXT_MASK = 29
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFF_UP = 0x1
IF_OPER_UP = 6

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_F_NODAD = 0x02

RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3  # what `ip route add` writes when no protocol is named
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTN_UNICAST = 1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefix length, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst/src len, tos, table, proto, scope,
#                                       type, flags
_ATTR = struct.Struct("=HH")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class NetlinkError(OSError):
    """The kernel refused a request (errno and, where given, its own message)."""


def attr(kind: int, payload: bytes) -> bytes:
    size = _ATTR.size + len(payload)
    return _ATTR.pack(size, kind) + payload + b"\0" * (-size % 4)


def _name(text: str) -> bytes:
    return text.encode() + b"\0"


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Attribute type -> payload (the last of a repeated type; nested ones unparsed)."""
    out: dict[int, bytes] = {}
    while offset + _ATTR.size <= len(data):
        size, kind = _ATTR.unpack_from(data, offset)
        if size < _ATTR.size:
            break
        out[kind & 0x3FFF] = data[offset + _ATTR.size:offset + size]
        offset += (size + 3) & ~3
    return out


def _family(ip: IPAddress) -> int:
    return socket.AF_INET if ip.version == 4 else socket.AF_INET6


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    mac: str  # "" for a link without a hardware address
    operational: bool = False  # operstate UP: the kernel has finished bringing it up


class RouteSocket:
    """One NETLINK_ROUTE socket; requests one at a time (not for sharing between threads)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._seq = 0

    @classmethod
    def open(cls) -> RouteSocket:
        """A socket in the calling thread's network namespace."""
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                             socket.NETLINK_ROUTE)  # fmt: skip
        try:
            for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                # an older kernel: plainer errors, same results
                with contextlib.suppress(OSError):
                    sock.setsockopt(SOL_NETLINK, option, 1)
            sock.bind((0, 0))
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RouteSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        """Send one request; the messages answering it (without the acknowledgement)."""
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        seq = self._seq
        self._sock.send(_HEADER.pack(_HEADER.size + len(body), kind,
                                     flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body)
        out: list[tuple[int, bytes]] = []
        while True:
            data = self._sock.recv(1 << 16)
            offset = 0
            while offset + _HEADER.size <= len(data):
                size, mtype, mflags, mseq, _port = _HEADER.unpack_from(data, offset)
                if size < _HEADER.size:
                    raise NetlinkError(errno.EPROTO, "malformed netlink reply")
                payload = data[offset + _HEADER.size:offset + size]
                offset += (size + 3) & ~3
                if mseq != seq:
                    continue  # an answer to an earlier request that gave up
                if mtype == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", payload)
                    if code == 0:
                        return out
                    raise self._error(-code, mflags, payload)
                if mtype == NLMSG_DONE:
                    return out
                out.append((mtype, payload))

    @staticmethod
    def _error(code: int, flags: int, payload: bytes) -> NetlinkError:
        message = os.strerror(code)
        if flags & NLM_F_ACK_TLVS:
            # error code, the request's header (capped: no payload echoed), then attributes
            (echoed,) = struct.unpack_from("=I", payload, 4)
            skip = 4 + (_HEADER.size if flags & 0x100 else echoed)  # 0x100: NLM_F_CAPPED
            extra = parse_attrs(payload, (skip + 3) & ~3).get(NLMSGERR_ATTR_MSG, b"")
            text = extra.rstrip(b"\0").decode(errors="replace")
            if text:
                message += f" ({text})"
        return NetlinkError(code, message)

    # -- links -----------------------------------------------------------------------

    def link(self, name: str = "", index: int = 0) -> Link | None:
        """The link called ``name`` (or with ``index``); None if there is none."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0)
        if name:
            body += attr(IFLA_IFNAME, _name(name))
        body += attr(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS))
        try:
            replies = self.request(RTM_GETLINK, 0, body)
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise
        for mtype, payload in replies:
            if mtype == RTM_NEWLINK:
                _fam, _type, found, _flags, _change = _IFINFO.unpack_from(payload)
                attrs = parse_attrs(payload, _IFINFO.size)
                address = attrs.get(IFLA_ADDRESS, b"")
                oper = attrs.get(IFLA_OPERSTATE, b"\0")[0]
                return Link(found, ":".join(f"{b:02x}" for b in address), oper == IF_OPER_UP)
        raise NetlinkError(errno.EPROTO, f"no link in the answer about {name or index}")

    def delete_link(self, name: str) -> bool:
        """Delete ``name`` (a veth takes its peer along); False if there was none."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr(IFLA_IFNAME, _name(name))
        try:
            self.request(RTM_DELLINK, 0, body)
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                return False
            raise
        return True

    def add_veth(self, name: str, peer: str, mtu: int, peer_mac: str, netns_fd: int) -> None:
        """A veth pair: ``name`` in the namespace of ``netns_fd``, ``peer`` (with MAC
        ``peer_mac``) in this socket's namespace. Both or neither: one request."""
        mac = bytes(int(part, 16) for part in peer_mac.split(":"))
        peer_info = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr(IFLA_IFNAME, _name(peer))
                     + attr(IFLA_MTU, struct.pack("=I", mtu)) + attr(IFLA_ADDRESS, mac))
        info = attr(IFLA_INFO_KIND, b"veth\0") + attr(IFLA_INFO_DATA,
                                                     attr(VETH_INFO_PEER, peer_info))
        body = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr(IFLA_IFNAME, _name(name))
                + attr(IFLA_MTU, struct.pack("=I", mtu))
                + attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
                + attr(IFLA_LINKINFO, info))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, 0, _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP))

    def set_down(self, index: int) -> None:
        self.request(RTM_NEWLINK, 0, _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, IFF_UP))

    def delete_index(self, index: int) -> bool:
        """Delete link ``index`` (never another that took its name since); False if gone."""
        try:
            self.request(RTM_DELLINK, 0, _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0))
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                return False
            raise
        return True

    # -- addresses and routes ------------------------------------------------------------

    def add_address(self, index: int, ip: IPAddress, *, nodad: bool = False) -> None:
        """``ip`` as a host address (/32, /128) on link ``index``."""
        flags = IFA_F_NODAD if nodad else 0
        raw = ip.packed
        body = _IFADDR.pack(_family(ip), ip.max_prefixlen, flags, RT_SCOPE_UNIVERSE, index)
        body += attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_route(self, dst: IPAddress | None, index: int, *, gateway: IPAddress | None = None,
                  scope: int = RT_SCOPE_UNIVERSE, protocol: int = RTPROT_BOOT,
                  replace: bool = False, version: int = 4) -> None:
        """A main-table route to host ``dst`` (None: the default route) over link
        ``index``, via ``gateway`` if given. ``replace``: like `ip route replace`."""
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        dst_len = 0 if dst is None else dst.max_prefixlen
        body = _RTMSG.pack(family, dst_len, 0, 0, RT_TABLE_MAIN, protocol, scope,
                           RTN_UNICAST, 0)
        if dst is not None:
            body += attr(RTA_DST, dst.packed)
        if gateway is not None:
            body += attr(RTA_GATEWAY, gateway.packed)
        body += attr(RTA_OIF, struct.pack("=i", index))
        flags = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
        self.request(RTM_NEWROUTE, flags, body)
