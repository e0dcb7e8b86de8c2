"""Agent.step end to end on the faithful fakes: an in-memory datastore with real IPAM, the
real calculation graph, the policy dataplane on FakeNFT, the routing managers on
FakeRouteTable, FakeVxlanDriver, FakeNFT (NAT) and a temporary MTU file, and BIRD's
manager on a recording stand-in. No mock.patch: every part is the agent's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest

from gingham.agent.daemon import Agent
from gingham.agent.decode import decode, decode_value
from gingham.agent.metrics import AgentMetrics
from gingham.agent.node import HostAddresses
from gingham.agent.policy_plane import PolicyPlane
from gingham.calc import CalcGraph
from gingham.calc.routing_types import VXLAN_DEVICE, vxlan_mac
from gingham.dataplane.apply import Applier
from gingham.dataplane.managers import PolicyDataplane
from gingham.dataplane.mtu_file import MtuFile
from gingham.dataplane.nat import NAT_CHAIN, NAT_TABLE, NatOutgoing
from gingham.dataplane.netlink_fake import FakeRouteTable
from gingham.dataplane.nft_fake import FakeNFT
from gingham.dataplane.routes import KernelRoutes
from gingham.dataplane.routing import RoutingDataplane
from gingham.dataplane.vxlan import Vxlan
from gingham.dataplane.vxlan_fake import FakeVxlanDriver
from gingham.datastore import keys, open_datastore
from gingham.datastore.base import Datastore
from gingham.hostfiles import read_mtu
from gingham.ipam.block import Block
from gingham.routing.bgp import BgpManager
from tests.unit.ipam.helpers import put_pool
from tests.unit.routing.test_bgp_manager import Bird

HOST = "h1"
API = "projectcalico.org/v3"
WL_IF = "gh0123456789a"


@dataclass
class Host:
    """One agent and the fake kernel it programs."""

    agent: Agent
    routes: FakeRouteTable
    vxlan: FakeVxlanDriver
    nat: FakeNFT
    policy: FakeNFT
    bird: Bird
    mtu: Path

    def steps(self, n: int = 3) -> None:
        for _ in range(n):
            self.agent.step()

    def route(self, dst: str) -> Any:
        return next((r for r in self.routes.list_routes() if r.dst == ip_network(dst)), None)


@pytest.fixture
def ds() -> Iterator[Datastore]:
    store = open_datastore(f"memory://step-{uuid.uuid4()}", create=True)
    put_pool(store, "default", "198.18.0.0/16", vxlanMode="CrossSubnet", natOutgoing=True)
    for name, addr, tunnel in (("h2", "192.0.2.12/24", "198.18.2.0"),
                               ("h3", "198.51.100.13/24", "198.18.3.0")):
        store.create(keys.resource_key("Node", name), {
            "apiVersion": API, "kind": "Node", "metadata": {"name": name},
            "spec": {"bgp": {"ipv4Address": addr}, "ipv4VXLANTunnelAddr": tunnel}})
    store.create(keys.IPAM + "blocks/198.18.2.0-26", Block.new("198.18.2.0/26", "host:h2").to_json())
    store.create(keys.IPAM + "blocks/198.18.3.0-26", Block.new("198.18.3.0/26", "host:h3").to_json())
    yield store
    store.close()


@pytest.fixture
def host(ds: Datastore, tmp_path: Path) -> Host:
    routes = FakeRouteTable()
    routes.add_link("eth0", "192.0.2.11/24")
    vxlan = FakeVxlanDriver(links=routes)  # one namespace: the device is one of its links
    return make_host(ds, tmp_path, routes, vxlan, FakeNFT(table=NAT_TABLE), FakeNFT(), Bird())


def make_host(ds: Datastore, tmp_path: Path, routes: FakeRouteTable, vxlan: FakeVxlanDriver,
              nat: FakeNFT, policy_nft: FakeNFT, bird: Bird) -> Host:
    """A new agent (process) over the given kernel."""
    metrics = AgentMetrics()
    policy = PolicyPlane(metrics, Applier(policy_nft, PolicyDataplane(), rp_filter=None))
    agent = Agent(
        hostname=HOST,
        datastore=ds,
        addresses=HostAddresses("192.0.2.11/24"),
        calc=CalcGraph(HOST, decode=decode_value),
        decode=decode,
        planes=[
            policy,
            RoutingDataplane(KernelRoutes(routes), Vxlan(vxlan), NatOutgoing(nat),
                             MtuFile(tmp_path / HOST / "mtu")),
            BgpManager(bird),
        ],
        notice_sources=[policy.notices],
        underlay_mtu=lambda: 1500,
        metrics=metrics,
        poll_timeout=0.01,
        sleep=lambda _s: None,
    )
    return Host(agent, routes, vxlan, nat, policy_nft, bird, tmp_path / HOST / "mtu")


def wep(name: str, ip: str) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "WorkloadEndpoint",
            "metadata": {"name": name, "namespace": "web", "labels": {"app": name}},
            "spec": {"node": HOST, "orchestrator": "cni", "interfaceName": WL_IF,
                     "ipNetworks": [f"{ip}/32"]}}


def test_a_fresh_host_registers_claims_its_tunnel_and_programs_routes(
    ds: Datastore, host: Host
) -> None:
    host.steps()
    assert host.agent.state.ready
    node = ds.get(keys.resource_key("Node", HOST))
    assert node is not None
    tunnel = node.value["spec"]["ipv4VXLANTunnelAddr"]  # claimed by housekeeping
    # same subnet: direct; across the router: VXLAN, once the tunnel address is back
    assert host.route("198.18.2.0/26").via == ip_address("192.0.2.12")
    vx = host.route("198.18.3.0/26")
    assert vx is not None and vx.dev == VXLAN_DEVICE and vx.via == ip_address("198.18.3.0")
    info = host.vxlan.device_info()
    assert info is not None and info["mtu"] == 1450
    assert host.vxlan.addresses() == {ip_address(tunnel)}
    assert host.vxlan.neighbours() == {"198.18.3.0": vxlan_mac("h3")}
    # the host's own block (claimed for the tunnel address) is a blackhole
    own = [r for r in host.routes.list_routes() if r.kind == "blackhole"]
    assert [str(r.dst) for r in own] == [f"{ip_network(tunnel + '/26', strict=False)}"]
    assert read_mtu(host.mtu) == 1450
    assert len(host.nat.list_rules(NAT_CHAIN)) == 1
    assert host.bird.calls == []  # BGP off: BIRD never started
    assert host.policy.table_exists()


def test_a_local_workload_gets_its_route_and_loses_it(ds: Datastore, host: Host) -> None:
    host.steps()
    host.routes.add_link(WL_IF)  # the CNI plugin made the veth first
    key = keys.resource_key("WorkloadEndpoint", "w1", "web")
    ds.create(key, wep("w1", "198.18.1.5"))
    host.steps(2)
    r = host.route("198.18.1.5/32")
    assert r is not None and r.dev == WL_IF
    assert host.agent.metrics.registry.get_sample_value("gingham_local_endpoints") == 1
    host.routes.remove_link(WL_IF)  # CNI DEL: the veth goes, then the endpoint
    ds.delete(key)
    host.steps(2)
    assert host.route("198.18.1.5/32") is None and host.agent.state.ready


def test_a_failing_plane_leaves_the_rest_and_is_retried(ds: Datastore, host: Host) -> None:
    host.steps()
    put_pool(ds, "default", "198.18.0.0/16", vxlanMode="Never", natOutgoing=True)
    # BGP on, but BIRD refuses: the routes are programmed, the agent is not ready
    host.bird.fail = 1
    ds.create(keys.resource_key("BGPConfiguration", "default"),
              {"apiVersion": API, "kind": "BGPConfiguration", "metadata": {"name": "default"},
               "spec": {}})
    host.steps(1)
    assert not host.agent.state.ready
    assert host.route("198.18.3.0/26") is None  # Never across subnets: BGP's job now
    assert host.agent.metrics.registry.get_sample_value(
        "gingham_errors_total", {"where": "BgpManager"}) == 1
    host.steps(1)  # retried with no new messages
    assert host.agent.state.ready and host.bird.calls == ["started"]


def test_bgp_on_starts_bird_with_this_hosts_blocks(ds: Datastore, host: Host) -> None:
    host.steps()
    ds.create(keys.resource_key("BGPConfiguration", "default"),
              {"apiVersion": API, "kind": "BGPConfiguration", "metadata": {"name": "default"},
               "spec": {}})
    host.steps(2)
    assert host.bird.calls == ["started"] and host.bird.text is not None
    assert "Mesh_192_0_2_12" in host.bird.text
    assert host.route("198.18.2.0/26") is None  # BIRD learns it now
    ds.delete(keys.resource_key("BGPConfiguration", "default"))
    host.steps(2)
    assert host.bird.calls[-1] == "stopped"
    assert host.route("198.18.2.0/26") is not None


def test_a_bgp_password_file_repaired_later_brings_its_session_up(
        ds: Datastore, host: Host, tmp_path: Path) -> None:
    now = [0.0]
    host.agent.clock = lambda: now[0]
    bgp = host.agent.planes[2]
    assert isinstance(bgp, BgpManager)
    host.agent.notice_sources.append(bgp.notices)
    pw = tmp_path / "tor.pass"
    host.steps()
    ds.create(keys.resource_key("BGPConfiguration", "default"),
              {"apiVersion": API, "kind": "BGPConfiguration", "metadata": {"name": "default"},
               "spec": {}})
    ds.create(keys.resource_key("BGPPeer", "tor"),
              {"apiVersion": API, "kind": "BGPPeer", "metadata": {"name": "tor"},
               "spec": {"peerIP": "192.0.2.1", "asNumber": 65000,
                        "password": {"file": str(pw)}}})
    host.steps(2)
    assert host.bird.text is not None and "Global_192_0_2_1" not in host.bird.text
    assert any("Global_192_0_2_1 left out" in r for r in host.agent.state.reasons())
    pw.write_text("s3cret\n")
    pw.chmod(0o600)
    host.steps(2)  # no datastore change and not due yet: nothing re-read
    assert "Global_192_0_2_1" not in host.bird.text
    now[0] = 11.0
    host.steps(1)
    assert 'password "s3cret";' in host.bird.text
    assert not any("left out" in r for r in host.agent.state.reasons())


def test_a_restarted_agent_finds_its_kernel_as_it_left_it(ds: Datastore, host: Host,
                                                          tmp_path: Path) -> None:
    host.routes.add_link(WL_IF)
    ds.create(keys.resource_key("WorkloadEndpoint", "w1", "web"), wep("w1", "198.18.1.5"))
    host.steps(4)
    writes, created = host.routes.writes, host.vxlan.created
    nat_tx, policy_tx = len(host.nat.transactions), len(host.policy.transactions)
    mtu_stamp = host.mtu.stat().st_mtime_ns
    again = make_host(ds, tmp_path, host.routes, host.vxlan, host.nat, host.policy, host.bird)
    again.steps(3)
    assert again.agent.state.ready
    assert host.routes.writes == writes  # nothing rewritten: established traffic unaware
    assert host.vxlan.created == created
    assert (len(host.nat.transactions), len(host.policy.transactions)) == (nat_tx, policy_tx)
    assert host.mtu.stat().st_mtime_ns == mtu_stamp
