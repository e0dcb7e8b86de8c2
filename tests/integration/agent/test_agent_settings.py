"""FelixConfiguration takes effect end to end in a lab: agents on 3 hosts over 2 subnets
(h1, h2 on 192.0.2.0/24; h3 on 198.51.100.0/24 behind the router), real workloads, real
packets. Every test puts the settings back as it found them, also when it fails."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import open_datastore
from gingham.datastore.resources import ResourceStore
from gingham.errors import NotFound
from gingham.lab import lab as labmod
from gingham.lab import matrix, workloads
from gingham.lab import state as labstate
from gingham.lab.netns import add_netns, delete_netns, ip_batch, spawn_in_netns, stop_process
from gingham.model import parse_resource, to_dict
from tests.integration.dataplane.test_policy_kernel import probe

pytestmark = pytest.mark.integration

API = "projectcalico.org/v3"


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    name = f"fs{os.getpid() % 100000}"
    labmod.down(name)
    try:
        labmod.up(name, hosts=3, subnets=2, make_current=False)
        for i, host in ((1, "h1"), (3, "h3")):
            workloads.add(name, f"s/w{i}", host, {}, [(80, "tcp", "")])
        yield name
    finally:
        labmod.down(name)


@pytest.fixture
def store(lab: str) -> Iterator[ResourceStore]:
    ds = open_datastore(labstate.load(lab).datastore)
    try:
        yield ResourceStore(ds)
    finally:
        ds.close()


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(0.3)


def felix(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "FelixConfiguration", "metadata": {"name": name},
            "spec": spec}


def as_doc(resource: Any) -> dict[str, Any]:
    """A stored resource as a manifest to apply again (no resourceVersion to compare)."""
    doc = to_dict(resource)
    doc["metadata"].pop("resourceVersion", None)
    return doc


@contextlib.contextmanager
def applied(store: ResourceStore, *docs: dict[str, Any]) -> Iterator[None]:
    """Resources applied for the test, and put back as they were afterwards."""
    saved = []
    for doc in docs:
        res = parse_resource(doc)
        info = store.info_of(res)
        try:
            before = store.get(info, res.metadata.name, res.metadata.namespace)
        except NotFound:
            before = None
        saved.append((info, res.metadata.name, res.metadata.namespace, before))
        store.apply(res)
    try:
        yield
    finally:
        for info, name, namespace, before in reversed(saved):
            if before is None:
                with contextlib.suppress(NotFound):
                    store.delete(info, name, namespace)
            else:
                store.apply(parse_resource(as_doc(before)))


def all_reach(lab: str, timeout: float = 20.0) -> dict[str, dict[str, bool]]:
    deadline = time.monotonic() + timeout
    while True:
        cells = matrix.measure(labstate.load(lab)).cells
        if all(all(row.values()) for row in cells.values()) or time.monotonic() > deadline:
            return cells


def vxlan_device(netns: str) -> dict[str, Any] | None:
    out = subprocess.run(["ip", "-n", netns, "-d", "-j", "link", "show", "vxlan.gingham"],
                         capture_output=True, text=True, check=False).stdout
    return json.loads(out)[0] if out.strip() else None


def vni_port_mtu(netns: str) -> tuple[int, int, int] | None:
    dev = vxlan_device(netns)
    if dev is None:
        return None
    data = dev["linkinfo"]["info_data"]
    return int(data["id"]), int(data["port"]), int(dev["mtu"])


def in_netns(netns: str, code: str, *args: str, timeout: float = 20) -> str:
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "--", sys.executable, "-I",
                           "-S", "-c", code, *args], capture_output=True, text=True, check=True,
                          timeout=timeout).stdout


HTTP = textwrap.dedent("""
    import json, sys, urllib.error, urllib.request
    out = []
    for port, path in json.loads(sys.argv[1]):
        try:
            out.append(urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2).status)
        except urllib.error.HTTPError as exc:
            out.append(exc.code)
        except OSError:
            out.append(0)
    print(json.dumps(out))
""")


def http(netns: str, *requests: tuple[int, str]) -> list[int]:
    """HTTP status of each (port, path) on the host's loopback (0: nothing listens)."""
    return list(json.loads(in_netns(netns, HTTP, json.dumps(requests))))


def agent_pid(lab: str, host: str) -> int:
    status = labmod.agent_status(lab, labstate.load(lab).host(host))
    assert status is not None and status.agent_pid
    return int(status.agent_pid)


# --- VXLAN -----------------------------------------------------------------------------


def test_vni_and_port_change_recreate_the_tunnel(lab: str, store: ResourceStore) -> None:
    st = labstate.load(lab)
    cells = all_reach(lab)
    assert all(all(row.values()) for row in cells.values()), cells
    netns = [h.netns for h in st.hosts]
    assert [vni_port_mtu(ns) for ns in netns] == [(4096, 4789, 1450)] * 3
    before = {ns: vxlan_device(ns)["ifindex"] for ns in netns}  # type: ignore[index]
    with applied(store, felix("default", vxlanVNI=5000, vxlanPort=8472)):
        wait_until(lambda: all(vni_port_mtu(ns) == (5000, 8472, 1450) for ns in netns),
                   what="every host's device on VNI 5000, port 8472")
        # Re-created (a VXLAN device's VNI and port cannot change in place) ...
        assert all(vxlan_device(ns)["ifindex"] != before[ns] for ns in netns)  # type: ignore[index]
        # ... with its peers and routes back: h3 across the router still reaches everyone.
        cells = all_reach(lab)
        assert all(all(row.values()) for row in cells.values()), cells
        routes = subprocess.run(["ip", "-n", st.host("h1").netns, "route", "show", "proto", "201"],
                                capture_output=True, text=True, check=True).stdout
        assert "dev vxlan.gingham" in routes
    wait_until(lambda: all(vni_port_mtu(ns) == (4096, 4789, 1450) for ns in netns),
               what="back on VNI 4096, port 4789")
    cells = all_reach(lab)
    assert all(all(row.values()) for row in cells.values()), cells


def test_vxlan_mtu_sets_the_device_and_new_workloads(lab: str, store: ResourceStore) -> None:
    st = labstate.load(lab)
    h1 = st.host("h1").netns
    mtu_file = Path(st.run_dir) / "h1" / "mtu"
    with applied(store, felix("node.h1", vxlanMTU=1400)):
        wait_until(lambda: vni_port_mtu(h1) == (4096, 4789, 1400), what="h1's device at 1400")
        wait_until(lambda: mtu_file.read_text().strip() == "1400", what="the MTU file says 1400")
        assert vni_port_mtu(st.host("h2").netns) == (4096, 4789, 1450)  # per node
        wl = workloads.add(lab, "s/mtu", "h1", {}, [])
        try:
            eth0 = subprocess.run(["ip", "-n", wl.netns, "-j", "link", "show", "eth0"],
                                  capture_output=True, text=True, check=True).stdout
            assert json.loads(eth0)[0]["mtu"] == 1400
        finally:
            workloads.delete(lab, "s/mtu")
    wait_until(lambda: vni_port_mtu(h1) == (4096, 4789, 1450), what="h1's device back at 1450")
    wait_until(lambda: mtu_file.read_text().strip() == "1450", what="the MTU file back at 1450")


# --- NAT outgoing ------------------------------------------------------------------------

SEEN = textwrap.dedent("""
    import socket, sys
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 8000)); s.listen(16)
    print("ready", flush=True)
    while True:
        c, (addr, _) = s.accept()
        print(addr, flush=True)
        c.close()
""")

CONNECT = textwrap.dedent("""
    import socket, sys
    try:
        socket.create_connection((sys.argv[1], 8000), timeout=3).close()
        print("ok")
    except OSError as exc:
        print("failed", exc)
""")


@pytest.fixture
def external(lab: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A namespace behind the router on 203.0.113.0/24 (outside every pool), recording the
    source address of every connection to its port 8000."""
    st = labstate.load(lab)
    router = st.fabric["router"]
    ext = f"gh-{lab}-ext"  # the lab's prefix: `lab down` removes it should this test die
    add_netns(ext)
    proc = None
    try:
        ip_batch(router, [f"link add x0 type veth peer name eth0 netns {ext}",
                          "addr add 203.0.113.1/24 dev x0", "link set x0 up"])
        ip_batch(ext, ["addr add 203.0.113.10/24 dev eth0", "link set eth0 up",
                       "route add default via 203.0.113.1"])
        proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{ext}", "--", sys.executable,
                                 "-u", "-c", SEEN], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield ext, proc
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        delete_netns(ext)  # its end of the veth goes, and the router's with it


def test_nat_outgoing_address_is_the_source_outside(
    lab: str, store: ResourceStore, external: tuple[str, subprocess.Popen[str]]
) -> None:
    st = labstate.load(lab)
    h1 = st.host("h1")
    _ext, seen = external
    nat_pool = as_doc(store.get("IPPool", "default-ipv4-ippool"))
    nat_pool["spec"]["natOutgoing"] = True
    # An address of h1's own (the router's replies to it must find h1), not its main one.
    ip_batch(h1.netns, ["addr add 192.0.2.99/32 dev eth0"])
    try:
        with applied(store, nat_pool):
            # Masquerade: the host's address.
            assert wait_until(lambda: source_seen(lab, seen, "s/w1"),
                              what="a masqueraded connection") == h1.address
            with applied(store, felix("node.h1", natOutgoingAddress="192.0.2.99")):
                wait_until(lambda: source_seen(lab, seen, "s/w1") == "192.0.2.99",
                           what="the source is natOutgoingAddress")
                # Other hosts keep masquerading (the setting was h1's).
                assert source_seen(lab, seen, "s/w3") == st.host("h3").address
            wait_until(lambda: source_seen(lab, seen, "s/w1") == h1.address,
                       what="masquerade again")
    finally:
        ip_batch(h1.netns, ["addr del 192.0.2.99/32 dev eth0"])


def source_seen(lab: str, proc: subprocess.Popen[str], workload: str) -> str | None:
    """Connect from ``workload`` to the external namespace: the source address it saw
    (None: no connection, e.g. replies to a pool address find no way back)."""
    out = in_netns(labstate.load(lab).workload(workload).netns, CONNECT, "203.0.113.10")
    if not out.startswith("ok"):
        return None
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


# --- the agent's servers and log ----------------------------------------------------------


def test_health_and_metrics_listeners_move(lab: str, store: ResourceStore) -> None:
    h1 = labstate.load(lab).host("h1").netns
    pid = agent_pid(lab, "h1")
    assert http(h1, (9099, "/readyz"), (9099, "/metrics"), (9191, "/metrics")) == [200, 200, 0]
    node = felix("node.h1", prometheusMetricsEnabled=True, prometheusMetricsPort=9191)
    with applied(store, node):
        # /metrics moves to its own port; health stays.
        wait_until(lambda: http(h1, (9191, "/metrics"), (9099, "/metrics"),
                                (9099, "/readyz")) == [200, 404, 200], what="metrics on 9191")
        moved = json.loads(json.dumps(node))
        moved["spec"].update(prometheusMetricsPort=9192, healthPort=9098)
        with applied(store, moved):
            wait_until(lambda: http(h1, (9192, "/metrics"), (9191, "/metrics"),
                                    (9098, "/readyz"), (9099, "/readyz")) == [200, 0, 200, 0],
                       what="metrics on 9192, health on 9098")
            metrics = in_netns(h1, "import urllib.request; print(urllib.request.urlopen("
                               "'http://127.0.0.1:9192/metrics', timeout=2).read().decode())")
            assert "gingham_in_sync 1.0" in metrics
    wait_until(lambda: http(h1, (9099, "/readyz"), (9099, "/metrics"), (9191, "/metrics"),
                            (9192, "/metrics")) == [200, 200, 0, 0], what="back on 9099")
    assert agent_pid(lab, "h1") == pid  # moved while it ran: no restart


def test_log_level_follows_the_configuration(lab: str, store: ResourceStore) -> None:
    log_path = labstate.agent_log_path(lab, "h1")

    def policy_change(i: int) -> None:
        store.apply(parse_resource({
            "apiVersion": API, "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "log-level-probe"},
            "spec": {"selector": "all()", "order": 9000 + i, "types": ["Ingress"],
                     "ingress": [{"action": "Allow", "protocol": "TCP",
                                  "destination": {"ports": [1000 + i]}}]}}))

    def logged_since(offset: int) -> str:
        return log_path.read_bytes()[offset:].decode(errors="replace")

    try:
        start = log_path.stat().st_size
        with applied(store, felix("node.h1", logSeverityScreen="Warning")):
            wait_until(lambda: "log level now WARNING" in logged_since(start),
                       what="the agent's log level at Warning")
            quiet = log_path.stat().st_size
            # h3 (at Info) logs the policy it programs for its workload; by the time it
            # has, h1 has long programmed it for its own, without a word at Info.
            h3_log = labstate.agent_log_path(lab, "h3")
            h3_start = h3_log.stat().st_size
            policy_change(1)
            wait_until(lambda: "log-level-probe" in h3_log.read_bytes()[h3_start:].decode(
                errors="replace"), what="h3 logs the policy at Info")
            time.sleep(1.0)
            assert " INFO " not in logged_since(quiet)
            start = log_path.stat().st_size
        wait_until(lambda: "log level now INFO" in logged_since(start), what="back at Info")
        policy_change(2)
        wait_until(lambda: "log-level-probe" in logged_since(start), what="h1 logs at Info")
    finally:
        with contextlib.suppress(NotFound):
            store.delete("GlobalNetworkPolicy", "log-level-probe")


# --- failsafe ports ------------------------------------------------------------------------


def test_failsafe_net_is_honoured(lab: str, store: ResourceStore) -> None:
    st = labstate.load(lab)
    h1, h2, h3 = (st.host(n) for n in ("h1", "h2", "h3"))
    server = spawn_in_netns(h1.netns, [sys.executable, "-c", _SERVER, "7777", "7778"],
                            stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
        hep = {"apiVersion": API, "kind": "HostEndpoint",
               "metadata": {"name": "h1-eth0", "labels": {"failsafe-test": "h1"}},
               "spec": {"node": "h1", "interfaceName": "eth0", "expectedIPs": [h1.address]}}
        deny_in = {"apiVersion": API, "kind": "GlobalNetworkPolicy",
                   "metadata": {"name": "failsafe-test-deny-in"},
                   "spec": {"selector": "failsafe-test == 'h1'", "types": ["Ingress", "Egress"],
                            "ingress": [], "egress": [{"action": "Allow"}]}}
        fs = felix("node.h1", failsafeInboundHostPorts=[
            {"protocol": "TCP", "port": 7777, "net": f"{h2.address}/32"}])
        assert probe(h2.netns, [(h1.address, 7777, None), (h1.address, 7778, None)]) == [
            True, True]
        with applied(store, fs, deny_in, hep):
            # h2 is in the failsafe net; h3 is not; 7778 is no failsafe port at all.
            wait_until(lambda: probe(h2.netns, [(h1.address, 7777, None),
                                                (h1.address, 7778, None)]) == [True, False],
                       what="only the failsafe port open to h2")
            assert probe(h3.netns, [(h1.address, 7777, None)]) == [False]
        wait_until(lambda: probe(h3.netns, [(h1.address, 7777, None),
                                            (h1.address, 7778, None)]) == [True, True],
                   what="open again")
    finally:
        stop_process(server)


_SERVER = textwrap.dedent("""
    import socket, sys, threading
    def serve(s):
        while True:
            c, _ = s.accept(); c.sendall(b"x"); c.close()
    for p in sys.argv[1:]:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(p))); s.listen(16)
        threading.Thread(target=serve, args=(s,), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()
""")


# --- host capabilities ---------------------------------------------------------------------


def test_host_capabilities_are_reported(lab: str) -> None:
    st = labstate.load(lab)
    env = dict(os.environ, GINGHAM_RUN_DIR=st.run_dir)
    gingham = str(Path(sys.executable).with_name("gingham"))
    out = subprocess.run([gingham, "node", "status", "--agent", "--name", "h1", "-o", "json"],
                         capture_output=True, text=True, check=True, env=env).stdout
    caps = {c["name"]: c["present"] for c in json.loads(out)["capabilities"]}
    assert caps == {"nftables": True, "vxlan": True, "nat": True, "bird": True}
    table = subprocess.run([gingham, "node", "status", "--agent", "--name", "h1"],
                           capture_output=True, text=True, check=True, env=env).stdout
    assert "Host capabilities:" in table and "vxlan" in table
    metrics = in_netns(st.host("h1").netns, "import urllib.request; print(urllib.request."
                       "urlopen('http://127.0.0.1:9099/metrics', timeout=2).read().decode())")
    assert 'gingham_host_capability{name="vxlan"} 1.0' in metrics
    assert 'gingham_host_capability{name="bird"} 1.0' in metrics

