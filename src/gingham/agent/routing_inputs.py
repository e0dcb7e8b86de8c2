"""Routing's view of the datastore, from raw documents (Calico field names).

Pure: it keeps the Node, IPPool and BGP resources and the IPAM blocks it is
fed, and converts them into the small input types of ``gingham.routing``.
It reads raw JSON documents rather than model objects so that routing does
not depend on the model's Python attribute names, only on the wire format.
Any shape may be stored under any key: a document that cannot be read
leaves the last readable version of that key in force (a route that worked
keeps working, also after a restart: ``memory``) and is reported
(``invalid_resources``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_interface, ip_network
from typing import Any

from gingham.agent.daemon import Invalid as InvalidReport
from gingham.calc.validity import Outcome
from gingham.datastore import keys
from gingham.routing.types import (
    DEFAULT_AS_NUMBER,
    BGPSettings,
    BlockInfo,
    HostInfo,
    PeerInfo,
    PoolInfo,
    vxlan_mac,
)

log = logging.getLogger(__name__)

_NODES = keys.resource_prefix("Node")
_POOLS = keys.resource_prefix("IPPool")
_BGPCONFIG = keys.resource_prefix("BGPConfiguration")
_BGPPEERS = keys.resource_prefix("BGPPeer")
_BLOCKS = keys.IPAM + "blocks/"
_WATCHED = (_NODES, _POOLS, _BGPCONFIG, _BGPPEERS, _BLOCKS)


def host_from_node(doc: dict[str, Any]) -> HostInfo:
    name = doc["metadata"]["name"]
    spec = doc.get("spec") or {}
    bgp = spec.get("bgp") or {}
    v4 = ip_interface(bgp["ipv4Address"]) if bgp.get("ipv4Address") else None
    v6 = ip_interface(bgp["ipv6Address"]) if bgp.get("ipv6Address") else None
    tunnel = spec.get("ipv4VXLANTunnelAddr")
    tunnel6 = spec.get("ipv6VXLANTunnelAddr")
    return HostInfo(
        name=name,
        address_v4=v4.ip if v4 else None,  # type: ignore[arg-type]
        subnet_v4=v4.network if v4 else None,  # type: ignore[arg-type]
        address_v6=v6.ip if v6 else None,  # type: ignore[arg-type]
        subnet_v6=v6.network if v6 else None,  # type: ignore[arg-type]
        as_number=_as_int(bgp.get("asNumber")),
        rr_cluster_id=bgp.get("routeReflectorClusterID") or None,
        labels=dict((doc.get("metadata") or {}).get("labels") or {}),
        vxlan_tunnel_v4=ip_address(tunnel) if tunnel else None,  # type: ignore[arg-type]
        vxlan_tunnel_v6=ip_address(tunnel6) if tunnel6 else None,  # type: ignore[arg-type]
        vxlan_mac=spec.get("vxlanTunnelMACAddr") or vxlan_mac(name),
    )


def pool_from_doc(doc: dict[str, Any]) -> PoolInfo:
    spec = doc.get("spec") or {}
    return PoolInfo(
        cidr=ip_network(spec["cidr"], strict=False),
        vxlan_mode=spec.get("vxlanMode") or "Never",
        nat_outgoing=bool(spec.get("natOutgoing", False)),
        disabled=bool(spec.get("disabled", False)),
    )


def block_from_doc(doc: dict[str, Any]) -> BlockInfo:
    cidr = ip_network(doc["cidr"])
    affinity = doc.get("affinity") or ""
    owner = affinity[len("host:") :] if affinity.startswith("host:") else None
    attrs = doc.get("attributes") or []
    borrowed = []
    for ordinal, idx in enumerate(doc.get("allocations") or []):
        if idx is None or idx >= len(attrs):
            continue
        holder = ((attrs[idx] or {}).get("secondary") or {}).get("host")
        if holder and holder != owner:
            borrowed.append((cidr.network_address + ordinal, holder))
    return BlockInfo(cidr=cidr, host=owner, borrowed=tuple(borrowed))


def bgp_settings(config: dict[str, Any] | None, peers: list[dict[str, Any]]) -> BGPSettings:
    spec = (config or {}).get("spec") or {}
    peer_infos = []
    for doc in peers:
        p = doc.get("spec") or {}
        peer_infos.append(
            PeerInfo(
                name=doc["metadata"]["name"],
                peer_ip=ip_address(p["peerIP"].split(":")[0]) if p.get("peerIP") else None,
                as_number=_as_int(p.get("asNumber")),
                node=p.get("node") or None,
                node_selector=p.get("nodeSelector") or None,
                peer_selector=p.get("peerSelector") or None,
                keep_original_next_hop=bool(p.get("keepOriginalNextHop", False)),
            )
        )
    # BGP is on when a default BGPConfiguration exists and does not switch it off.
    enabled = config is not None and spec.get("bgpEnabled", True) is not False
    return BGPSettings(
        enabled=enabled,
        as_number=_as_int(spec.get("asNumber")) or DEFAULT_AS_NUMBER,
        node_to_node_mesh=spec.get("nodeToNodeMeshEnabled", True) is not False,
        peers=tuple(sorted(peer_infos, key=lambda p: p.name)),
    )


def _check(key: str, value: dict[str, Any]) -> list[str]:
    """Refuse a document routing must not read; the fields it reads without, if any.

    Types are the model's (an address must be a string, a flag a boolean: never
    ``bool("false")``); fields this version does not know are left out, so that a
    Node a newer agent wrote still gives its addresses, or every route to that
    host would go. An IPAM block must decode and be the block its key names.
    """
    from gingham.datastore.base import Undecodable

    if isinstance(value, Undecodable):
        raise ValueError(f"not a JSON object: {value.reason}")
    if key.startswith(_BLOCKS):
        from gingham.ipam.block import Block
        from gingham.ipam.keys import block_key

        block = Block.from_json(value)
        if block_key(block.cidr) != key:
            raise ValueError(f"the block of {block.cidr}, not the one this key names")
        return []
    from gingham.agent.decode import decode_resource
    from gingham.model import InvalidResource, salvage_document, to_dict

    decoded = decode_resource(key, value)
    if not isinstance(decoded, InvalidResource):
        return []
    salvaged = salvage_document(value)
    if salvaged is None or isinstance(
        decode_resource(key, to_dict(salvaged[0])), InvalidResource  # another one's document
    ):
        raise ValueError(decoded.reason)
    return salvaged[1]


def peer_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """A BGPPeer document, checked now so that bgp() never meets one it cannot read."""
    bgp_settings(None, [doc])
    return doc


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"required field {exc} is missing"
    return f"{type(exc).__name__}: {exc}"


def _as_int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return int(str(value))


@dataclass
class RoutingInputs:
    hosts: dict[str, HostInfo] = field(default_factory=dict)
    pools: dict[str, PoolInfo] = field(default_factory=dict)
    blocks: dict[str, BlockInfo] = field(default_factory=dict)
    bgp_config: dict[str, Any] | None = None
    bgp_peers: dict[str, dict[str, Any]] = field(default_factory=dict)
    invalid: dict[str, InvalidReport] = field(default_factory=dict)
    memory: Any = None  # a LastValidMemory by datastore key
    dirty: bool = True
    # The document in force per key (references: no copies) and which are remembered.
    _docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _saved: set[str] = field(default_factory=set)

    @staticmethod
    def wants(key: str) -> bool:
        return key.startswith(_WATCHED)

    def on_update(self, key: str, value: dict[str, Any] | None) -> None:
        if not self.wants(key):
            return
        if value is None:
            self._docs.pop(key, None)
            self._forget(key)
            self.invalid.pop(key, None)
        try:
            unknown = self._apply(key, value)
        except Exception as exc:  # any shape at all may be stored: it costs this key only
            self._keep_last_valid(key, exc)
            return
        if value is not None:
            self._docs[key] = value
            self._forget(key)
            self.invalid.pop(key, None)
            if unknown:  # read, but not all of it: say so
                self._report(key, "fields this version does not know: " + ", ".join(unknown),
                             "unknown fields ignored")

    def _apply(self, key: str, value: dict[str, Any] | None) -> list[str]:
        """Take ``value`` in; the fields of it this version does not know."""
        unknown = _check(key, value) if value is not None else []
        if key.startswith(_NODES):
            self._put(self.hosts, key, value, host_from_node)
        elif key.startswith(_POOLS):
            self._put(self.pools, key, value, pool_from_doc)
        elif key.startswith(_BLOCKS):
            self._put(self.blocks, key, value, block_from_doc)
        elif key.startswith(_BGPPEERS):
            self._put(self.bgp_peers, key, value, peer_doc)
        elif key == keys.resource_key("BGPConfiguration", "default"):
            self._put_bgp_config(value)
        return unknown

    def _keep_last_valid(self, key: str, exc: Exception) -> None:
        """An invalid document leaves the last valid one in force (routes keep flowing),
        remembered past a restart (``calc.validity.LastValidMemory``)."""
        kept = self._docs.get(key)
        if kept is not None:
            if key not in self._saved:
                self._save(key, kept)
        else:
            kept = self._recall(key)
        self._report(key, _describe(exc), "last valid kept" if kept else "ignored")

    def _report(self, key: str, reason: str, outcome: Outcome) -> None:
        kind, _, name = key.removeprefix(keys.RESOURCES).partition("/")
        if key.startswith(_BLOCKS):
            kind, name = "IPAMBlock", key[len(_BLOCKS) :]
        report = InvalidReport(key, kind, name, None, reason, outcome)
        if self.invalid.get(key) != report:
            log.warning("invalid %s (%s): %s", key, report.outcome, report.reason)
        self.invalid[key] = report

    def _recall(self, key: str) -> dict[str, Any] | None:
        """The version a previous agent kept in force, if it still reads."""
        try:
            doc = self.memory.recall(key) if self.memory is not None else None
            if doc is None:
                return None
            self._apply(key, dict(doc))
        except Exception:
            log.warning("the remembered version of %s cannot be used either", key)
            return None
        self._docs[key] = dict(doc)
        self._saved.add(key)
        return self._docs[key]

    def _save(self, key: str, doc: dict[str, Any]) -> None:
        if self.memory is None:
            return
        try:
            self.memory.save(key, doc)
        except Exception:
            log.exception("cannot remember the last valid version of %s", key)
            return
        self._saved.add(key)

    def _forget(self, key: str) -> None:
        if self.memory is not None and (key in self._saved or key in self.invalid):
            self._saved.discard(key)
            try:
                self.memory.forget(key)
            except Exception:
                log.exception("cannot forget the last valid version of %s", key)

    def known(self, key: str) -> dict[str, Any] | None:
        """The document in force for ``key`` (the last readable one)."""
        return self._docs.get(key)

    def invalid_resources(self) -> Mapping[str, InvalidReport]:
        return self.invalid

    def _put(self, table: dict[str, Any], key: str, value: Any, convert: Any) -> None:
        # Only a change in what routing reads counts: a block document changes on
        # every allocation, its affinity and borrowed addresses hardly ever.
        new = None if value is None else convert(value)
        if table.get(key) == new:
            return
        self.dirty = True
        if new is None:
            table.pop(key, None)
        else:
            table[key] = new

    def _put_bgp_config(self, value: dict[str, Any] | None) -> None:
        if value is not None:
            bgp_settings(value, [])  # refuse what bgp() could not read later
        self.dirty = self.dirty or self.bgp_config != value
        self.bgp_config = value

    def bgp(self) -> BGPSettings:
        return bgp_settings(self.bgp_config, list(self.bgp_peers.values()))
