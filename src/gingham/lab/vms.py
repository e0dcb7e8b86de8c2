"""VMs in an OpenStack lab: ``gingham lab vm add NAME --port PORT_ID``, Nova's part.

Nova asks Neutron to bind a port to a compute host, then plugs the VM into a
tap device named ``tap`` + the port ID's first 11 characters; the VM's DHCP
client gives its interface the port's MAC and addresses. Here the VM is a
network namespace on the port's host (``binding:host_id``, a lab host name),
joined by a veth whose host side carries the tap name, configured at once
with what DHCP would have given it:

- inside: ``eth0`` with the port's MAC, each fixed IP as a /32 (/128), the
  on-link gateway 169.254.1.1 (IPv6: fe80::ecee:eeff:feee:eeee) and a default
  route through it, exactly as the CNI path does (``cni/plumbing.py``);
- on the host: only the tap, up, with MAC ee:ee:ee:ee:ee:ee (the IPv6
  gateway is that MAC's link-local address), as libvirt leaves it. Forwarding,
  proxy ARP for 169.254.1.1 and the route to each address over the tap are the
  agent's to set once it programs the port's endpoint, as on a real compute
  host; only the IPv6 settings the agent does not make are set here.

The VM is then the lab workload ``vm/NAME``: ``lab exec``, ``lab probe`` and
``lab matrix`` use it like any other. Its namespace has the lab's workload
prefix (``gw-<lab>-``), so ``lab down`` removes it with the rest.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import sys
from typing import Any

from gingham.cni.plumbing import GATEWAY_V4, GATEWAY_V6, HOST_MAC
from gingham.errors import LabError
from gingham.lab import state as labstate
from gingham.lab.netns import (
    add_netns,
    delete_netns,
    ip_batch,
    run,
    spawn_in_netns,
    write_sysctls,
)
from gingham.lab.neutron_api import NeutronAPI
from gingham.lab.state import LabState, WorkloadState
from gingham.lab.workloads import SERVE_SCRIPT, parse_ref, workload_netns

NAMESPACE = "vm"  # VMs are the lab workloads vm/NAME


def tap_name(port_id: str) -> str:
    """Nova's name for the port's tap device."""
    return "tap" + port_id[:11]


def port_addresses(port: dict[str, Any]) -> list[str]:
    """The port's fixed IPs, IPv4 first."""
    ips = [ipaddress.ip_address(f["ip_address"]) for f in port.get("fixed_ips") or []]
    return [str(ip) for ip in sorted(ips, key=lambda a: (a.version, a))]


def inside_commands(mac: str, ips: list[str]) -> list[str]:
    """``ip -batch`` lines for the VM's side (eth0 exists, in the VM's namespace)."""
    v4 = [ip for ip in ips if ipaddress.ip_address(ip).version == 4]
    v6 = [ip for ip in ips if ipaddress.ip_address(ip).version == 6]
    cmds = [f"link set eth0 address {mac}"]
    cmds += [f"addr add {ip}/32 dev eth0" for ip in v4]
    cmds += [f"addr add {ip}/128 dev eth0 nodad" for ip in v6]
    cmds.append("link set eth0 up")
    if v4:
        cmds.append(f"route add {GATEWAY_V4} dev eth0 scope link")
        cmds.append(f"route add default via {GATEWAY_V4} dev eth0")
    if v6:
        cmds.append(f"route add default via {GATEWAY_V6} dev eth0")
    return cmds


def host_sysctls(tap: str, ipv6: bool) -> dict[str, str]:
    """The tap's IPv6 settings (the agent keeps only IPv4 ones on interfaces it did not
    make)."""
    if not ipv6:
        return {}
    return {
        f"net.ipv6.conf.{tap}.disable_ipv6": "0",
        f"net.ipv6.conf.{tap}.accept_ra": "0",
        f"net.ipv6.conf.{tap}.accept_dad": "0",  # the gateway answers at once
        f"net.ipv6.conf.{tap}.forwarding": "1",
    }


def _checked_port(lab: LabState, port: dict[str, Any]) -> tuple[str, str, list[str]]:
    """(host, mac, ips) of a port a VM can plug into; LabError saying why not."""
    port_id = port.get("id", "?")
    host = port.get("binding:host_id") or ""
    if not host:
        raise LabError(f"port {port_id} has no binding:host_id: create it with the lab host "
                       "the VM runs on (Nova sets it before it plugs the VM)")  # fmt: skip
    lab.host(host)  # a lab host, or LabError naming the lab's hosts
    ips = port_addresses(port)
    if not ips:
        raise LabError(f"port {port_id} has no fixed IPs (a subnet on its network?)")
    return host, str(port["mac_address"]), ips


def _plug(lab: LabState, wl: WorkloadState, mac: str) -> None:
    host_ns = lab.host(wl.host).netns
    tap = wl.interface
    # Left by a VM of the same port whose namespace went away without us.
    if run(["ip", "-n", host_ns, "link", "show", tap], check=False).returncode == 0:
        run(["ip", "-n", host_ns, "link", "del", tap])
    run(["ip", "-n", host_ns, "link", "add", tap, "address", HOST_MAC, "type", "veth",
         "peer", "name", "eth0", "netns", wl.netns])  # fmt: skip
    ip_batch(wl.netns, inside_commands(mac, wl.ips))
    write_sysctls(host_ns, host_sysctls(tap, any(":" in ip for ip in wl.ips)))
    run(["ip", "-n", host_ns, "link", "set", tap, "up"])


def add(lab_name: str, name: str, port_id: str,
        serve: list[tuple[int, str, str]] | None = None) -> WorkloadState:
    """Plug VM ``name`` into Neutron port ``port_id`` on the port's host; the workload
    ``vm/NAME``. ``serve``: listeners inside, as ``workload add --serve``."""
    ref = f"{NAMESPACE}/{name}"
    parse_ref(ref)
    lab = labstate.load(lab_name)
    if not lab.openstack:
        raise LabError(f"lab {lab_name} has no Neutron (gingham lab up --openstack)")
    if ref in lab.workloads:
        raise LabError(f"VM {name} already exists on {lab.workloads[ref].host}")
    taken = [w.ref for w in lab.workloads.values() if w.port_id == port_id]
    if taken:
        raise LabError(f"port {port_id} is already plugged into {taken[0]}")
    port = NeutronAPI(lab.openstack_url).get_port(port_id)
    host, mac, ips = _checked_port(lab, port)
    serve = serve or []
    wl = WorkloadState(
        namespace=NAMESPACE, name=name, host=host,
        netns=workload_netns(lab.name, NAMESPACE, name),
        container_id=port_id, ips=ips, interface=tap_name(port_id),
        serve=[f"{p}/{proto}" + (f":{n}" if n else "") for p, proto, n in serve],
        port_id=port_id,
    )  # fmt: skip
    add_netns(wl.netns)
    try:
        _plug(lab, wl, mac)
        if serve:
            log = labstate.lab_dir(lab.name) / f"serve-{NAMESPACE}-{name}.log"
            with open(log, "ab") as out:
                proc = spawn_in_netns(wl.netns, [sys.executable, "-I", "-S", str(SERVE_SCRIPT),
                                                 *(f"{proto}:{p}" for p, proto, _ in serve)],
                                      stderr=out)  # fmt: skip
            wl.listener_pid = proc.pid
        with labstate.modify(lab.name) as st:
            if ref in st.workloads:
                raise LabError(f"VM {name} was added meanwhile")
            st.workloads[ref] = wl
    except BaseException:
        _unplug(wl)
        raise
    return wl


def _unplug(wl: WorkloadState) -> None:
    if wl.listener_pid > 0:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(wl.listener_pid, signal.SIGKILL)
    # The veth pair, and with it the tap's routes on the host, goes with the namespace.
    delete_netns(wl.netns)


def delete(lab_name: str, name: str) -> WorkloadState:
    """Unplug and remove VM ``name`` (its Neutron port stays, as after a Nova delete that
    keeps a pre-made port)."""
    ref = f"{NAMESPACE}/{name}"
    lab = labstate.load(lab_name)
    wl = lab.workload(ref)
    _unplug(wl)
    with labstate.modify(lab.name) as st:
        st.workloads.pop(ref, None)
    return wl
