"""After a restart: give back what Docker let go while the plugin was away.

Docker replays nothing. A ``docker rm -f`` while the plugin is down costs
Docker its Leave, DeleteEndpoint and ReleaseAddress calls, and the
endpoint, veth and address would stay forever. At start the plugin notes what
it holds on this node (``snapshot``: WorkloadEndpoints and pending records it
wrote, addresses under its handles); once the daemon answers, whatever of that
the daemon no longer has attached is removed, and the endpoints still attached
but pending get their labels followed again. Only the snapshot is considered:
anything made after the plugin started is in use by a call Docker is making
now. If the daemon cannot be asked, nothing is removed.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from gingham.datastore import keys
from gingham.datastore.base import Datastore
from gingham.docker import veth
from gingham.docker.engine import Attached
from gingham.docker.ipam_driver import HANDLE_PREFIX
from gingham.docker.network_driver import NETWORK_ID_ANNOTATION, ORCHESTRATOR
from gingham.errors import NotFound
from gingham.ipam import IPAM
from gingham.ipam import keys as ipam_keys
from gingham.ipam.block import affinity_host
from gingham.ipam.unreadable import scan_blocks

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Held:
    endpoints: dict[str, list[str]]  # endpoint id -> its WorkloadEndpoint or pending key
    pending: dict[str, str]  # endpoint id -> network id, for those not written yet
    handles: dict[str, frozenset[str]]  # handle -> the addresses it holds


@dataclass(slots=True)
class Outcome:
    endpoints: list[str] = field(default_factory=list)
    handles: list[str] = field(default_factory=list)
    follow: list[tuple[str, str]] = field(default_factory=list)  # (network, endpoint)


def _ours(doc: object, node: str) -> dict[str, Any] | None:
    """The document's spec if it is an endpoint this node's driver wrote."""
    spec = doc.get("spec") if isinstance(doc, dict) else None
    if isinstance(spec, dict) and spec.get("node") == node \
            and spec.get("orchestrator") == ORCHESTRATOR \
            and isinstance(spec.get("endpoint"), str):
        return spec
    return None


def snapshot(ds: Datastore, node: str) -> Held:
    endpoints: dict[str, list[str]] = {}
    for kv in ds.list(keys.resource_prefix("WorkloadEndpoint"))[0]:
        if (spec := _ours(kv.value, node)) is not None:
            endpoints.setdefault(spec["endpoint"], []).append(kv.key)
    pending: dict[str, str] = {}
    for kv in ds.list(keys.docker_pending_prefix(node))[0]:
        spec = _ours(kv.value, node)
        network_id = None if spec is None else \
            ((kv.value.get("metadata") or {}).get("annotations") or {}).get(NETWORK_ID_ANNOTATION)
        if spec is None or not isinstance(network_id, str):
            log.warning("pending record %s is not one this driver wrote: left alone", kv.key)
            continue
        endpoints.setdefault(spec["endpoint"], []).append(kv.key)
        pending[spec["endpoint"]] = network_id
    handles: dict[str, set[str]] = {}
    blocks, _bad = scan_blocks(ds.list(ipam_keys.BLOCKS)[0])
    for _kv, block in blocks:
        owner = affinity_host(block.affinity)
        for ordinal, attrs in block.allocated():
            if attrs.handle.startswith(HANDLE_PREFIX) and (attrs.host or owner) == node:
                handles.setdefault(attrs.handle, set()).add(str(block.ip_of(ordinal)))
    return Held(endpoints, pending, {h: frozenset(ips) for h, ips in handles.items()})


def reconcile(ds: Datastore, ipam: IPAM, held: Held, attached: list[Attached]) -> Outcome:
    """Remove what ``held`` has and the daemon (``attached``, read after ``held``) does not."""
    live_endpoints = {a.endpoint_id for a in attached}
    live_addresses = {ip for a in attached for ip in a.addresses}
    done = Outcome()
    for endpoint_id, endpoint_keys in sorted(held.endpoints.items()):
        if endpoint_id in live_endpoints:
            if endpoint_id in held.pending:
                done.follow.append((held.pending[endpoint_id], endpoint_id))
            continue
        veth.delete(endpoint_id)
        for key in endpoint_keys:
            with contextlib.suppress(NotFound):
                ds.delete(key)
        done.endpoints.append(endpoint_id)
    for handle, ips in sorted(held.handles.items()):
        if ips & live_addresses:
            continue
        ipam.release_by_handle(handle)
        done.handles.append(handle)
    if done.endpoints or done.handles:
        log.warning("the Docker daemon no longer has %d endpoint(s) and %d address(es) this "
                    "node's driver held: removed %s, released %s", len(done.endpoints),
                    len(done.handles), done.endpoints, done.handles)
    return done
