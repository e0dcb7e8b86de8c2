"""Neutron subnets as IPPools in Manual assignment mode: pure, no Neutron import.

Neutron's IPAM owns a subnet's addresses; gingham must route them and never
hand them out. Both follow from one IPPool per subnet:

- ``assignmentMode: Manual``: gingham IPAM serves no automatic request from
  it (CNI, Docker and tunnel addresses come from other pools);
- the driver records each bound port's addresses in gingham IPAM under handle
  ``openstack.<port>`` with the port's host (``IPAM.assign``), so the address
  is held (nobody else gets it) and sits in a block affine to, or borrowed by,
  the port's host: every agent routes it there (directly, over VXLAN as the
  pool says, or through BIRD, which exports a host's blocks and borrowed
  addresses) as it routes any CNI workload.

An IPReservation would keep gingham away from the addresses too, but IPAM
refuses to record reserved addresses, and without IPAM blocks no other host
has a route to the VM. So a Neutron subnet must not overlap any other pool
(gingham's automatic pools would hand its addresses out, and one address
space is routed flat): such a subnet is refused, as is a second Neutron
subnet overlapping the first (overlapping tenant networks are not
supported).

The pool's name is ``openstack-subnet-<subnet>``, annotated with the subnet
and network IDs. The driver enforces only ``cidr``, ``assignmentMode`` and
``disabled: false``; an operator may set ``vxlanMode``, ``natOutgoing``,
``nodeSelector`` or ``disableBGPExport`` on it and the driver keeps them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, Final

from gingham.model import parse_resource, to_dict
from gingham.model.meta import ManifestError
from gingham.openstack import names
from gingham.openstack.names import Refused

# gingham's default block sizes; a smaller subnet is one block of its own size.
_BLOCK: Final = {4: 26, 6: 122}
ENFORCED: Final = {"assignmentMode": "Manual", "disabled": False}


def subnet_cidr(subnet: Mapping[str, Any]) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(subnet.get("cidr")), strict=False)
    except ValueError:
        raise Refused(f"subnet {subnet.get('id')}", f"cidr {subnet.get('cidr')!r} is not a "
                                                    "CIDR") from None


def pool_document(subnet: Mapping[str, Any],
                  existing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The subnet's IPPool: ``existing`` (the stored pool) with the enforced fields
    set, or a new one. Validated by the model; Refused naming the problem."""
    subnet_id = names.neutron_id("subnet", subnet.get("id"))
    what = f"subnet {subnet_id}"
    net = subnet_cidr(subnet)
    spec: dict[str, Any] = dict((existing or {}).get("spec") or {})
    if spec.get("cidr") != str(net):
        spec.pop("blockSize", None)  # the old size may not fit the new CIDR
    spec["cidr"] = str(net)
    spec.setdefault("blockSize", max(_BLOCK[net.version], net.prefixlen))
    spec.update(ENFORCED)
    meta: dict[str, Any] = {
        "name": names.pool_name(subnet_id),
        "annotations": {names.SUBNET_ANNOTATION: subnet_id},
    }
    if subnet.get("network_id"):
        meta["annotations"][names.NETWORK_ANNOTATION] = names.neutron_id(
            "network", subnet.get("network_id"))
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": meta,
           "spec": spec}
    try:
        return to_dict(parse_resource(doc))
    except ManifestError as exc:
        raise Refused(what, f"its IPPool would be invalid: {exc}") from None


def overlap_problem(subnet: Mapping[str, Any], pools: Iterable[Mapping[str, Any]]) -> str | None:
    """Why the subnet cannot have its pool beside ``pools`` (stored IPPool documents),
    or None. A pool of the same subnet is no conflict."""
    subnet_id = names.neutron_id("subnet", subnet.get("id"))
    net = subnet_cidr(subnet)
    for pool in pools:
        meta = pool.get("metadata") or {}
        owner = (meta.get("annotations") or {}).get(names.SUBNET_ANNOTATION)
        if owner == subnet_id:
            continue
        try:
            other = ipaddress.ip_network(str((pool.get("spec") or {}).get("cidr")), strict=False)
        except ValueError:
            continue  # an unreadable pool is the IPAM's problem, and overlaps nothing known
        if other.version != net.version or not other.overlaps(net):
            continue
        if owner:
            return (f"{net} overlaps Neutron subnet {owner} ({other}): gingham routes one "
                    "flat address space, so subnets may not overlap")
        return (f"{net} overlaps IPPool {meta.get('name')} ({other}), whose addresses gingham "
                "IPAM hands out: give the Neutron subnet a range outside every IPPool")
    return None


def owned_subnet(pool: Mapping[str, Any]) -> str | None:
    """The subnet ID of a pool the driver wrote (None: not the driver's)."""
    meta = pool.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(names.SUBNET_ANNOTATION)
    return value if isinstance(value, str) and value else None
