"""A Neutron port as a WorkloadEndpoint: pure translation, no Neutron import.

The endpoint of port ``P`` of project ``T`` bound to host ``H``:

- namespace ``T`` (lower case; :func:`names.namespace_for_project`), name
  ``H-openstack-<workload>-P`` ('-' doubled inside each part), where the
  workload is the port's ``device_id`` (Nova's instance UUID) or ``P`` itself;
- labels ``sg.gingham.dev/<G>: ""`` for each of its security groups,
  ``openstack.gingham.dev/network: <network>`` and
  ``openstack.gingham.dev/project: T``; annotation
  ``openstack.gingham.dev/port-id: P`` (the driver's mark: resync deletes
  only endpoints that carry it);
- spec: orchestrator ``openstack``, workload, node ``H``, endpoint ``P``,
  interfaceName ``tap`` + P[:11] (Nova's name), the port's MAC, ipNetworks
  from ``fixed_ips`` (/32, /128), ``allowSpoofedSourcePrefixes`` from
  ``allowed_address_pairs`` (their MACs are not checked: gingham filters by
  address), profiles ``openstack-sg-<G>``.

Ports the driver serves: ``device_owner`` empty or ``compute:*`` (VMs; Neutron's
own DHCP and router ports are not endpoints), ``binding:vnic_type`` normal,
port security enabled (gingham always filters and always checks sources, so
a port that asks for neither is refused rather than silently filtered).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Final

from gingham.model import parse_resource, to_dict
from gingham.model.meta import ManifestError
from gingham.openstack import names
from gingham.openstack.names import Refused

HOST: Final = "binding:host_id"
VIF_TYPE: Final = "binding:vif_type"
VNIC_TYPE: Final = "binding:vnic_type"
VIF_UNBOUND: Final = "unbound"
VIF_BINDING_FAILED: Final = "binding_failed"


def is_vm_port(port: Mapping[str, Any]) -> bool:
    """A port that may become an endpoint: a VM's (or a user's unattached) port."""
    owner = port.get("device_owner") or ""
    return owner == "" or str(owner).startswith("compute:")


def bound_here(port: Mapping[str, Any]) -> bool:
    """Whether the port is bound by the driver (the only binder of ``tap`` VIFs)."""
    return port.get(VIF_TYPE) == names.VIF_TYPE and bool(port.get(HOST))


def port_problem(port: Mapping[str, Any]) -> str | None:
    """Why the driver will not serve this port (None: it will), from the port alone."""
    if not is_vm_port(port):
        return f"device_owner {port.get('device_owner')!r} is not a VM's"
    vnic = port.get(VNIC_TYPE) or "normal"
    if vnic != "normal":
        return f"binding:vnic_type {vnic!r}: gingham binds 'normal' tap VIFs only"
    if port.get("port_security_enabled") is False:
        return ("port security is disabled: gingham always filters a workload and checks "
                "its source addresses; enable port security (allowed_address_pairs widen "
                "the sources a port may use)")
    try:
        endpoint_document(port, str(port.get(HOST) or "unknown-host"))
    except Refused as exc:
        return str(exc)
    return None


def _project(port: Mapping[str, Any]) -> object:
    return port.get("project_id") or port.get("tenant_id")


def addresses(port: Mapping[str, Any]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The port's fixed IPs, in address order."""
    out = []
    for i, fixed in enumerate(port.get("fixed_ips") or ()):
        raw = fixed.get("ip_address") if isinstance(fixed, Mapping) else None
        try:
            out.append(ipaddress.ip_address(str(raw)))
        except ValueError:
            raise Refused(f"port {port.get('id')}", f"fixed_ips[{i}] {raw!r} is not an "
                                                    "address") from None
    return sorted(set(out), key=lambda a: (a.version, int(a)))


def fixed_subnets(port: Mapping[str, Any]) -> dict[str, str]:
    """Address -> subnet ID of each fixed IP."""
    return {str(ipaddress.ip_address(str(f["ip_address"]))): str(f.get("subnet_id"))
            for f in port.get("fixed_ips") or () if isinstance(f, Mapping)}


def _spoofable(port: Mapping[str, Any]) -> list[str]:
    nets = []
    for i, pair in enumerate(port.get("allowed_address_pairs") or ()):
        raw = pair.get("ip_address") if isinstance(pair, Mapping) else None
        try:
            net = ipaddress.ip_network(str(raw), strict=False)
        except ValueError:
            raise Refused(f"port {port.get('id')}", f"allowed_address_pairs[{i}] {raw!r} is "
                                                    "not an address or CIDR") from None
        nets.append(net)
    return [str(n) for n in sorted(set(nets), key=lambda n: (n.version, int(n.network_address),
                                                             n.prefixlen))]


def endpoint_name_of(port: Mapping[str, Any], host: str) -> tuple[str, str]:
    """(namespace, name) of the port's endpoint on ``host``."""
    port_id = names.neutron_id("port", port.get("id"))
    namespace = names.namespace_for_project(_project(port))
    workload = names.workload_of(port_id, port.get("device_id"))
    return namespace, names.endpoint_name(host, workload, port_id)


def endpoint_document(port: Mapping[str, Any], host: str | None = None) -> dict[str, Any]:
    """The WorkloadEndpoint for ``port`` bound to ``host`` (default: its
    ``binding:host_id``), validated by the model; Refused naming what is wrong."""
    host = host if host is not None else str(port.get(HOST) or "")
    what = f"port {port.get('id')}"
    if not host:
        raise Refused(what, "is bound to no host")
    port_id = names.neutron_id("port", port.get("id"))
    namespace, name = endpoint_name_of(port, host)
    network = names.neutron_id("network", port.get("network_id"))
    groups = sorted({names.neutron_id("security group", g)
                     for g in port.get("security_groups") or ()})
    labels = {names.sg_label(g): "" for g in groups}
    labels[names.NETWORK_LABEL] = network
    labels[names.PROJECT_LABEL] = namespace
    nets = [str(ipaddress.ip_network(a)) for a in addresses(port)]
    spec: dict[str, Any] = {
        "orchestrator": names.ORCHESTRATOR,
        "workload": names.workload_of(port_id, port.get("device_id")),
        "node": host,
        "endpoint": port_id,
        "interfaceName": names.interface_name(port_id),
        "ipNetworks": nets,
        "profiles": [names.profile_name(g) for g in groups],
    }
    if port.get("mac_address"):
        spec["mac"] = str(port["mac_address"])
    spoofable = _spoofable(port)
    if spoofable:
        spec["allowSpoofedSourcePrefixes"] = spoofable
    doc = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "WorkloadEndpoint",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {names.PORT_ANNOTATION: port_id},
        },
        "spec": spec,
    }
    try:
        return to_dict(parse_resource(doc))
    except ManifestError as exc:
        raise Refused(what, f"its endpoint would be invalid: {exc}") from None
