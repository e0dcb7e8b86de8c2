"""This host in the datastore: its Node resource and its liveness key.

The Node resource is merged, not overwritten: an operator may have set
fields (an AS number, a route-reflector cluster id, labels) that the agent
must keep; the agent owns only the addresses it detects.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from gingham.datastore import keys
from gingham.datastore.base import Datastore
from gingham.errors import AlreadyExists, NotFound, RevisionConflict
from gingham.ipam.retry import Backoff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostAddresses:
    ipv4: str | None  # CIDR form, e.g. 192.0.2.11/24
    ipv6: str | None = None


def node_document(
    name: str, addrs: HostAddresses, current: dict[str, Any] | None
) -> dict[str, Any]:
    """This host's Node: ``current`` with the detected addresses put in.

    Whatever shape ``current`` has, the result is a Node: parts that are not
    mappings (``spec: "oops"``) are replaced, readable operator fields kept.
    """
    fresh = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {},
    }
    doc: dict[str, Any] = (
        dict(current) if current is not None and _readable_node(current, name) else fresh
    )
    spec = doc["spec"] = _mapping(doc.get("spec"))
    bgp = spec["bgp"] = _mapping(spec.get("bgp"))
    if addrs.ipv4:
        bgp["ipv4Address"] = addrs.ipv4
    if addrs.ipv6:
        bgp["ipv6Address"] = addrs.ipv6
    spec["addresses"] = [
        {"address": a.split("/")[0], "type": "InternalIP"} for a in (addrs.ipv4, addrs.ipv6) if a
    ]
    return doc


def _readable_node(doc: Any, name: str) -> bool:
    if not isinstance(doc, dict) or not doc:
        return False
    meta = doc.get("metadata")
    return (
        doc.get("kind") == "Node"
        and isinstance(meta, dict)
        and meta.get("name") == name
    )


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def register_node(
    ds: Datastore,
    name: str,
    addrs: HostAddresses,
    known: dict[str, Any] | None = None,
    backoff: Backoff | None = None,
) -> None:
    """Write this host's Node. ``known`` is its last readable version, used when the
    stored one cannot be read (its operator fields and tunnel address are kept)."""
    key = keys.resource_key("Node", name)

    def step() -> None:
        current = ds.get(key)
        base = current.value if current else None
        if known is not None and (base is None or not _readable_node(base, name)):
            base = known
        doc = node_document(name, addrs, base)
        if current is not None and current.value == doc:
            return
        try:
            if current is None:
                ds.create(key, doc)
            else:
                ds.update(key, doc, revision=current.mod_revision)
        except (AlreadyExists, NotFound):
            raise RevisionConflict(key) from None
        log.info("registered node %s (%s)", name, addrs)

    (backoff or Backoff(time.sleep)).run(f"register node {name}", step)


@dataclass
class Liveness:
    """A key under a lease: it vanishes on its own when the agent stops refreshing."""

    ds: Datastore
    host: str
    ttl: int = 10
    lease: int = 0

    def refresh(self, now: float) -> None:
        if self.lease:
            try:
                self.ds.keepalive(self.lease)
                return
            except NotFound:
                self.lease = 0  # expired while we were away: take a new one
        self.lease = self.ds.grant_lease(self.ttl)
        key = keys.liveness_key(self.host)
        value = {"host": self.host, "since": now}
        current = self.ds.get(key)
        if current is None:
            self.ds.create(key, value, lease=self.lease)
        else:
            self.ds.update(key, value, revision=current.mod_revision, lease=self.lease)
