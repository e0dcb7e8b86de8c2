"""Neutron API dicts as ML2's getters return them (fields the driver reads), for tests.

IDs are UUIDs, projects 32 hex digits, as Neutron and Keystone make them.
"""

from __future__ import annotations

from typing import Any

PROJECT = "5f1e8d2c3b4a49e0a1b2c3d4e5f60718"
NETWORK = "11111111-2222-4333-8444-555555555555"
SUBNET = "22222222-3333-4444-8555-666666666666"
SUBNET_CIDR = "198.19.5.0/24"
WEB = "aaaaaaaa-0000-4000-8000-000000000001"
CLIENT = "aaaaaaaa-0000-4000-8000-000000000002"
PORT = "bbbbbbbb-1111-4111-8111-000000000001"
PORT2 = "bbbbbbbb-1111-4111-8111-000000000002"
VM = "cccccccc-2222-4222-8222-000000000001"


def port(port_id: str = PORT, *, host: str = "host-a", ip: str = "198.19.5.10",
         groups: tuple[str, ...] = (WEB,), vif_type: str = "tap", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": port_id,
        "project_id": PROJECT,
        "tenant_id": PROJECT,
        "network_id": NETWORK,
        "device_id": VM,
        "device_owner": "compute:nova",
        "mac_address": "fa:16:3e:12:34:56",
        "fixed_ips": [{"subnet_id": SUBNET, "ip_address": ip}],
        "allowed_address_pairs": [],
        "security_groups": list(groups),
        "port_security_enabled": True,
        "admin_state_up": True,
        "status": "DOWN",
        "binding:host_id": host,
        "binding:vif_type": vif_type,
        "binding:vnic_type": "normal",
    }
    out.update(extra)
    return out


def subnet(subnet_id: str = SUBNET, cidr: str = SUBNET_CIDR) -> dict[str, Any]:
    return {"id": subnet_id, "network_id": NETWORK, "cidr": cidr, "ip_version": 6 if ":" in cidr
            else 4, "project_id": PROJECT, "enable_dhcp": False}


def rule(rule_id: str, group: str = WEB, direction: str = "ingress", ethertype: str = "IPv4",
         **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rule_id, "security_group_id": group, "direction": direction,
                           "ethertype": ethertype, "protocol": None, "port_range_min": None,
                           "port_range_max": None, "remote_ip_prefix": None,
                           "remote_group_id": None, "remote_address_group_id": None}
    out.update(fields)
    return out


def group(group_id: str = WEB, name: str = "web", rules: list[dict[str, Any]] | None = None,
          **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": group_id, "name": name, "project_id": PROJECT,
                           "stateful": True, "security_group_rules": rules or []}
    out.update(extra)
    return out


def web_group() -> dict[str, Any]:
    """``web``: tcp/80 from members of ``client``, and Neutron's default egress."""
    return group(WEB, "web", [
        rule("r-web-80", WEB, protocol="tcp", port_range_min=80, port_range_max=80,
             remote_group_id=CLIENT),
        rule("r-web-e4", WEB, direction="egress"),
        rule("r-web-e6", WEB, direction="egress", ethertype="IPv6"),
    ])
