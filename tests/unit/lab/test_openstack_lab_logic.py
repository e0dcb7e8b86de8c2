"""The OpenStack lab's logic without Neutron: configuration, VM plumbing commands, the
Neutron client's error handling, and how stale pids are told from the lab's own."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gingham.errors import LabError
from gingham.lab import lab as labmod
from gingham.lab import openstack as labopenstack
from gingham.lab import openstack_cache, vms
from gingham.lab.neutron_api import NeutronAPI, _id, _message
from gingham.lab.state import HostState, LabState, WorkloadState

PORT_ID = "f01a8091-cb7f-4a15-a55e-f206d5405c87"


def lab_state(tmp_path: Path) -> LabState:
    return LabState(name="t", datastore="sqlite:///x/gingham.db", datastore_kind="sqlite",
                    fabric={}, hosts=[HostState("h1", "gh-t-h1", "192.0.2.11", "192.0.2.0/24")],
                    run_dir=str(tmp_path / "run"))


def neutron() -> openstack_cache.Neutron:
    return openstack_cache.Neutron("/usr/bin/python3", "/usr/lib/python3/dist-packages/neutron",
                                "21.0.0")


def conf_dict(text: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = {}
        elif "=" in line:
            k, _, v = line.partition("=")
            out[section][k.strip()] = v.strip()
    return out


def test_neutron_conf_has_the_settings_neutron_runs_with_here(tmp_path: Path) -> None:
    lab = lab_state(tmp_path)
    conf = conf_dict(labopenstack.render_conf(lab, neutron(), 9696, 5432, driver=True,
                                              resync_interval=7))
    d = conf["DEFAULT"]
    assert d["auth_strategy"] == "noauth" and d["core_plugin"] == "ml2"
    assert d["service_plugins"] == "" and d["transport_url"] == "fake:/"
    assert d["api_workers"] == d["rpc_workers"] == "0"
    assert d["notify_nova_on_port_status_changes"] == "false"
    assert d["notify_nova_on_port_data_changes"] == "false"
    assert (d["bind_host"], d["bind_port"]) == ("127.0.0.1", "9696")
    assert d["api_paste_config"].endswith("neutron/tests/etc/api-paste.ini")
    assert conf["database"]["connection"].startswith("postgresql+psycopg2://postgres@127.0.0.1:5432/")
    assert conf["ml2"] == {"type_drivers": "flat,local", "tenant_network_types": "local",
                           "mechanism_drivers": "gingham", "extension_drivers": "port_security"}
    assert conf["gingham"] == {"datastore": lab.datastore, "resync_interval": "7"}
    without = conf_dict(labopenstack.render_conf(lab, neutron(), 9696, 5432, driver=False))
    assert without["ml2"]["mechanism_drivers"] == ""


def test_driver_enabled_reads_the_written_conf(tmp_path: Path) -> None:
    lab = lab_state(tmp_path)
    assert not labopenstack.driver_enabled(lab)  # no conf yet
    labopenstack.run_dir(lab).mkdir(parents=True)
    for driver in (True, False):
        labopenstack.neutron_conf(lab).write_text(
            labopenstack.render_conf(lab, neutron(), 1, 2, driver=driver))
        assert labopenstack.driver_enabled(lab) is driver


def test_the_lab_pool_leaves_neutron_its_half() -> None:
    pool = labopenstack.default_pool(labmod.DEFAULT_POOL)
    cni = ipaddress.ip_network(pool["spec"]["cidr"])
    neutron_range = ipaddress.ip_network(labopenstack.NEUTRON_RANGE)
    assert not cni.overlaps(neutron_range)
    assert {cni.supernet(), neutron_range.supernet()} == {
        ipaddress.ip_network(labmod.DEFAULT_POOL["spec"]["cidr"])}
    assert labmod.DEFAULT_POOL["spec"]["cidr"] == "198.18.0.0/16"  # not changed in place
    assert pool["spec"]["blockSize"] == labmod.DEFAULT_POOL["spec"]["blockSize"]


def test_vm_plumbing_commands_v4_and_v6() -> None:
    inside = vms.inside_commands("fa:16:3e:00:00:01", ["198.18.200.5", "2001:db8::5"])
    assert inside == [
        "link set eth0 address fa:16:3e:00:00:01",
        "addr add 198.18.200.5/32 dev eth0",
        "addr add 2001:db8::5/128 dev eth0 nodad",
        "link set eth0 up",
        "route add 169.254.1.1 dev eth0 scope link",
        "route add default via 169.254.1.1 dev eth0",
        "route add default via fe80::ecee:eeff:feee:eeee dev eth0",
    ]
    tap = vms.tap_name(PORT_ID)
    assert tap == "tapf01a8091-cb" and len(tap) <= 15
    # IPv4 forwarding, proxy ARP and routes are the agent's (WorkloadSysctlSync, routes)
    assert vms.host_sysctls(tap, ipv6=False) == {}
    assert vms.host_sysctls(tap, ipv6=True)[f"net.ipv6.conf.{tap}.accept_dad"] == "0"
    assert vms.inside_commands("fa:16:3e:00:00:02", ["2001:db8::6"])[-1] == \
        "route add default via fe80::ecee:eeff:feee:eeee dev eth0"
    assert not [c for c in vms.inside_commands("fa:16:3e:00:00:02", ["2001:db8::6"])
                if "169.254.1.1" in c]


def port(**fields: Any) -> dict[str, Any]:
    base = {"id": PORT_ID, "mac_address": "fa:16:3e:00:00:01", "binding:host_id": "h1",
            "fixed_ips": [{"ip_address": "2001:db8::5"}, {"ip_address": "198.18.200.5"}]}
    return {**base, **fields}


def test_a_port_a_vm_can_plug_into(tmp_path: Path) -> None:
    lab = lab_state(tmp_path)
    assert vms._checked_port(lab, port()) == ("h1", "fa:16:3e:00:00:01",
                                              ["198.18.200.5", "2001:db8::5"])
    with pytest.raises(LabError, match="no binding:host_id"):
        vms._checked_port(lab, port(**{"binding:host_id": ""}))
    with pytest.raises(LabError, match="no host 'compute7'"):
        vms._checked_port(lab, port(**{"binding:host_id": "compute7"}))
    with pytest.raises(LabError, match="no fixed IPs"):
        vms._checked_port(lab, port(fixed_ips=[]))


def test_deleting_a_vm_as_a_cni_workload_is_refused(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from gingham.lab import state as labstate
    from gingham.lab import workloads

    lab = lab_state(tmp_path)
    lab.workloads["vm/a"] = WorkloadState("vm", "a", "h1", "gw-t-x", PORT_ID, port_id=PORT_ID)
    monkeypatch.setattr(labstate, "load", lambda _name: lab)
    with pytest.raises(LabError, match="lab vm del a"):
        workloads.delete("t", "vm/a")


def test_neutron_errors_say_what_neutron_said() -> None:
    body = b'{"NeutronError": {"type": "PortNotFound", "message": "Port x could not be found."}}'
    assert _message(body) == "PortNotFound: Port x could not be found."
    assert _message(b"<html>oops</html>") == "<html>oops</html>"
    assert _message(b'{"NeutronError": "plain"}') == "plain"
    assert _id(PORT_ID) == PORT_ID
    for bad in ("", "../networks", "a/b", "x?fields=id"):
        with pytest.raises(LabError):
            _id(bad)
    with pytest.raises(LabError, match="http://HOST:PORT"):
        NeutronAPI("https://127.0.0.1:9696")


def test_an_unreachable_server_is_a_neutron_error() -> None:
    import socket

    from gingham.lab.neutron_api import NeutronAPIError

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port_number = s.getsockname()[1]
    api = NeutronAPI(f"http://127.0.0.1:{port_number}", timeout=1.0)
    assert not api.ready()
    with pytest.raises(NeutronAPIError) as err:
        api.networks()
    assert err.value.status == 0 and "did not answer" in str(err.value)


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A process whose command line names the lab's neutron.conf, as Neutron's does."""
    run_dir = tmp_path / "run"
    conf = run_dir / "openstack" / "neutron.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                             "--config-file", str(conf)], start_new_session=True)
    try:
        from gingham.lab.netns import wait_for

        # until it has exec'd (before, its command line is still ours)
        assert wait_for(lambda: str(conf).encode() in Path(f"/proc/{proc.pid}/cmdline")
                        .read_bytes(), timeout=10)
        yield run_dir, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_stop_server_signals_the_lab_s_server_only(
        fake_server: tuple[Path, subprocess.Popen[bytes]]) -> None:
    run_dir, proc = fake_server
    pidfile = run_dir / "openstack" / "neutron.pid"
    assert labopenstack.leftovers(run_dir) == [proc.pid]
    # a stale pid file naming a process of someone else (here: this test) is not obeyed
    pidfile.write_text(f"{os.getpid()}\n")
    assert labopenstack.stop_server(run_dir) is False
    assert not pidfile.exists() and proc.poll() is None
    pidfile.write_text(f"{proc.pid}\n")
    assert labopenstack.stop_server(run_dir, grace=5.0) is True
    proc.wait(timeout=5)  # (stop_server reaps its own children: no exit status left here)
    assert labopenstack.leftovers(run_dir) == []


def test_stop_removes_what_a_crash_left_without_pid_files(
        fake_server: tuple[Path, subprocess.Popen[bytes]]) -> None:
    run_dir, proc = fake_server
    labopenstack.stop(run_dir)
    proc.wait(timeout=5)
    assert not (run_dir / "openstack").exists()
