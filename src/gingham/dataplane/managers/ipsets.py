"""IP-set messages -> nft sets, reference-counted by the rules that use them (no I/O)."""

from __future__ import annotations

import ipaddress
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from gingham.calc import messages as m
from gingham.dataplane import layout, nft
from gingham.dataplane.managers.state import Key, TableState
from gingham.dataplane.policy import SetRef
from gingham.errors import ValidationError

log = logging.getLogger(__name__)


def _net_key(text: str) -> tuple[int, Key, bool]:
    """(family, element key, is a single address) of a member CIDR.

    calc sends canonical CIDRs, so the common case (a /32 or /128) needs no
    parsing; anything else goes through :mod:`ipaddress`.
    """
    if ":" in text:
        if text.endswith("/128"):
            return 6, (text[:-4],), True
    elif text.endswith("/32"):
        return 4, (text[:-3],), True
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise ValidationError(f"bad IP-set member {text!r}: {exc}") from None
    host = net.prefixlen == net.max_prefixlen
    return net.version, ((str(net.network_address) if host else str(net)),), host


def _port_key(member: str) -> tuple[int, Key]:
    try:
        addr, _, pp = member.partition(",")
        proto, _, port = pp.partition(":")
        ip = ipaddress.ip_address(addr)
        p = int(port)
    except ValueError as exc:
        raise ValidationError(f"bad named-port member {member!r}: {exc}") from None
    return ip.version, (str(ip), layout.proto_name(proto), str(p))


class IPSetManager:
    def __init__(self, state: TableState) -> None:
        self._state = state
        self._members: dict[str, tuple[str, set[str]]] = {}  # set_id -> (kind, members)
        self._has_prefix: dict[str, bool] = {}
        self._refs: dict[tuple[str, str], int] = defaultdict(int)  # (set_id, kind)

    def _names(self, set_id: str, kind: str) -> list[nft.Set]:
        if kind == "net":
            return [layout.net_set(set_id, 4), layout.net_set(set_id, 6)]
        return [layout.port_set(set_id, 4), layout.port_set(set_id, 6)]

    def _ensure(self, set_id: str, kind: str) -> None:
        for s in self._names(set_id, kind):
            self._state.ensure_set(s)

    def _desired_elements(self, set_id: str, kind: str, members: set[str]) -> dict[int, set[Key]]:
        out: dict[int, set[Key]] = {4: set(), 6: set()}
        if kind == "net-port":
            for mem in members:
                fam, key = _port_key(mem)
                out[fam].add(key)
            return out
        if not self._has_prefix.get(set_id, False):
            for mem in members:
                fam, key, _ = _net_key(mem)
                out[fam].add(key)
            return out
        # interval sets refuse overlaps: collapse (only needed when prefixes exist)
        nets: dict[int, list[Any]] = {4: [], 6: []}
        for mem in members:
            net = ipaddress.ip_network(mem, strict=False)
            nets[net.version].append(net)
        for fam, lst in nets.items():
            for net in ipaddress.collapse_addresses(lst):
                host = net.prefixlen == net.max_prefixlen
                out[fam].add(((str(net.network_address) if host else str(net)),))
        return out

    def _rewrite(self, set_id: str) -> None:
        kind, members = self._members[set_id]
        want = self._desired_elements(set_id, kind, members)
        for fam, s in zip((4, 6), self._names(set_id, kind), strict=True):
            cur = self._state.elements[s.name]
            self._state.del_elements(s.name, list(cur - want[fam]))
            self._state.add_elements(s.name, want[fam] - cur)

    def update(self, msg: m.IPSetUpdate) -> None:
        old = self._members.get(msg.set_id)
        if old is not None and old[0] != msg.kind:
            self.remove(m.IPSetRemove(msg.set_id))
        self._members[msg.set_id] = (msg.kind, set(msg.members))
        self._has_prefix[msg.set_id] = msg.kind == "net" and any(
            not _net_key(x)[2] for x in msg.members
        )
        self._ensure(msg.set_id, msg.kind)
        self._rewrite(msg.set_id)

    def delta(self, msg: m.IPSetDeltaUpdate) -> None:
        entry = self._members.get(msg.set_id)
        if entry is None:
            log.warning("delta for unknown IP set %s ignored", msg.set_id)
            return
        kind, members = entry
        members -= msg.removed
        members |= msg.added
        if kind == "net":
            keyed = [_net_key(x) for x in msg.added]
            if self._has_prefix[msg.set_id] or any(not host for _, _, host in keyed):
                self._has_prefix[msg.set_id] = any(not _net_key(x)[2] for x in members)
                self._rewrite(msg.set_id)
                return
            for fam, key, _ in keyed:
                self._state.add_elements(layout.net_set_name(msg.set_id, fam), [key])
            for x in msg.removed:
                fam, key, _ = _net_key(x)
                self._state.del_elements(layout.net_set_name(msg.set_id, fam), [key])
            return
        for x in msg.added:
            fam, key = _port_key(x)
            self._state.add_elements(layout.port_set_name(msg.set_id, fam), [key])
        for x in msg.removed:
            fam, key = _port_key(x)
            self._state.del_elements(layout.port_set_name(msg.set_id, fam), [key])

    def remove(self, msg: m.IPSetRemove) -> None:
        entry = self._members.pop(msg.set_id, None)
        self._has_prefix.pop(msg.set_id, None)
        if entry is None:
            return
        kind = entry[0]
        for s in self._names(msg.set_id, kind):
            if self._refs.get((msg.set_id, kind), 0) > 0:
                self._state.del_elements(s.name, list(self._state.elements.get(s.name, ())))
            else:
                self._state.remove_set(s.name)

    def ref(self, refs: Iterable[SetRef]) -> None:
        for key in {(r.set_id, r.kind) for r in refs}:
            self._refs[key] += 1
            self._ensure(*key)

    def unref(self, refs: Iterable[SetRef]) -> None:
        for key in {(r.set_id, r.kind) for r in refs}:
            self._refs[key] -= 1
            if self._refs[key] <= 0:
                del self._refs[key]
                entry = self._members.get(key[0])
                if entry is None or entry[0] != key[1]:
                    for s in self._names(*key):
                        self._state.remove_set(s.name)
