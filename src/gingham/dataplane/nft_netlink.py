"""Set-element deltas as ONE nfnetlink batch, without the ``nft`` program.

nft 1.0.6 reads the whole ruleset (rules included) into its cache before any
command, even a lone ``add element``: with 1,000 policies that is tens of
milliseconds per run. Set-element deltas (a remote endpoint's label change,
an endpoint appearing elsewhere) are the commonest update by far, so
:class:`~gingham.dataplane.apply.Applier` sends a batch holding nothing else
through :class:`NetlinkElements` instead (the same atomicity: the kernel
commits a batch all or nothing). Everything else still goes through
``nft -f -``.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import struct
import time

from gingham.dataplane import nft
from gingham.dataplane.managers import Key

_NETLINK_NETFILTER = 12
_NFNL_SUBSYS_NFTABLES = 10
_NFNL_MSG_BATCH_BEGIN, _NFNL_MSG_BATCH_END = 0x10, 0x11
_NFT_MSG_NEWSETELEM, _NFT_MSG_DELSETELEM = 12, 14
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_CREATE = 0x1, 0x4, 0x400
_NLMSG_ERROR = 2
_NLA_F_NESTED = 0x8000
_NFPROTO = {"inet": 1, "ip": 2, "ip6": 10}
_PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "udplite": 136, "icmp": 1, "ipv6-icmp": 58}
_CLONE_NEWNET = 0x40000000


def _nla(kind: int, payload: bytes) -> bytes:
    head = struct.pack("=HH", 4 + len(payload), kind)
    return head + payload + b"\0" * (-len(payload) % 4)


_IFNAMSIZ = 16
_NFT_JUMP = -3
_NFTA_SET_ELEM_KEY, _NFTA_SET_ELEM_DATA, _NFTA_SET_ELEM_FLAGS, _NFTA_SET_ELEM_KEY_END = 1, 2, 3, 10
_NFT_SET_ELEM_INTERVAL_END = 1


def _encode_part(typ: str, text: str) -> bytes:
    """One field of a key as the kernel stores it (fields padded to 4 bytes)."""
    if typ == "ipv4_addr":
        return ipaddress.IPv4Address(text).packed
    if typ == "ipv6_addr":
        return ipaddress.IPv6Address(text).packed
    if typ == "inet_proto":
        n = _PROTO_NUMBERS.get(text)
        return bytes([n if n is not None else int(text)]) + b"\0\0\0"
    if typ == "inet_service":
        return struct.pack("!H", int(text)) + b"\0\0"
    if typ == "ifname":
        name = text.strip('"').encode()
        if not name or len(name) >= _IFNAMSIZ:
            raise ValueError(f"bad interface name {text!r}")
        return name.ljust(_IFNAMSIZ, b"\0")
    raise ValueError(f"no netlink encoding for {typ}")


def _range_part(typ: str, text: str) -> tuple[bytes, bytes]:
    """(first, last) of one field: an address field may be a prefix."""
    if typ in ("ipv4_addr", "ipv6_addr") and "/" in text:
        net = ipaddress.ip_network(text, strict=False)
        return net.network_address.packed, net.broadcast_address.packed
    b = _encode_part(typ, text)
    return b, b


def _set_types(obj: nft.Set | nft.Map) -> tuple[list[str], str | None]:
    spec = obj.type or ""
    value = None
    if isinstance(obj, nft.Map):
        spec, _, value = spec.partition(":")
        value = value.strip()
    return [t.strip() for t in spec.split(".")], value


def _element_attrs(obj: nft.Set | nft.Map, key: Key, value: Key | None) -> list[bytes]:
    """The NFTA_LIST_ELEM payload(s) for one element (two for a range in an rbtree set)."""
    types, vtype = _set_types(obj)
    if len(types) != len(key):
        raise ValueError(f"element {key} does not fit {obj.name} ({obj.type})")
    data = b""
    if vtype is not None and value is not None:  # a delete needs the key only
        if vtype != "verdict":
            raise ValueError(f"map {obj.name}: only verdict maps")
        verb, _, chain = value[0].partition(" ")
        if verb != "jump" or not chain:
            raise ValueError(f"map {obj.name}: only jump verdicts")
        verdict = (_nla(1, struct.pack("!i", _NFT_JUMP))
                   + _nla(2, chain.encode() + b"\0"))
        data = _nla(_NFTA_SET_ELEM_DATA | _NLA_F_NESTED,
                    _nla(2 | _NLA_F_NESTED, verdict))
    if "interval" not in obj.flags:
        k = b"".join(_encode_part(t, x) for t, x in zip(types, key, strict=True))
        return [_nla(_NFTA_SET_ELEM_KEY | _NLA_F_NESTED, _nla(1, k)) + data]
    if len(types) > 1:
        # concatenated ranges (pipapo): inclusive start and end of every field
        parts = [_range_part(t, x) for t, x in zip(types, key, strict=True)]
        first = b"".join(p[0] for p in parts)
        last = b"".join(p[1] for p in parts)
        return [_nla(_NFTA_SET_ELEM_KEY | _NLA_F_NESTED, _nla(1, first))
                + _nla(_NFTA_SET_ELEM_KEY_END | _NLA_F_NESTED, _nla(1, last)) + data]
    # single-field interval set (rbtree): start element, and an end element
    # one past the range unless the range reaches the top of the space
    net = ipaddress.ip_network(key[0], strict=False)
    out = [_nla(_NFTA_SET_ELEM_KEY | _NLA_F_NESTED, _nla(1, net.network_address.packed)) + data]
    end = int(net.broadcast_address) + 1
    if end < 2**net.max_prefixlen:
        out.append(_nla(_NFTA_SET_ELEM_KEY | _NLA_F_NESTED,
                        _nla(1, end.to_bytes(net.max_prefixlen // 8, "big")))
                   + _nla(_NFTA_SET_ELEM_FLAGS, struct.pack("!I", _NFT_SET_ELEM_INTERVAL_END)))
    return out


def _setns_socket(netns: str | None) -> socket.socket:
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER)
    libc = ctypes.CDLL(None, use_errno=True)
    path = netns if netns.startswith("/") else f"/run/netns/{netns}"
    with open("/proc/thread-self/ns/net", "rb") as home, open(path, "rb") as target:
        if libc.setns(target.fileno(), _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
        try:
            return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER)
        finally:
            if libc.setns(home.fileno(), _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")


class NetlinkElements:
    """Writes set-element deltas of one table as a single nfnetlink batch."""

    def __init__(self, family: str, table: str, netns: str | None) -> None:
        self.family = _NFPROTO[family]
        self.table = table.encode() + b"\0"
        self.netns = netns
        self._sock: socket.socket | None = None
        self._seq = int(time.time())

    def _socket(self) -> socket.socket:
        if self._sock is None:
            self._sock = _setns_socket(self.netns)
            self._sock.bind((0, 0))
            self._sock.settimeout(5.0)
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _msg(self, mtype: int, flags: int, family: int, res_id: int, payload: bytes) -> bytes:
        self._seq += 1
        body = struct.pack("=BBH", family, 0, socket.htons(res_id)) + payload
        return struct.pack("=IHHII", 16 + len(body), mtype, flags, self._seq, 0) + body

    def write(self, ops: list[tuple[str, nft.Set | nft.Map, Key, Key | None]]) -> None:
        """``ops`` = (``add``|``delete``, set or map, key, value) in order.

        Raises ValueError for an element it cannot encode (before sending
        anything) and NFTError when the kernel refuses the batch.
        """
        groups: list[tuple[str, str, list[bytes]]] = []
        for verb, obj, key, value in ops:
            attrs = _element_attrs(obj, key, value if verb == "add" else None)
            if not attrs[0]:
                continue
            if groups and groups[-1][0] == verb and groups[-1][1] == obj.name:
                groups[-1][2].extend(attrs)
            else:
                groups.append((verb, obj.name, list(attrs)))
        msgs = [self._msg(_NFNL_MSG_BATCH_BEGIN, _NLM_F_REQUEST, 0, _NFNL_SUBSYS_NFTABLES, b"")]
        first_seq = self._seq + 1
        for verb, name, elems in groups:
            payload = (_nla(1, self.table) + _nla(2, name.encode() + b"\0")
                       + _nla(3 | _NLA_F_NESTED,
                              b"".join(_nla(1 | _NLA_F_NESTED, e) for e in elems)))
            mtype = (_NFNL_SUBSYS_NFTABLES << 8) | (
                _NFT_MSG_NEWSETELEM if verb == "add" else _NFT_MSG_DELSETELEM)
            flags = _NLM_F_REQUEST | _NLM_F_ACK | (_NLM_F_CREATE if verb == "add" else 0)
            msgs.append(self._msg(mtype, flags, self.family, 0, payload))
        expect = set(range(first_seq, self._seq + 1))
        msgs.append(self._msg(_NFNL_MSG_BATCH_END, _NLM_F_REQUEST, 0, _NFNL_SUBSYS_NFTABLES, b""))
        sock = self._socket()
        sock.sendall(b"".join(msgs))
        errors: list[str] = []
        while expect:
            data = sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, mtype, _, seq, _ = struct.unpack_from("=IHHII", data, off)
                if mtype == _NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, off + 16)
                    expect.discard(seq)
                    if code != 0:
                        errors.append(os.strerror(-code))
                        expect.clear()  # the batch is aborted: no more answers come
                off += max(length + (-length % 4), 16)
        if errors:
            kind = nft.classify_error(errors[0])
            raise nft.NFTError(f"netlink set-element batch refused: {errors[0]}", kind=kind)
