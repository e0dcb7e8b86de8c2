"""Ports as WorkloadEndpoints, subnets as pools, and the names both use."""

from __future__ import annotations

import pytest

from gingham.model import parse_resource
from gingham.openstack import names, ports, subnets
from gingham.openstack.names import Refused
from tests.unit.openstack.neutron_dicts import (
    CLIENT,
    NETWORK,
    PORT,
    PROJECT,
    SUBNET,
    VM,
    WEB,
    port,
    subnet,
)


def test_the_endpoint_of_a_port() -> None:
    doc = ports.endpoint_document(port(groups=(WEB, CLIENT), allowed_address_pairs=[
        {"ip_address": "198.19.5.200", "mac_address": "fa:16:3e:00:00:01"},
        {"ip_address": "2001:db8::7/64"}], fixed_ips=[
        {"subnet_id": SUBNET, "ip_address": "198.19.5.10"},
        {"subnet_id": "x", "ip_address": "2001:db8::10"}]))
    meta, spec = doc["metadata"], doc["spec"]
    assert meta["namespace"] == PROJECT
    assert meta["name"] == "host--a-openstack-" + VM.replace("-", "--") + "-" + \
        PORT.replace("-", "--")
    assert meta["labels"] == {f"sg.gingham.dev/{CLIENT}": "", f"sg.gingham.dev/{WEB}": "",
                              names.NETWORK_LABEL: NETWORK, names.PROJECT_LABEL: PROJECT}
    assert meta["annotations"] == {names.PORT_ANNOTATION: PORT}
    assert spec == {
        "orchestrator": "openstack", "workload": VM, "node": "host-a", "endpoint": PORT,
        "interfaceName": "tap" + PORT[:11], "mac": "fa:16:3e:12:34:56",
        "ipNetworks": ["198.19.5.10/32", "2001:db8::10/128"],
        "profiles": [f"openstack-sg-{WEB}", f"openstack-sg-{CLIENT}"],  # by ID
        "allowSpoofedSourcePrefixes": ["198.19.5.200/32", "2001:db8::/64"],
    }
    assert parse_resource(doc).kind == "WorkloadEndpoint"
    assert len(spec["interfaceName"]) == 14  # Nova's NIC_NAME_LEN


def test_names_follow_the_port() -> None:
    assert ports.endpoint_name_of(port(), "host-b")[1].startswith("host--b-openstack-")
    unattached = ports.endpoint_document(port(device_id=""))
    assert unattached["spec"]["workload"] == PORT
    odd = ports.endpoint_document(port(device_id="reserved_dhcp_port"))
    assert odd["spec"]["workload"] == PORT
    upper = ports.endpoint_document(port(project_id=PROJECT.upper(), id=PORT.upper()))
    assert upper["metadata"]["namespace"] == PROJECT and upper["spec"]["endpoint"] == PORT


@pytest.mark.parametrize("bad,problem", [
    ({"port_security_enabled": False}, "port security is disabled"),
    ({"device_owner": "network:dhcp"}, "not a VM's"),
    ({"device_owner": "network:router_interface"}, "not a VM's"),
    ({"binding:vnic_type": "direct"}, "vnic_type"),
    ({"project_id": "Demo_Project", "tenant_id": None}, "project: ID"),
    ({"project_id": "p" * 64}, "project: ID"),
    ({"id": "port with spaces"}, "port: ID"),
    ({"fixed_ips": [{"subnet_id": SUBNET, "ip_address": "nope"}]}, "not an address"),
    ({"allowed_address_pairs": [{"ip_address": "nope"}]}, "not an address or CIDR"),
])
def test_ports_the_driver_refuses(bad: dict[str, object], problem: str) -> None:
    p = port(**bad)  # type: ignore[arg-type]
    found = ports.port_problem(p)
    assert found is not None and problem in found


def test_ports_it_serves() -> None:
    assert ports.port_problem(port()) is None
    assert ports.port_problem(port(device_owner="")) is None  # a user's port, bound by hand
    assert ports.bound_here(port()) and not ports.bound_here(port(vif_type="ovs"))
    assert not ports.bound_here(port(host=""))
    with pytest.raises(Refused, match="bound to no host"):
        ports.endpoint_document(port(host=""))


def test_a_subnet_is_a_manual_pool() -> None:
    doc = subnets.pool_document(subnet())
    assert doc["metadata"] == {"name": f"openstack-subnet-{SUBNET}", "annotations": {
        names.SUBNET_ANNOTATION: SUBNET, names.NETWORK_ANNOTATION: NETWORK}}
    assert doc["spec"] == {"cidr": "198.19.5.0/24", "blockSize": 26,
                           "assignmentMode": "Manual", "disabled": False}
    assert subnets.pool_document(subnet(cidr="198.19.9.16/28"))["spec"]["blockSize"] == 28
    assert subnets.pool_document(subnet(cidr="2001:db8:5::/64"))["spec"]["blockSize"] == 122
    # operators' settings stay, the enforced ones come back
    kept = subnets.pool_document(subnet(), {"spec": {
        "cidr": "198.19.5.0/24", "vxlanMode": "CrossSubnet", "natOutgoing": True,
        "assignmentMode": "Automatic", "disabled": True, "blockSize": 27}})
    assert kept["spec"] == {"cidr": "198.19.5.0/24", "vxlanMode": "CrossSubnet",
                            "natOutgoing": True, "assignmentMode": "Manual",
                            "disabled": False, "blockSize": 27}
    with pytest.raises(Refused, match="overlaps reserved range"):
        subnets.pool_document(subnet(cidr="169.254.0.0/24"))


def _pool(name: str, cidr: str, subnet_id: str | None = None) -> dict[str, object]:
    meta: dict[str, object] = {"name": name}
    if subnet_id:
        meta["annotations"] = {names.SUBNET_ANNOTATION: subnet_id}
    return {"metadata": meta, "spec": {"cidr": cidr}}


def test_a_subnet_may_overlap_no_other_pool() -> None:
    s = subnet()
    assert subnets.overlap_problem(s, [_pool("default", "198.18.0.0/16"),
                                       _pool("v6", "2001:db8::/64")]) is None
    assert subnets.overlap_problem(s, [_pool("mine", "198.19.5.0/24", SUBNET)]) is None
    found = subnets.overlap_problem(s, [_pool("big", "198.18.0.0/15")])
    assert found is not None and "IPPool big" in found
    other = "99999999-3333-4444-8555-666666666666"
    found = subnets.overlap_problem(s, [_pool("o", "198.19.5.128/25", other)])
    assert found is not None and f"Neutron subnet {other}" in found


def test_ids() -> None:
    assert names.neutron_id("x", "ABC") == "abc"
    for bad in ("", None, "-a", "a_b", "a" * 64, 5):
        with pytest.raises(Refused):
            names.neutron_id("x", bad)
    assert names.port_of_handle("openstack." + PORT) == PORT
    assert names.port_of_handle("libnetwork.x") is None
    assert names.ipam_handle(PORT.upper()) == "openstack." + PORT
