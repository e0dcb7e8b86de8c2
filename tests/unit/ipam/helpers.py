"""Helpers for IPAM tests: pools and reservations written as stored resources."""

from __future__ import annotations

from typing import Any

from gingham.datastore.base import Datastore
from gingham.datastore.keys import resource_key


def put_pool(ds: Datastore, name: str, cidr: str, block_size: int | None = None,
             **spec: Any) -> None:
    body: dict[str, Any] = {"cidr": cidr, **spec}
    if block_size is not None:
        body["blockSize"] = block_size
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
           "metadata": {"name": name}, "spec": body}
    key = resource_key("IPPool", name)
    kv = ds.get(key)
    if kv is None:
        ds.create(key, doc)
    else:
        ds.update(key, doc, revision=kv.mod_revision)


def put_reservation(ds: Datastore, name: str, cidrs: list[str]) -> None:
    ds.create(resource_key("IPReservation", name),
              {"apiVersion": "projectcalico.org/v3", "kind": "IPReservation",
               "metadata": {"name": name}, "spec": {"reservedCIDRs": cidrs}})


def put_node(ds: Datastore, name: str, labels: dict[str, str] | None = None) -> None:
    ds.create(resource_key("Node", name),
              {"apiVersion": "projectcalico.org/v3", "kind": "Node",
               "metadata": {"name": name, "labels": labels or {}}, "spec": {}})


def put_workload(ds: Datastore, namespace: str, workload: str, host: str) -> None:
    name = f"{host}-k8s-{workload}-eth0"
    ds.create(resource_key("WorkloadEndpoint", name, namespace),
              {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
               "metadata": {"name": name, "namespace": namespace},
               "spec": {"workload": workload, "node": host, "pod": workload}})
