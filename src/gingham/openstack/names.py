"""Names the ML2 driver gives what it writes, spelled once (standard library only).

Neutron IDs are UUIDs (``0b1c2d3e-aaaa-4bbb-8ccc-1234567890ab``) or, for
Keystone projects, 32 hex digits. Every ID the driver puts into a name, a
label key or a label value goes through :func:`neutron_id` first: lower case,
and a DNS label of at most 63 characters (what a label key's name part, a
label value and a namespace name all accept). Anything else is refused by
name (:class:`Refused`), never mangled into something that could collide.
"""

from __future__ import annotations

import re
from typing import Final

from gingham.errors import OpenStackError

ORCHESTRATOR: Final = "openstack"
# Nova names a VM's tap device "tap" + the first 11 characters of its port ID
# (nova.network.model.NIC_NAME_LEN = 14); libvirt creates it under that name.
TAP_PREFIX: Final = "tap"
_NIC_ID_CHARS: Final = 11
VIF_TYPE: Final = "tap"

# Labels on every WorkloadEndpoint the driver writes.
SG_LABEL_PREFIX: Final = "sg.gingham.dev/"  # + group ID, value "" (one per security group)
NETWORK_LABEL: Final = "openstack.gingham.dev/network"  # the port's network ID
PROJECT_LABEL: Final = "openstack.gingham.dev/project"  # the port's project ID

# Annotations marking what the driver wrote: resync deletes nothing without one.
PORT_ANNOTATION: Final = "openstack.gingham.dev/port-id"
SECURITY_GROUP_ANNOTATION: Final = "openstack.gingham.dev/security-group-id"
SECURITY_GROUP_NAME_ANNOTATION: Final = "openstack.gingham.dev/security-group-name"
SUBNET_ANNOTATION: Final = "openstack.gingham.dev/subnet-id"
NETWORK_ANNOTATION: Final = "openstack.gingham.dev/network-id"
# Rules of a group the driver left out, one "<rule id>: <why>" a line.
LEFT_OUT_ANNOTATION: Final = "openstack.gingham.dev/left-out-rules"

PROFILE_PREFIX: Final = "openstack-sg-"  # + group ID: the group's Profile
POOL_PREFIX: Final = "openstack-subnet-"  # + subnet ID: the subnet's IPPool
HANDLE_PREFIX: Final = "openstack."  # + port ID: the IPAM handle of a port's addresses

_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAME_PART: Final = re.compile(r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")


class Refused(OpenStackError):
    """A Neutron object (or one field of it) gingham cannot express; ``what`` names it."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


def neutron_id(kind: str, value: object) -> str:
    """A Neutron ID as the driver spells it (lower case); Refused if it cannot be a
    label value, a label key's name part and a namespace name at once."""
    if not isinstance(value, str) or not value:
        raise Refused(kind, f"has no ID (got {value!r})")
    text = value.lower()
    if not _DNS_LABEL.match(text):
        raise Refused(kind, f"ID {value!r} is not 1-63 letters, digits and '-' starting and "
                            "ending with a letter or digit (Neutron's UUIDs and Keystone's "
                            "32 hex digits are)")
    return text


def namespace_for_project(project_id: object) -> str:
    """The namespace of a project's endpoints: its ID, lower case."""
    return neutron_id("project", project_id)


def interface_name(port_id: str) -> str:
    """The host side of a VM's NIC, as Nova names it."""
    return TAP_PREFIX + port_id[:_NIC_ID_CHARS]


def sg_label(sg_id: str) -> str:
    return SG_LABEL_PREFIX + neutron_id("security group", sg_id)


def profile_name(sg_id: str) -> str:
    return PROFILE_PREFIX + neutron_id("security group", sg_id)


def pool_name(subnet_id: str) -> str:
    return POOL_PREFIX + neutron_id("subnet", subnet_id)


def ipam_handle(port_id: str) -> str:
    return HANDLE_PREFIX + neutron_id("port", port_id)


def port_of_handle(handle: str) -> str | None:
    """The port ID an IPAM handle of the driver's names (None: not the driver's)."""
    if not handle.startswith(HANDLE_PREFIX):
        return None
    rest = handle[len(HANDLE_PREFIX):]
    return rest if _DNS_LABEL.match(rest) else None


def workload_of(port_id: str, device_id: object) -> str:
    """The endpoint's workload: the device (Nova's instance UUID) when it can stand in a
    resource name, else the port itself (an unattached port, a device ID with capitals
    or '_')."""
    if isinstance(device_id, str) and 0 < len(device_id) <= 100 and _NAME_PART.match(device_id):
        return device_id
    return port_id


def endpoint_name(node: str, workload: str, port_id: str) -> str:
    """Calico's ``<node>-<orchestrator>-<workload>-<endpoint>``, '-' doubled inside each
    part (as the CNI plugin and networking-calico spell it)."""
    return "-".join(p.replace("-", "--") for p in (node, ORCHESTRATOR, workload, port_id))
