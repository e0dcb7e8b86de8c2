"""BGP settings end to end: real agents (``gingham node run`` in a lab), real BIRD 2, and
FRR as the router they peer with.

Each test brings up a small lab (hosts on 192.0.2.0/24, the router at 192.0.2.1),
writes BGP resources into its datastore and judges what happened from outside the
agents: FRR's view of sessions and routes, the hosts' kernels and sockets, BIRD's
own status and the agents' reports. The agents run BIRD with its default timers
(gingham sets none); FRR's are short. Where a test must know which side opened a
session, FRR is ``passive`` or the host's own connection attempts are dropped.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from functools import partial
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import keys, open_datastore
from gingham.datastore.resources import ResourceStore
from gingham.errors import RoutingError
from gingham.ipam import IPAM
from gingham.lab import lab as labmod
from gingham.lab import workloads
from gingham.lab.fabric import Fabric
from gingham.lab.lab import gingham_binary
from gingham.lab.netns import add_netns, add_veth, ip_batch, run_in_netns, wait_for
from gingham.lab.state import LabState
from gingham.model import parse_resource, to_dict
from gingham.routing.status import PeerStatus, bgp_status, birdc

from .frr import FrrRouter, Neighbor, bgpd_config, frr_available, frr_router

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(frr_available() is not None, reason=str(frr_available())),
]

HOST_AS = 64512
TOR_AS = 64513
CALICO = "projectcalico.org/v3"
POOL = "198.18.0.0/16"
CLUSTER_IPS = "198.19.0.0/24"
EXTERNAL_IPS = "198.19.128.0/24"
OUTSIDE = "203.0.113.0/24"  # behind the router, in no pool and no service CIDR


@pytest.fixture
def lab_name() -> Iterator[str]:
    # t<pid>x0: the netns fixtures recognise it as an orphan if this process dies
    name = f"t{os.getpid()}x0"
    labmod.down(name)
    try:
        yield name
    finally:
        labmod.down(name)


@pytest.fixture
def secrets() -> Iterator[Path]:
    """A directory for password files, readable by root only, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="gingham-bgp-") as d:
        yield Path(d)


def _write_password(path: Path, password: str, mode: int = 0o600) -> None:
    # Replaced whole (rename), as an operator's tool would: the agent never reads half a file.
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, password.encode() + b"\n")
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _apply(url: str, *docs: dict[str, Any]) -> None:
    ds = open_datastore(url)
    try:
        store = ResourceStore(ds)
        for doc in docs:
            store.apply(parse_resource(doc))
    finally:
        ds.close()


def _resource(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": CALICO, "kind": kind, "metadata": {"name": name}, "spec": spec}


def _pool(cidr: str = POOL, **spec: Any) -> dict[str, Any]:
    name = "default-ipv4-ippool" if ":" not in cidr else "default-ipv6-ippool"
    return _resource("IPPool", name, cidr=cidr, vxlanMode="Never", **spec)


def _host_blocks(url: str) -> dict[str, str]:
    """Every affine IPAM block (CIDR) -> the host that owns it."""
    ds = open_datastore(url)
    try:
        kvs = ds.list(keys.IPAM + "blocks/")[0]
    finally:
        ds.close()
    return {
        kv.value["cidr"]: kv.value["affinity"][len("host:"):]
        for kv in kvs
        if str(kv.value.get("affinity") or "").startswith("host:")
    }


def _kernel_routes(netns: str, family: str = "-4") -> dict[str, dict[str, Any]]:
    out = run_in_netns(netns, ["ip", "-j", family, "route", "show"]).stdout
    return {r["dst"]: r for r in (json.loads(out) if out.strip() else [])}


def _has_route(netns: str, dst: str) -> bool:
    return dst in _kernel_routes(netns, "-6" if ":" in dst else "-4")


def _sessions(lab: LabState, host: str) -> dict[str, PeerStatus]:
    """BIRD's BGP sessions on ``host`` by protocol name (none while BIRD is not up)."""
    try:
        status = bgp_status(Path(lab.run_dir) / host / "bird" / "bird.ctl")
    except RoutingError:
        return {}
    return {s.name: s for s in status}


def _established(lab: LabState, host: str) -> set[str]:
    return {name for name, s in _sessions(lab, host).items() if s.established}


def _node_status(lab: LabState, host: str) -> list[dict[str, str]]:
    """``gingham node status -o json``: the host's BGP sessions, as an operator sees them."""
    env = dict(os.environ, GINGHAM_RUN_DIR=lab.run_dir)
    proc = subprocess.run(
        [gingham_binary(), "node", "status", "--name", host, "-o", "json"],
        capture_output=True, text=True, env=env, timeout=20, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return list(json.loads(proc.stdout))


def _agent_notices(lab: LabState, host: str) -> list[str]:
    """What the agent reports (``gingham node status --agent``): its notices."""
    env = dict(os.environ, GINGHAM_RUN_DIR=lab.run_dir)
    proc = subprocess.run(
        [gingham_binary(), "node", "status", "--name", host, "--agent", "-o", "json"],
        capture_output=True, text=True, env=env, timeout=20, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return list(json.loads(proc.stdout).get("notices") or [])


def _bird_log(lab: LabState, host: str) -> str:
    path = Path(lab.run_dir) / host / "bird" / "bird.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _frr_paths(tor: FrrRouter, prefix: str, family: str = "ipv4") -> dict[str, dict[str, Any]]:
    """FRR's paths to ``prefix`` by the peer they came from."""
    doc = tor.json(f"show bgp {family} unicast {prefix}")
    return {p["peer"]["peerId"]: p for p in doc.get("paths") or [] if "peer" in p}


def _communities(path: dict[str, Any]) -> set[str]:
    std = (path.get("community") or {}).get("string", "")
    large = (path.get("largeCommunity") or {}).get("string", "")
    return set(std.split()) | set(large.split())


# --- communities, prefix advertisements, service CIDRs -----------------------------------

UNUSED_SERVICE_IP = "198.19.0.77"
_LOOP_COUNT = f"""\
table bridge gh_test_loop {{
  counter svc {{ }}
  chain forward_count {{
    type filter hook forward priority 0; policy accept;
    ip daddr {UNUSED_SERVICE_IP} counter name svc
  }}
}}
"""


def _unused_service_ip(fabric: Fabric, source: str) -> tuple[int, str]:
    """One TCP connection attempt from namespace ``source`` (behind the ToR) to an unused
    service IP (its SYN and at most one retransmission): how often a packet for it
    crossed the fabric, and what nc said. (Not from the ToR itself: it would drop the
    packet coming back with its own source address.)"""
    counter = ["nft", "-j", "list", "counter", "bridge", "gh_test_loop", "svc"]
    run_in_netns(fabric.switch, ["nft", "reset", "counter", "bridge", "gh_test_loop", "svc"])
    proc = run_in_netns(source, ["busybox", "nc", "-w", "2", UNUSED_SERVICE_IP, "80"],
                        input="", check=False)
    out = json.loads(run_in_netns(fabric.switch, counter).stdout)["nftables"]
    crossed = next(int(i["counter"]["packets"]) for i in out if "counter" in i)
    return crossed, proc.stdout + proc.stderr


def _no_table(netns: str, table: str) -> bool:
    argv = ["nft", "list", "table", "inet", table]
    return run_in_netns(netns, argv, check=False).returncode != 0


def _add_external(fabric: Fabric) -> str:
    """A namespace behind the router on 203.0.113.0/24 (named under the lab's prefix, so
    the lab's teardown removes it too)."""
    ns = add_netns(f"gh-{fabric.lab}-x")
    add_veth("x0", "eth0", netns=fabric.router, peer_netns=ns)
    ip_batch(fabric.router, ["addr add 203.0.113.1/24 dev x0", "link set x0 up"])
    ip_batch(ns, ["addr add 203.0.113.10/24 dev eth0", "link set eth0 up",
                  "route add default via 203.0.113.1"])
    return ns


def test_agents_apply_bgp_settings_seen_by_an_frr_tor(lab_name: str, secrets: Path) -> None:
    """Three hosts, no mesh, one global BGPPeer (with a password) to an FRR ToR.

    The ToR must learn every host's block with the communities the prefix
    advertisements give it (h3's own list replaces the cluster's), and both service
    CIDRs from every host. The ToR also announces a prefix outside every service CIDR
    (it reaches the hosts' kernels) and one inside each service CIDR (they reach BIRD
    but no host's kernel). Traffic from behind the ToR to an unused service IP stops
    at the first host (the agents' loop prevention), and loops once that is off.
    Per-node logSeverityScreen chooses what each BIRD logs.
    """
    lab = labmod.up(lab_name, hosts=3, subnets=1, make_current=False)
    fabric = Fabric.from_dict(lab.fabric)
    hosts = {h.name: h for h in fabric.hosts}
    outside = _add_external(fabric)  # OUTSIDE, which the ToR announces
    password = secrets / "tor.pass"
    _write_password(password, "tor-secret-1")
    _apply(lab.datastore, _pool())
    for h in fabric.hosts:
        workloads.add(lab_name, f"bgp/w{h.index}", h.name)
    blocks = {c: owner for c, owner in _host_blocks(lab.datastore).items()
              if ip_network(c).version == 4}
    assert sorted(blocks.values()) == ["h1", "h2", "h3"], blocks

    inside_services = ["198.19.0.5/32", "198.19.128.128/25"]  # cluster IPs, external IPs
    neighbors = [Neighbor(h.address, HOST_AS, port=1790, password="tor-secret-1")
                 for h in fabric.hosts]
    conf = bgpd_config(TOR_AS, fabric.hosts[0].gateway, neighbors,
                       networks=[OUTSIDE, *inside_services])
    with frr_router(fabric.router, conf) as tor:
        # Per-node settings first: BIRD starts (with BGPConfiguration default) already
        # knowing them, so its log holds nothing from other settings.
        _apply(
            lab.datastore,
            _resource("BGPConfiguration", "node.h1", logSeverityScreen="Warning"),
            _resource("BGPConfiguration", "node.h3", logSeverityScreen="Debug",
                      communities=[{"name": "h3-pods", "value": "64512:300"}],
                      prefixAdvertisements=[{"cidr": POOL, "communities": ["h3-pods"]}]),
            _resource("BGPPeer", "tor", peerIP=fabric.hosts[0].gateway, asNumber=TOR_AS,
                      password={"file": str(password)}),
            _resource(
                "BGPConfiguration", "default", asNumber=HOST_AS, nodeToNodeMeshEnabled=False,
                listenPort=1790, logSeverityScreen="Info",
                serviceClusterIPs=[{"cidr": CLUSTER_IPS}],
                serviceExternalIPs=[{"cidr": EXTERNAL_IPS}],
                communities=[{"name": "pods", "value": "64512:100"},
                             {"name": "services", "value": "64512:7:9"}],
                prefixAdvertisements=[
                    {"cidr": POOL, "communities": ["pods", "65000:1"]},
                    {"cidr": CLUSTER_IPS, "communities": ["services"]},
                ],
            ),
        )
        addresses = {h.address for h in fabric.hosts}
        assert wait_for(lambda: tor.established() == addresses, 30, 0.3), (
            tor.peers(), tor.log("bgpd"))

        # every host's block, from that host, with its communities
        want = {"h1": {"64512:100", "65000:1"}, "h2": {"64512:100", "65000:1"},
                "h3": {"64512:300"}}

        def blocks_seen() -> dict[str, tuple[str, set[str]]]:
            seen = {}
            for cidr in blocks:
                for peer, path in _frr_paths(tor, cidr).items():
                    seen[cidr] = (peer, _communities(path))
            return seen

        expected = {c: (hosts[owner].address, want[owner]) for c, owner in blocks.items()}
        assert wait_for(lambda: blocks_seen() == expected, 20, 0.3), (blocks_seen(), expected)

        # both service CIDRs from every host; the cluster IPs with the large community,
        # except from h3, whose own prefixAdvertisements replaced the cluster's
        def services_seen() -> dict[str, dict[str, set[str]]]:
            return {cidr: {peer: _communities(p) for peer, p in _frr_paths(tor, cidr).items()}
                    for cidr in (CLUSTER_IPS, EXTERNAL_IPS)}

        by_host = {h.address: h.name for h in fabric.hosts}
        expected_services = {
            CLUSTER_IPS: {a: set() if n == "h3" else {"64512:7:9"} for a, n in by_host.items()},
            EXTERNAL_IPS: {a: set() for a in by_host},
        }
        assert wait_for(lambda: services_seen() == expected_services, 20, 0.3), services_seen()

        # What the ToR announces: outside every service CIDR it reaches each host's
        # kernel (BIRD, proto bird); inside a service CIDR it stays in BIRD.
        for h in fabric.hosts:
            assert wait_for(partial(_has_route, h.netns, OUTSIDE), 15, 0.3), h.name
            route = _kernel_routes(h.netns)[OUTSIDE]
            assert (route.get("protocol"), route.get("gateway")) == ("bird", h.gateway), route
            sock = Path(lab.run_dir) / h.name / "bird" / "bird.ctl"
            for inside in inside_services:
                learnt = birdc(sock, "show", "route", inside, "all")
                assert "BGP" in learnt and h.gateway in learnt, learnt
            kernel = _kernel_routes(h.netns)
            assert not kernel.keys() & set(inside_services), (h.name, kernel)
            # the host's own service CIDRs are BIRD's blackholes, never the kernel's
            assert CLUSTER_IPS not in kernel and EXTERNAL_IPS not in kernel, (h.name, kernel)

        # An unused cluster IP: the ToR routes it to a host (it learnt the CIDR from all
        # of them), the host has no route for it but its default, back to the ToR. The
        # agents' loop prevention drops it at the first host; with serviceLoopPrevention
        # Disabled it goes round until its TTL runs out.
        router_route = ["ip", "route", "show", CLUSTER_IPS, "proto", "bgp"]
        assert wait_for(lambda: run_in_netns(fabric.router, router_route).stdout.strip(), 15,
                        0.3)
        run_in_netns(fabric.switch, ["nft", "-f", "-"], input=_LOOP_COUNT)
        crossed, said = _unused_service_ip(fabric, outside)
        assert 1 <= crossed <= 2 and "timed out" in said, (crossed, said)
        _apply(lab.datastore, _resource("FelixConfiguration", "default",
                                        serviceLoopPrevention="Disabled"))
        for h in fabric.hosts:
            assert wait_for(partial(_no_table, h.netns, "gingham-svc"), 15, 0.3), h.name
        crossed, _ = _unused_service_ip(fabric, outside)
        assert crossed >= 20, crossed

        # logSeverityScreen per node: h3 Debug (protocol traces), h1 Warning (no info
        # messages), h2 the cluster's Info
        logs = {h: _bird_log(lab, h) for h in hosts}
        assert "<TRACE>" in logs["h3"], logs["h3"][-2000:]
        assert "<INFO>" in logs["h2"] and "<TRACE>" not in logs["h2"], logs["h2"][-2000:]
        assert "<INFO>" not in logs["h1"] and "<TRACE>" not in logs["h1"], logs["h1"][-2000:]


# --- listen ports and passwords ----------------------------------------------------------

# h2 never opens a connection to another host: a session of h2 with h1 or h3 comes
# up only if they connect to h2's own listen port.
_H2_WAITS = """\
table inet gh_test_wait {
  chain out {
    type filter hook output priority 0; policy accept;
    ip daddr { 192.0.2.11, 192.0.2.13 } tcp flags & (syn | ack) == syn drop
  }
}
"""


def _listening(netns: str) -> set[int]:
    out = run_in_netns(netns, ["ss", "-Htln"]).stdout
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip()}


def _md5_failures(netns: str) -> int:
    """Segments this namespace's TCP dropped for a wrong MD5 signature (TcpExt
    TCPMD5Failure; /proc/net is the reader's namespace's)."""
    lines = run_in_netns(netns, ["cat", "/proc/net/netstat"]).stdout.splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["TCPMD5Failure"])
    raise AssertionError("no TcpExt in /proc/net/netstat")


def test_listen_ports_and_passwords_decide_which_sessions_come_up(
    lab_name: str, secrets: Path
) -> None:
    """The cluster listens on 1790, h2 on 1791 (``node.h2``); the mesh has a password
    whose file starts group-readable; the ToR (FRR, listening on 1179 only, passive,
    password ``right`` for h1 and h2, none for h3) is peered by h1 (port 1179, right
    password), h2 (port 1179, wrong password) and h3 (no port: 179); h1 also has a peer
    whose password file is missing. Only h1's ToR session comes up; the rest stay down,
    and the agents say why where they can know it (a file they cannot use), BIRD's
    status where they cannot. Repairing h3's port and then the files brings every
    session up without restarting anything."""
    lab = labmod.up(lab_name, hosts=3, subnets=1, make_current=False)
    fabric = Fabric.from_dict(lab.fabric)
    gateway = fabric.hosts[0].gateway
    run_in_netns(fabric.host("h2").netns, ["nft", "-f", "-"], input=_H2_WAITS)
    right, wrong, mesh, missing = (secrets / n for n in ("right", "wrong", "mesh", "missing"))
    _write_password(right, "right-pw")
    _write_password(wrong, "wrong-pw")
    _write_password(mesh, "mesh-pw", mode=0o640)
    lost_peer = "192.0.2.2"  # nobody there: the session is about its password file only

    # h3 has no password: a SYN signed with one to a closed port would get no answer
    # (Linux sends no reset it cannot sign), the wrong port would look like silence.
    neighbors = [Neighbor(h.address, HOST_AS, passive=True,
                          password=None if h.name == "h3" else "right-pw")
                 for h in fabric.hosts]
    conf = bgpd_config(TOR_AS, gateway, neighbors)
    with frr_router(fabric.router, conf, port=1179) as tor:
        _apply(
            lab.datastore,
            _pool(),
            _resource("BGPConfiguration", "node.h2", listenPort=1791),
            _resource("BGPPeer", "tor-h1", node="h1", peerIP=f"{gateway}:1179",
                      asNumber=TOR_AS, password={"file": str(right)}),
            _resource("BGPPeer", "tor-h2", node="h2", peerIP=f"{gateway}:1179",
                      asNumber=TOR_AS, password={"file": str(wrong)}),
            _resource("BGPPeer", "tor-h3", node="h3", peerIP=gateway, asNumber=TOR_AS),
            _resource("BGPPeer", "lost-h1", node="h1", peerIP=lost_peer, asNumber=TOR_AS,
                      password={"file": str(missing)}),
            _resource("BGPConfiguration", "default", asNumber=HOST_AS, listenPort=1790,
                      nodeMeshPassword={"file": str(mesh)}),
        )
        tor_session = "Node_192_0_2_1"
        h1 = fabric.host("h1").address
        assert wait_for(lambda: tor.established() == {h1}, 30, 0.3), (
            tor.peers(), {h.name: _sessions(lab, h.name) for h in fabric.hosts})
        # BIRD listens on each host's own port, and only there
        assert {h.name: _listening(h.netns) & {179, 1790, 1791} for h in fabric.hosts} == {
            "h1": {1790}, "h2": {1791}, "h3": {1790}}

        # the agents report the sessions they left out: a missing file (h1), a file
        # others may read (the mesh, on every host)
        def reported() -> dict[str, list[str]]:
            return {h.name: _agent_notices(lab, h.name) for h in fabric.hosts}

        def says(lines: list[str], session: str, why: str) -> bool:
            return any(session in line and why in line for line in lines)

        assert wait_for(lambda: says(reported()["h1"], "Node_192_0_2_2", "cannot open"), 10,
                        0.3), reported()
        notices = reported()
        for h in fabric.hosts:
            for other in fabric.hosts:
                if other is not h:
                    mesh_session = "Mesh_" + other.address.replace(".", "_")
                    assert says(notices[h.name], mesh_session, "group or others may read it"), (
                        h.name, notices[h.name])
        sessions = {h.name: _sessions(lab, h.name) for h in fabric.hosts}
        assert set(sessions["h1"]) == {tor_session}, sessions  # left out: not in BIRD at all
        assert set(sessions["h2"]) == {tor_session} == set(sessions["h3"]), sessions
        assert sessions["h1"][tor_session].established

        # The wrong password and the wrong port keep their sessions down: h2's SYNs reach
        # the ToR and are dropped for their MD5 signature, h3's are refused (nobody
        # listens on 179; BIRD says so). gingham node status shows neither as up.
        assert wait_for(lambda: _md5_failures(fabric.router) > 0, 10, 0.3)
        assert wait_for(lambda: "refused" in _sessions(lab, "h3")[tor_session].info, 10, 0.3), (
            _sessions(lab, "h3"))
        for name in ("h2", "h3"):
            [status] = _node_status(lab, name)
            assert (status["peer"], status["type"]) == (gateway, "node specific"), status
            assert status["state"] != "up" and not status["info"].startswith("Established"), (
                status)
        assert "refused" in _node_status(lab, "h3")[0]["info"]
        assert tor.established() == {h1}
        # BIRD's configuration holds passwords: nobody but its owner reads it
        for h in fabric.hosts:
            conf_file = Path(lab.run_dir) / h.name / "bird" / "bird.conf"
            assert stat.S_IMODE(conf_file.stat().st_mode) == 0o600, h.name

        # The right port for h3: a datastore change, BIRD reconfigured.
        _apply(lab.datastore, _resource("BGPPeer", "tor-h3", node="h3",
                                        peerIP=f"{gateway}:1179", asNumber=TOR_AS))
        h3 = fabric.host("h3").address
        assert wait_for(lambda: tor.established() == {h1, h3}, 20, 0.3), (
            tor.peers(), _sessions(lab, "h3"))
        # The files repaired: the right password into h2's, the missing one written, the
        # mesh's made private. Nothing in the datastore changes; the agents read the
        # files again within 10 s.
        _write_password(wrong, "right-pw")
        _write_password(missing, "lost-pw")
        os.chmod(mesh, 0o600)
        everyone = {h.address for h in fabric.hosts}
        assert wait_for(lambda: tor.established() == everyone, 30, 0.5), (
            tor.peers(), _sessions(lab, "h2"))

        def meshed() -> bool:
            return all(
                {"Mesh_" + o.address.replace(".", "_") for o in fabric.hosts if o is not h}
                <= _established(lab, h.name) for h in fabric.hosts)

        assert wait_for(meshed, 30, 0.5), {h.name: _sessions(lab, h.name) for h in fabric.hosts}
        # h2 opened none of its mesh sessions: h1 and h3 connected to its port 1791
        out = run_in_netns(fabric.host("h2").netns,
                           ["ss", "-Htn", "state", "established", "( sport = :1791 )"]).stdout
        peers = {line.split()[-1].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}
        assert peers == {fabric.host("h1").address, fabric.host("h3").address}, out
        # the repaired file is used: the lost peer's session is in BIRD now, and the
        # agents report nothing left out
        assert wait_for(lambda: "Node_192_0_2_2" in _sessions(lab, "h1"), 15, 0.3)
        assert wait_for(lambda: not any(reported().values()), 10, 0.3), reported()


# --- IPv6 ---------------------------------------------------------------------------------

POOL6 = "2001:db8:1::/64"
OUTSIDE6 = "2001:db8:ff::/64"  # behind the router


def test_ipv6_peer_on_its_own_port(lab_name: str) -> None:
    """A global BGPPeer ``[2001:db8:ffff::1]:1179`` to FRR listening only there, passive:
    the session exists only if h1's BIRD connects over IPv6 to that port. While h1's
    Node has no IPv6 address the session is left out and reported; once it has one,
    the session comes up, h1's IPv6 block reaches the ToR and the ToR's IPv6 prefix
    reaches h1's kernel."""
    lab = labmod.up(lab_name, hosts=1, subnets=1, make_current=False)
    fabric = Fabric.from_dict(lab.fabric)
    h1 = fabric.host("h1")
    tor6, h1_v6 = "2001:db8:ffff::1", "2001:db8:ffff::11"
    run_in_netns(fabric.router, ["ip", "addr", "add", f"{tor6}/64", "dev", "r0", "nodad"])
    ds = open_datastore(lab.datastore)
    try:
        _apply(lab.datastore, _pool(POOL6, blockSize=122))
        # an IPv6 block for h1, as its first IPv6 workload would claim
        [address] = IPAM(ds, "h1").auto_assign("bgp6-test", num_v4=0, num_v6=1)
    finally:
        ds.close()
    [block6] = [c for c, owner in _host_blocks(lab.datastore).items()
                if ip_network(c).version == 6 and owner == "h1"]
    assert address.ip in ip_network(block6)

    conf = bgpd_config(TOR_AS, h1.gateway, [Neighbor(h1_v6, HOST_AS, passive=True)],
                       networks=[OUTSIDE6])
    session = "Global_2001_db8_ffff__1"
    with frr_router(fabric.router, conf, port=1179) as tor:
        _apply(
            lab.datastore,
            _resource("BGPPeer", "tor6", peerIP=f"[{tor6}]:1179", asNumber=TOR_AS),
            _resource("BGPConfiguration", "default", asNumber=HOST_AS,
                      nodeToNodeMeshEnabled=False),
        )
        assert wait_for(lambda: any(session in n and "no IPv6 address" in n
                                    for n in _agent_notices(lab, "h1")), 15, 0.3), (
            _agent_notices(lab, "h1"))
        assert session not in _sessions(lab, "h1")

        # The host gets an IPv6 underlay address; its agent found none when it started,
        # so the operator puts it on the Node (the agent keeps what an operator set).
        run_in_netns(h1.netns, ["ip", "addr", "add", f"{h1_v6}/64", "dev", "eth0", "nodad"])
        ds = open_datastore(lab.datastore)
        try:
            node = to_dict(ResourceStore(ds).get("Node", "h1"))
        finally:
            ds.close()
        node["spec"]["bgp"]["ipv6Address"] = f"{h1_v6}/64"
        node["metadata"].pop("resourceVersion", None)
        _apply(lab.datastore, node)

        assert wait_for(lambda: tor.established("ipv6") == {h1_v6}, 30, 0.3), (
            tor.peers("ipv6"), _sessions(lab, "h1"), tor.log("bgpd"))
        assert _established(lab, "h1") == {session}
        assert _agent_notices(lab, "h1") == []
        # h1 opened it, to port 1179
        out = run_in_netns(h1.netns, ["ss", "-Htn", "state", "established", "dport", "= :1179"])
        assert f"[{tor6}]:1179" in out.stdout, out.stdout

        assert wait_for(lambda: set(_frr_paths(tor, block6, "ipv6")) == {h1_v6}, 15, 0.3), (
            tor.json(f"show bgp ipv6 unicast {block6}"))
        assert wait_for(partial(_has_route, h1.netns, OUTSIDE6), 15, 0.3), (
            _kernel_routes(h1.netns, "-6"))
        route = _kernel_routes(h1.netns, "-6")[OUTSIDE6]
        assert route.get("protocol") == "bird" and route.get("dev") == "eth0", route
