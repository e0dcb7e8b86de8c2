"""OpenStack on two lab hosts: a real PostgreSQL and Neutron server, VMs plugged as Nova
would, real agents; packets between the VMs decide.

A network and subnet (DHCP off), security groups ``web`` (tcp/80 from members of
``client``), ``client`` and ``plain``; ports bound to h1 and h2 through the Neutron
API; VMs on them. The VMs reach each other exactly as the groups say; a rule change
through the API takes effect; restarting Neutron and the agents loses nothing;
deleting a port removes its endpoint and cuts its VM off. The lab's own part (the
control plane's processes and data, the VMs' plumbing, a failed ``up``) is checked
with or without the gingham driver.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import keys, open_datastore
from gingham.errors import LabError
from gingham.lab import lab as labmod
from gingham.lab import matrix, openstack_cache, vms
from gingham.lab import openstack as labopenstack
from gingham.lab import state as labstate
from gingham.lab.netns import list_netns, run_in_netns
from gingham.lab.neutron_api import NeutronAPI, NeutronAPIError
from gingham.lab.workloads import workload_netns
from tests.integration.faults.tools import wait_until

WHY_NOT = openstack_cache.missing()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(WHY_NOT is not None, reason=f"no OpenStack here: {WHY_NOT}"),
]
GINGHAM = str(Path(sys.executable).with_name("gingham"))
SUBNET = "198.18.200.0/24"  # inside labopenstack.NEUTRON_RANGE, outside the lab's CNI pool


def needs_driver(lab: str) -> None:
    assert labopenstack.driver_enabled(labstate.load(lab)), \
        "the lab's Neutron runs without the gingham mechanism driver"


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    wait_until(check, timeout, what, interval=0.2)


def control_plane(run_dir: str) -> list[int]:
    """Live processes whose command line names the lab's openstack directory."""
    return labopenstack.leftovers(run_dir)


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    name = f"os{os.getpid() % 100000}"
    labmod.down(name)
    run_dir = str(labstate.lab_dir(name) / "run")
    try:
        labmod.up(name, hosts=2, make_current=False, openstack=True)
        yield name
    finally:
        memory = labopenstack.pgdata_memory(run_dir)
        labmod.down(name)
    assert control_plane(run_dir) == [], "lab down left PostgreSQL or Neutron running"
    assert memory is None or not memory.exists(), "lab down left the cluster in /dev/shm"
    assert not (labstate.lab_dir(name)).exists()
    assert not [n for n in list_netns() if n.startswith((f"gw-{name}-", f"gh-{name}-"))]


@pytest.fixture(scope="module")
def api(lab: str) -> NeutronAPI:
    return NeutronAPI(labstate.load(lab).openstack_url)


@pytest.fixture(scope="module")
def net(api: NeutronAPI) -> dict[str, Any]:
    network = api.create_network("lab-net")
    api.create_subnet(network["id"], SUBNET, enable_dhcp=False)
    return network


def vm(lab: str, name: str) -> Any:
    return labstate.load(lab).workload(f"vm/{name}")


def reaches(lab: str, src: str, dst: str, port: int = 80) -> bool:
    return matrix.probe(vm(lab, src), vm(lab, dst), port, "tcp", timeout=1.0)


def endpoint_of(lab: str, port_id: str) -> dict[str, Any] | None:
    """The WorkloadEndpoint naming the port's tap (the driver's contract with Nova)."""
    ds = open_datastore(labstate.load(lab).datastore)
    try:
        items, _ = ds.list(keys.resource_prefix("WorkloadEndpoint"))
    finally:
        ds.close()
    tap = vms.tap_name(port_id)
    found = [kv.value for kv in items if (kv.value.get("spec") or {}).get("interfaceName") == tap]
    assert len(found) <= 1, found
    return found[0] if found else None


def links(netns: str) -> dict[str, dict[str, Any]]:
    out = run_in_netns(netns, ["ip", "-j", "addr"]).stdout
    return {ln["ifname"]: ln for ln in json.loads(out)}


# -- the lab's part -------------------------------------------------------------------


def test_status_reports_the_neutron_api(lab: str, api: NeutronAPI) -> None:
    out = subprocess.run([GINGHAM, "lab", "status", "--name", lab, "-o", "json"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    report = json.loads(out)["openstack"]
    assert report["url"] == api.url and report["url"].startswith("http://127.0.0.1:")
    assert report["ready"] is True and report["neutron_pid"] > 0 and report["postgres_pid"] > 0
    assert api.networks() is not None
    conf = Path(labstate.load(lab).run_dir, "openstack", "neutron.conf").read_text()
    assert f"datastore = {labstate.load(lab).datastore}" in conf


def test_a_vm_is_plugged_as_nova_and_dhcp_would(lab: str, api: NeutronAPI,
                                                net: dict[str, Any]) -> None:
    port = api.create_port(net["id"], host="h2", name="plumbing")
    try:
        wl = vms.add(lab, "plumbing", port["id"])
        assert wl.ref == "vm/plumbing" and wl.host == "h2"
        ip = port["fixed_ips"][0]["ip_address"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(SUBNET)
        inside = links(wl.netns)["eth0"]
        assert inside["address"] == port["mac_address"]
        assert [(a["local"], a["prefixlen"]) for a in inside["addr_info"]
                if a["family"] == "inet"] == [(ip, 32)]
        routes = run_in_netns(wl.netns, ["ip", "route"]).stdout
        assert "default via 169.254.1.1 dev eth0" in routes
        assert "169.254.1.1 dev eth0 scope link" in routes
        host_ns = labstate.load(lab).host("h2").netns
        tap = links(host_ns)["tap" + port["id"][:11]]
        assert tap["address"] == "ee:ee:ee:ee:ee:ee"
        # the agent, not the plug, makes the tap route for its VM (as on a compute host)
        eventually(lambda: run_in_netns(host_ns, ["cat", f"/proc/sys/net/ipv4/conf/"
                                                  f"{tap['ifname']}/proxy_arp"]
                                        ).stdout.strip() == "1", "the agent's proxy ARP")
        eventually(lambda: f"{ip} dev {tap['ifname']}" in run_in_netns(
            host_ns, ["ip", "route", "show", "proto", "201"]).stdout, "the agent's tap route")
        with pytest.raises(LabError, match="already plugged"):
            vms.add(lab, "again", port["id"])
    finally:
        vms.delete(lab, "plumbing")
        api.delete("port", port["id"])
    assert "vm/plumbing" not in labstate.load(lab).workloads
    assert not [n for n in links(labstate.load(lab).host("h2").netns) if n.startswith("tap")]


def test_a_port_bound_to_no_lab_host_gets_no_vm(lab: str, api: NeutronAPI,
                                               net: dict[str, Any]) -> None:
    port = api.create_port(net["id"], host="elsewhere")
    try:
        with pytest.raises(LabError, match="no host 'elsewhere'"):
            vms.add(lab, "stray", port["id"])
        unbound = api.create_port(net["id"])
        with pytest.raises(LabError, match="no binding:host_id"):
            vms.add(lab, "stray", unbound["id"])
        api.delete("port", unbound["id"])
        with pytest.raises(NeutronAPIError) as err:
            vms.add(lab, "stray", "0" * 8 + "-0000-0000-0000-" + "0" * 12)
        assert err.value.status == 404
    finally:
        api.delete("port", port["id"])
    assert "vm/stray" not in labstate.load(lab).workloads
    assert workload_netns(lab, "vm", "stray") not in list_netns()


def test_neutron_restarts_with_its_data(lab: str, api: NeutronAPI) -> None:
    before = labstate.load(lab).neutron_pid
    made = api.create_network("survives-a-restart")
    labopenstack.restart_server(lab)
    after = labstate.load(lab)
    assert after.neutron_pid not in (0, before)
    assert [n["id"] for n in api.networks(name="survives-a-restart")] == [made["id"]]
    api.delete("network", made["id"])


# -- with the gingham driver ----------------------------------------------------------


@pytest.fixture(scope="module")
def groups(lab: str, api: NeutronAPI) -> dict[str, str]:
    needs_driver(lab)
    ids = {name: api.create_security_group(name)["id"] for name in ("web", "client", "plain")}
    api.create_security_group_rule(ids["web"], "ingress", ethertype="IPv4", protocol="tcp",
                                   port_range_min=80, port_range_max=80,
                                   remote_group_id=ids["client"])
    return ids


@pytest.fixture(scope="module")
def ports(lab: str, api: NeutronAPI, net: dict[str, Any],
          groups: dict[str, str]) -> dict[str, dict[str, Any]]:
    """VMs web (h1), client (h2), other (h1, same host as web) and far (h2)."""
    layout = {"web": ("h1", "web"), "client": ("h2", "client"), "other": ("h1", "plain"),
              "far": ("h2", "plain")}
    made = {}
    for name, (host, group) in layout.items():
        made[name] = api.create_port(net["id"], host=host, name=name,
                                     security_groups=[groups[group]])
        vms.add(lab, name, made[name]["id"], [(80, "tcp", "")])
    return made


def matrix_to_web(lab: str) -> dict[str, bool]:
    cells = matrix.measure(labstate.load(lab)).cells
    return {src: row["vm/web"] for src, row in cells.items() if src != "vm/web"}


def test_ports_are_bound_and_become_endpoints(lab: str, api: NeutronAPI,
                                              ports: dict[str, dict[str, Any]]) -> None:
    for name, port in ports.items():
        got = api.get_port(port["id"])
        assert got["binding:vif_type"] == "tap", (name, got["binding:vif_type"])
        eventually(lambda p=port: endpoint_of(lab, p["id"]) is not None,  # type: ignore[misc]
                   f"{name}'s endpoint")
        ep = endpoint_of(lab, port["id"])
        assert ep is not None
        assert ep["spec"]["node"] == got["binding:host_id"]
        assert ep["spec"]["orchestrator"] == "openstack"
        assert ep["spec"]["ipNetworks"] == [f"{port['fixed_ips'][0]['ip_address']}/32"]
        assert ep["spec"]["mac"] == port["mac_address"]
    eventually(lambda: all(api.get_port(p["id"])["status"] == "ACTIVE" for p in ports.values()),
               "ports ACTIVE")


def test_vms_reach_each_other_exactly_as_the_groups_say(lab: str,
                                                        ports: dict[str, Any]) -> None:
    want = {"vm/client": True, "vm/other": False, "vm/far": False}
    eventually(lambda: matrix_to_web(lab) == want, f"the matrix to web is {want}")
    # egress is open (Neutron's default egress rules) and other VMs admit nothing
    assert not reaches(lab, "web", "client")


def test_a_rule_change_takes_effect(lab: str, api: NeutronAPI, groups: dict[str, str],
                                    ports: dict[str, Any]) -> None:
    other_ip = ports["other"]["fixed_ips"][0]["ip_address"]
    rule = api.create_security_group_rule(groups["web"], "ingress", ethertype="IPv4",
                                          protocol="tcp", port_range_min=80, port_range_max=80,
                                          remote_ip_prefix=f"{other_ip}/32")
    want = {"vm/client": True, "vm/other": True, "vm/far": False}
    eventually(lambda: matrix_to_web(lab) == want, "other admitted by address")
    api.delete("security_group_rule", rule["id"])
    want["vm/other"] = False
    eventually(lambda: matrix_to_web(lab) == want, "other shut out again")


def test_restarting_neutron_and_the_agents_loses_nothing(
        lab: str, api: NeutronAPI, net: dict[str, Any], groups: dict[str, str],
        ports: dict[str, Any]) -> None:
    before = {name: endpoint_of(lab, p["id"]) for name, p in ports.items()}
    labopenstack.restart_server(lab)
    for host in ("h1", "h2"):
        labmod.stop_agent(lab, host)
    for host in ("h1", "h2"):
        labmod.start_agent(lab, host)
    want = {"vm/client": True, "vm/other": False, "vm/far": False}
    eventually(lambda: matrix_to_web(lab) == want, "the same matrix after the restarts")
    for name, p in ports.items():
        ep = endpoint_of(lab, p["id"])
        assert ep is not None and before[name] is not None
        assert ep["spec"] == before[name]["spec"], name
        assert ep["metadata"].get("labels") == before[name]["metadata"].get("labels"), name
    # the restarted server still binds and writes: a new client VM gets in
    late = api.create_port(net["id"], host="h1", name="late",
                           security_groups=[groups["client"]])
    try:
        vms.add(lab, "late", late["id"])
        eventually(lambda: reaches(lab, "late", "web"), "a client made after the restarts")
    finally:
        vms.delete(lab, "late")
        api.delete("port", late["id"])


def test_deleting_a_port_removes_its_endpoint_and_cuts_the_vm_off(
        lab: str, api: NeutronAPI, ports: dict[str, Any]) -> None:
    client = ports["client"]["id"]
    eventually(lambda: reaches(lab, "client", "web"), "client reaches web")
    api.delete("port", client)
    eventually(lambda: endpoint_of(lab, client) is None, "the client's endpoint is removed")
    eventually(lambda: not reaches(lab, "client", "web"), "the client is cut off")
    vms.delete(lab, "client")
    assert "vm/client" not in labstate.load(lab).workloads


# -- a failed up ----------------------------------------------------------------------


def test_a_failed_up_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"of{os.getpid() % 100000}"
    labmod.down(name)
    run_dir = str(labstate.lab_dir(name) / "run")
    # PostgreSQL starts, then the "server" ends before it answers
    monkeypatch.setattr(labopenstack, "SERVER_CODE", "import sys; sys.exit(3)")
    try:
        with pytest.raises(LabError, match="Neutron server ended"):
            labmod.up(name, hosts=1, make_current=False, openstack=True)
    finally:
        leftover = control_plane(run_dir)
        labmod.down(name)
    assert leftover == []
    assert not labstate.lab_dir(name).exists()
