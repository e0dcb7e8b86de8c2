"""Resync: make the datastore say what Neutron's database says; no Neutron import.

Order matters for running beside the driver's hooks: the resync first lists
what the driver wrote (each key's revision), *then* reads Neutron, then
writes each key only if it is still at the revision it listed (deletes
likewise). A hook that wrote a key in between wrote newer state, and the
resync leaves that key alone; one that wrote before the listing is already in
the state the resync read. So a resync never puts back an older Neutron view.

What it repairs: subnets' pools, groups' profiles, bound ports' endpoints and
IPAM addresses (written while the datastore was away, half-done by a failed
call, or changed while the driver was down); what it removes: pools,
profiles, endpoints and ``openstack.*`` IPAM handles of the driver's whose
subnet, group or port is gone or no longer bound here. Nothing without the
driver's annotation is touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gingham.datastore.base import KeyValue
from gingham.errors import GinghamError
from gingham.ipam import keys as ipam_keys
from gingham.openstack import names, ports
from gingham.openstack.names import Refused
from gingham.openstack.store import Store, pool_key, profile_key, wep_key

log = logging.getLogger(__name__)

ACTIVE = "ACTIVE"


@dataclass(frozen=True)
class NeutronState:
    """What the resync reads of Neutron: API dicts, as the plugin's getters return them
    (groups with their ``security_group_rules``)."""

    subnets: list[Mapping[str, Any]]
    groups: list[Mapping[str, Any]]
    ports: list[Mapping[str, Any]]


@dataclass
class Report:
    written: list[str] = field(default_factory=list)  # keys created or changed
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # changed by a hook meanwhile
    refused: list[str] = field(default_factory=list)  # "<what>: <why>"
    failed: list[str] = field(default_factory=list)  # errors, retried next time
    activate: list[str] = field(default_factory=list)  # bound, endpoint written, not ACTIVE

    def __str__(self) -> str:
        return (f"{len(self.written)} written, {len(self.deleted)} deleted, "
                f"{len(self.skipped)} skipped, {len(self.refused)} refused, "
                f"{len(self.failed)} failed")


def _rev(kv: KeyValue | None) -> int:
    return kv.mod_revision if kv is not None else 0


def resync(store: Store, read_neutron: Callable[[], NeutronState]) -> Report:
    """One pass (see the module docstring). Errors of one item are reported, never
    fatal to the pass; DatastoreError from the first listing is raised."""
    pools = store.list_owned("IPPool", names.SUBNET_ANNOTATION)
    profiles = store.list_owned("Profile", names.SECURITY_GROUP_ANNOTATION)
    endpoints = store.list_owned("WorkloadEndpoint", names.PORT_ANNOTATION)
    handles = store.list_handles()
    state = read_neutron()
    report = Report()
    _subnets(store, state.subnets, pools, report)
    _groups(store, state.groups, profiles, report)
    try:
        store.ensure_tap_prefix()
    except GinghamError as exc:
        report.failed.append(f"FelixConfiguration: {exc}")
    _ports(store, state.ports, endpoints, handles, report)
    return report


def _attempt(report: Report, what: str, step: Callable[[], None]) -> None:
    try:
        step()
    except Refused as exc:
        log.warning("resync: %s", exc)
        report.refused.append(str(exc))
    except (GinghamError, ValueError, KeyError, TypeError) as exc:
        log.error("resync: %s: %s", what, exc)
        report.failed.append(f"{what}: {exc}")


def _record(report: Report, key: str, seen: KeyValue | None, done: bool, store: Store) -> None:
    if not done:
        report.skipped.append(key)
    elif _rev(store.ds.get(key)) != _rev(seen):
        report.written.append(key)


def _subnets(store: Store, subnets: Iterable[Mapping[str, Any]],
             pools: dict[str, KeyValue], report: Report) -> None:
    wanted: set[str] = set()
    for subnet in subnets:
        def step(subnet: Mapping[str, Any] = subnet) -> None:
            key = pool_key(names.neutron_id("subnet", subnet.get("id")))
            wanted.add(key)
            seen = pools.get(key)
            _record(report, key, seen, store.put_subnet(subnet, _rev(seen)), store)
        _attempt(report, f"subnet {subnet.get('id')}", step)
    for key, kv in pools.items():
        if key not in wanted:
            def drop(key: str = key, kv: KeyValue = kv) -> None:
                owner = kv.value["metadata"]["annotations"][names.SUBNET_ANNOTATION]
                if store.delete_subnet(owner, kv.mod_revision):
                    report.deleted.append(key)
            _attempt(report, key, drop)


def _groups(store: Store, groups: Iterable[Mapping[str, Any]],
            profiles: dict[str, KeyValue], report: Report) -> None:
    wanted: set[str] = set()
    for group in groups:
        def step(group: Mapping[str, Any] = group) -> None:
            key = profile_key(names.neutron_id("security group", group.get("id")))
            wanted.add(key)
            seen = profiles.get(key)
            before = _rev(store.ds.get(key))
            if before != _rev(seen):
                report.skipped.append(key)
                return
            store.put_group(group, expected=before)
            _record(report, key, seen, True, store)
        _attempt(report, f"security group {group.get('id')}", step)
    for key, kv in profiles.items():
        if key not in wanted:
            def drop(key: str = key, kv: KeyValue = kv) -> None:
                owner = kv.value["metadata"]["annotations"][names.SECURITY_GROUP_ANNOTATION]
                if store.delete_group(owner, kv.mod_revision):
                    report.deleted.append(key)
            _attempt(report, key, drop)


def _ports(store: Store, neutron_ports: Iterable[Mapping[str, Any]],
           endpoints: dict[str, KeyValue], handles: dict[str, KeyValue],
           report: Report) -> None:
    wanted_keys: set[str] = set()
    wanted_ports: set[str] = set()
    for port in neutron_ports:
        if not (ports.bound_here(port) and ports.is_vm_port(port)):
            continue

        def step(port: Mapping[str, Any] = port) -> None:
            port_id = names.neutron_id("port", port.get("id"))
            wanted_ports.add(port_id)
            key = wep_key(ports.endpoint_document(port))
            wanted_keys.add(key)
            seen = endpoints.get(key)
            done = store.put_port(port, expected=_rev(seen))
            _record(report, key, seen, done, store)
            if done and port.get("status") != ACTIVE:
                report.activate.append(port_id)
        _attempt(report, f"port {port.get('id')}", step)
    for key, kv in endpoints.items():
        if key in wanted_keys:
            continue

        def drop(key: str = key, kv: KeyValue = kv) -> None:
            owner = kv.value["metadata"]["annotations"][names.PORT_ANNOTATION]
            if store.delete(key, names.PORT_ANNOTATION, owner, kv.mod_revision):
                report.deleted.append(key)
            else:
                report.skipped.append(key)
        _attempt(report, key, drop)
    for hkey, kv in handles.items():
        port_id = names.port_of_handle(hkey.removeprefix(ipam_keys.HANDLES))
        if port_id is None or port_id in wanted_ports:
            continue

        def release(hkey: str = hkey, kv: KeyValue = kv, port_id: str = port_id) -> None:
            with store.lock:
                if _rev(store.ds.get(hkey)) != kv.mod_revision:
                    report.skipped.append(hkey)  # a hook allocated for the port since
                    return
                store.release_port(port_id)
                report.deleted.append(hkey)
        _attempt(report, hkey, release)
