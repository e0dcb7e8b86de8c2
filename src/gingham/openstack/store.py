"""What the ML2 driver writes to the datastore, compare-and-swap; no Neutron import.

Every write is one of two kinds:

- *latest wins* (``expected=None``, the driver's hooks): read the key, write
  over what was read, and on a lost race read again and write again; the
  document comes from Neutron's state after its commit, so it is the newest;
- *unless changed* (``expected=<revision>``, the resync): write only if the key
  is still at the revision the resync saw before it read Neutron (0: absent);
  otherwise a hook wrote it since, from newer state, and the resync leaves it.

Nothing is written over a document that lacks the driver's annotation (an
operator's resource of the same name): that is refused, never overwritten.
Documents are validated by the model before they are written. One lock
serialises the driver's writes inside its process (Neutron's greenthreads);
between processes compare-and-swap does.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gingham.datastore import keys
from gingham.datastore.base import Datastore, KeyValue
from gingham.datastore.retry import Backoff
from gingham.errors import AlreadyExists, NotFound, RevisionConflict
from gingham.ipam import IPAM
from gingham.ipam import keys as ipam_keys
from gingham.ipam.block import IPAddress
from gingham.ipam.unreadable import read_block
from gingham.model import FelixConfiguration, decode_document, parse_resource, to_dict
from gingham.model.endpoints import parse_interface_prefixes
from gingham.openstack import names, ports, secgroups, subnets
from gingham.openstack.names import Refused
from gingham.timestamps import rfc3339

log = logging.getLogger(__name__)

FELIX_DEFAULT = "default"
_SERVER_SET = ("uid", "creationTimestamp", "resourceVersion")


def _now() -> str:
    return rfc3339(precision="seconds")


def _comparable(doc: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (doc.get("metadata") or {}).items() if k not in _SERVER_SET}
    return {**doc, "metadata": meta}


def _mark(kv: KeyValue | None, annotation: str) -> str | None:
    if kv is None:
        return None
    meta = kv.value.get("metadata")
    value = (meta.get("annotations") or {}).get(annotation) if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def wep_key(doc: Mapping[str, Any]) -> str:
    meta = doc["metadata"]
    return keys.resource_key("WorkloadEndpoint", meta["name"], meta["namespace"])


def profile_key(sg_id: str) -> str:
    return keys.resource_key("Profile", names.profile_name(sg_id))


def pool_key(subnet_id: str) -> str:
    return keys.resource_key("IPPool", names.pool_name(subnet_id))


class Store:
    """The driver's writer over one datastore. Thread-safe (one lock)."""

    def __init__(self, ds: Datastore, *, sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], str] = _now,
                 new_uid: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.ds = ds
        self.lock = threading.RLock()
        self.backoff = Backoff(sleep)
        self._now = now
        self._new_uid = new_uid

    # -- reads -----------------------------------------------------------------

    def check_reachable(self) -> None:
        """Unavailable (or another DatastoreError) if the datastore cannot be read."""
        self.ds.revision()

    def node_exists(self, host: str) -> bool:
        """Whether a gingham agent runs on ``host`` (its Node resource exists)."""
        return bool(host) and self.ds.get(keys.resource_key("Node", host)) is not None

    def list_owned(self, kind: str, annotation: str) -> dict[str, KeyValue]:
        """Every stored ``kind`` the driver wrote (by its annotation), by key."""
        items, _ = self.ds.list(keys.resource_prefix(kind))
        return {kv.key: kv for kv in items if _mark(kv, annotation)}

    def list_handles(self) -> dict[str, KeyValue]:
        items, _ = self.ds.list(ipam_keys.handle_key(names.HANDLE_PREFIX))
        return {kv.key: kv for kv in items}

    # -- one document ---------------------------------------------------------------

    def put(self, key: str, doc: Mapping[str, Any], annotation: str,
            expected: int | None = None) -> bool:
        """Write ``doc`` at ``key`` (see the module docstring); True if the key now
        holds it. Refused if the key holds someone else's document."""
        with self.lock:
            if expected is not None:
                return self._put_once(key, doc, annotation, self.ds.get(key), expected)
            return self.backoff.run(f"write {key}", lambda: self._put_latest(key, doc, annotation))

    def _put_latest(self, key: str, doc: Mapping[str, Any], annotation: str) -> bool:
        kv = self.ds.get(key)
        if not self._put_once(key, doc, annotation, kv, kv.mod_revision if kv else 0):
            raise RevisionConflict(key)
        return True

    def _put_once(self, key: str, doc: Mapping[str, Any], annotation: str,
                  kv: KeyValue | None, expected: int) -> bool:
        if (kv.mod_revision if kv else 0) != expected:
            return False
        if kv is not None and not _mark(kv, annotation):
            raise Refused(key, "exists and was not written by the OpenStack driver "
                               f"(no {annotation} annotation): not overwritten")
        if kv is not None and _comparable(kv.value) == _comparable(doc):
            return True
        body = dict(doc)
        meta = dict(body["metadata"])
        old = kv.value.get("metadata") if kv is not None else None
        old = old if isinstance(old, dict) else {}
        meta["uid"] = old.get("uid") if isinstance(old.get("uid"), str) else self._new_uid()
        stamp = old.get("creationTimestamp")
        meta["creationTimestamp"] = stamp if isinstance(stamp, str) else self._now()
        meta.pop("resourceVersion", None)
        body["metadata"] = meta
        try:
            if kv is None:
                self.ds.create(key, body)
            else:
                self.ds.update(key, body, revision=kv.mod_revision)
        except (AlreadyExists, RevisionConflict, NotFound):
            return False
        return True

    def delete(self, key: str, annotation: str, owner: str | None = None,
               expected: int | None = None) -> bool:
        """Delete the driver's document at ``key`` (whose annotation is ``owner``, if
        given); True if it is gone. Someone else's document is left alone."""
        with self.lock:
            for attempt in range(self.backoff.attempts):
                if attempt:
                    self.backoff.pause(attempt - 1)
                kv = self.ds.get(key)
                if kv is None:
                    return True
                if expected is not None and kv.mod_revision != expected:
                    return False
                mark = _mark(kv, annotation)
                if not mark or (owner is not None and mark != owner):
                    return False
                try:
                    self.ds.delete(key, revision=kv.mod_revision)
                    return True
                except NotFound:
                    return True
                except RevisionConflict:
                    if expected is not None:
                        return False
            raise RevisionConflict(f"delete {key}: gave up after {self.backoff.attempts} "
                                   "compare-and-swap conflicts")

    # -- the agent's interface prefix -------------------------------------------

    def ensure_tap_prefix(self) -> bool:
        """Make ``tap`` a workload interface prefix in FelixConfiguration ``default``
        (added to what is there, as networking-calico does); False if that
        document cannot be read (left alone, logged)."""
        key = keys.resource_key("FelixConfiguration", FELIX_DEFAULT)

        def step() -> bool:
            kv = self.ds.get(key)
            body: dict[str, Any] = dict(kv.value) if kv is not None else {
                "apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration",
                "metadata": {"name": FELIX_DEFAULT}, "spec": {}}
            current = decode_document(body)
            if not isinstance(current, FelixConfiguration):
                log.error("FelixConfiguration %s is unreadable (%s): left alone, so VMs' "
                          "tap interfaces may not be programmed", FELIX_DEFAULT,
                          getattr(current, "reason", current))
                return False
            value = current.spec.interface_prefix
            prefixes = parse_interface_prefixes(value)
            if any(names.TAP_PREFIX.startswith(p) for p in prefixes):
                return True
            spec = dict(body.get("spec") or {})
            spec["interfacePrefix"] = ",".join((*prefixes, names.TAP_PREFIX))
            body["spec"] = spec
            doc = to_dict(parse_resource(body))
            try:
                if kv is None:
                    self.ds.create(key, doc)
                else:
                    self.ds.update(key, doc, revision=kv.mod_revision)
            except (AlreadyExists, NotFound):
                raise RevisionConflict(key) from None
            log.info("FelixConfiguration %s: interfacePrefix %s", FELIX_DEFAULT,
                     spec["interfacePrefix"])
            return True

        with self.lock:
            return self.backoff.run(f"write {key}", step)

    # -- subnets ------------------------------------------------------------------

    def pools(self) -> list[dict[str, Any]]:
        items, _ = self.ds.list(keys.resource_prefix("IPPool"))
        return [dict(kv.value) for kv in items]

    def put_subnet(self, subnet: Mapping[str, Any], expected: int | None = None) -> bool:
        """The subnet's IPPool; Refused if it overlaps another pool."""
        with self.lock:
            subnet_id = names.neutron_id("subnet", subnet.get("id"))
            problem = subnets.overlap_problem(subnet, self.pools())
            if problem:
                raise Refused(f"subnet {subnet_id}", problem)
            key = pool_key(subnet_id)
            kv = self.ds.get(key)
            doc = subnets.pool_document(subnet, kv.value if kv is not None else None)
            return self.put(key, doc, names.SUBNET_ANNOTATION, expected)

    def check_subnet(self, subnet: Mapping[str, Any]) -> None:
        """Refused if the subnet cannot have a pool (before Neutron commits it)."""
        subnets.pool_document(subnet)
        problem = subnets.overlap_problem(subnet, self.pools())
        if problem:
            raise Refused(f"subnet {subnet.get('id') or subnet.get('cidr')}", problem)

    def delete_subnet(self, subnet_id: str, expected: int | None = None) -> bool:
        sid = names.neutron_id("subnet", subnet_id)
        return self.delete(pool_key(sid), names.SUBNET_ANNOTATION, sid, expected)

    # -- security groups ------------------------------------------------------------

    def put_group(self, group: Mapping[str, Any],
                  rules: Iterable[Mapping[str, Any]] | None = None,
                  expected: int | None = None) -> list[Refused]:
        """The group's Profile; returns the rules left out (each logged)."""
        doc, left_out = secgroups.profile_document(group, rules)
        for refused in left_out:
            log.warning("security group %s (%s): %s left out: %s", group.get("id"),
                        group.get("name") or "", refused.what, refused.reason)
        sg_id = names.neutron_id("security group", group.get("id"))
        self.put(profile_key(sg_id), doc, names.SECURITY_GROUP_ANNOTATION, expected)
        return left_out

    def has_group(self, sg_id: str) -> bool:
        return self.ds.get(profile_key(names.neutron_id("security group", sg_id))) is not None

    def delete_group(self, sg_id: str, expected: int | None = None) -> bool:
        sid = names.neutron_id("security group", sg_id)
        return self.delete(profile_key(sid), names.SECURITY_GROUP_ANNOTATION, sid, expected)

    # -- ports ----------------------------------------------------------------------

    def put_port(self, port: Mapping[str, Any], expected: int | None = None,
                 previous: Mapping[str, Any] | None = None) -> bool:
        """The port's addresses in IPAM, then its endpoint (``previous``: the port
        as it was, whose endpoint goes if it had another name). With ``expected``,
        nothing is done unless the endpoint is still at that revision."""
        doc = ports.endpoint_document(port)
        key = wep_key(doc)
        with self.lock:
            if expected is not None and self._revision(key) != expected:
                return False
            self._addresses(port, doc)
            done = self.put(key, doc, names.PORT_ANNOTATION, expected)
            if previous is not None and ports.bound_here(previous):
                try:
                    old_key = wep_key(ports.endpoint_document(previous))
                except Refused:
                    old_key = key
                if old_key != key:
                    self.delete(old_key, names.PORT_ANNOTATION, doc["spec"]["endpoint"])
            return done

    def delete_port(self, port: Mapping[str, Any], expected: int | None = None,
                    key: str | None = None) -> bool:
        """The port's endpoint, then its addresses."""
        port_id = names.neutron_id("port", port.get("id"))
        with self.lock:
            if key is None:
                try:
                    key = wep_key(ports.endpoint_document(port))
                except Refused:
                    key = None
            if key is not None and not self.delete(key, names.PORT_ANNOTATION, port_id,
                                                   expected):
                return False
            self.release_port(port_id)
            return True

    def release_port(self, port_id: str) -> None:
        with self.lock:
            IPAM(self.ds, host="neutron").release_by_handle(names.ipam_handle(port_id))

    def _revision(self, key: str) -> int:
        kv = self.ds.get(key)
        return kv.mod_revision if kv is not None else 0

    def _addresses(self, port: Mapping[str, Any], doc: Mapping[str, Any]) -> None:
        """Hold exactly the port's addresses in gingham IPAM, for its host."""
        spec, meta = doc["spec"], doc["metadata"]
        port_id, host = spec["endpoint"], spec["node"]
        handle = names.ipam_handle(port_id)
        attrs = {"namespace": meta["namespace"], "workload": spec["workload"], "host": host}
        owned = [p for p in self.pools() if subnets.owned_subnet(p)]
        want = ports.addresses(port)
        for addr in want:
            if not any(addr in ipaddress.ip_network(str(p["spec"]["cidr"])) for p in owned):
                raise Refused(f"port {port_id}", f"address {addr} lies in no Neutron subnet "
                                                 "the driver has an IPPool for")
        ipam = IPAM(self.ds, host=host)
        for addr in ipam.held_by(handle):
            if addr not in want:
                ipam.release_ips([addr], handle=handle)
        for addr in want:
            holder = self._holder(ipam, addr)
            if holder is not None:
                if holder.handle == handle and dict(attrs) == {
                        "namespace": holder.namespace, "workload": holder.workload,
                        "host": holder.host}:
                    continue
                if holder.handle != handle and names.port_of_handle(holder.handle) is None:
                    raise Refused(f"port {port_id}", f"address {addr} is held in gingham IPAM "
                                                     f"by {holder.handle!r}, not by a port")
                # a moved port, or a port Neutron deleted while the datastore was away:
                # Neutron's IPAM owns the subnet, so the address is this port's now
                ipam.release_ips([addr], handle=holder.handle)
            ipam.assign(addr, handle, attrs)

    def _holder(self, ipam: IPAM, addr: IPAddress) -> Any:
        cidr = ipam.find_block(addr)
        if cidr is None:
            return None
        kv = self.ds.get(ipam_keys.block_key(cidr))
        if kv is None:
            return None
        block = read_block(kv)
        return block.holder(block.ordinal_of(addr))
