"""Service loop prevention in the kernel: a packet for an advertised service address that no
service uses loops between the router and a host until its TTL runs out, unless the host
drops (or rejects) it, as Calico's serviceLoopPrevention does.

The router's route to the service CIDR stands in for what it learns over BGP (every host
announces it; test_bgp_settings.py shows that with a real ToR); the host's default route
points back at the router, as a host's usually does. A bridge counter on the fabric
counts how often the packet crosses it.
"""

from __future__ import annotations

import json
from ipaddress import ip_network

import pytest

from gingham.calc.messages import ServiceLoopUpdate
from gingham.dataplane import nft
from gingham.dataplane.service_loop import SERVICE_TABLE, ServiceLoop
from gingham.lab.netns import run_in_netns

from .topo import add_external, build

pytestmark = pytest.mark.integration

SERVICES = ip_network("198.19.128.0/20")
UNUSED = "198.19.128.5"
COUNT = f"""\
table bridge gh_svc_count {{
  counter svc {{ }}
  chain forward_count {{
    type filter hook forward priority 0; policy accept;
    ip daddr {SERVICES} counter name svc
  }}
}}
"""


def _crossings(switch: str) -> int:
    out = run_in_netns(switch, ["nft", "-j", "list", "counter", "bridge", "gh_svc_count", "svc"])
    return int(next(i["counter"]["packets"] for i in json.loads(out.stdout)["nftables"]
                    if "counter" in i))


def _send(ext_ns: str, switch: str) -> tuple[int, str]:
    """One TCP connection attempt from outside to the unused service address (a SYN and
    at most one retransmission within the timeout): how often a packet for it crossed
    the fabric, and what nc said."""
    run_in_netns(switch, ["nft", "reset", "counter", "bridge", "gh_svc_count", "svc"])
    proc = run_in_netns(ext_ns, ["busybox", "nc", "-w", "2", UNUSED, "80"], input="",
                        check=False)
    return _crossings(switch), proc.stdout + proc.stderr


def test_unused_service_ip_does_not_loop(netns, make_fabric) -> None:
    topo = build(netns, make_fabric, [0])
    [h1] = topo.hosts
    ext_ns, _ = add_external(topo)
    run_in_netns(topo.switch, ["nft", "-f", "-"], input=COUNT)
    run_in_netns(topo.router, ["ip", "route", "add", str(SERVICES), "via", str(h1.address)])
    driver = nft.NFT(table=SERVICE_TABLE, netns=h1.ns)
    loop = ServiceLoop(driver)
    try:
        # Without prevention the packet goes round: router -> h1 -> router -> ... (TTL 64)
        crossed, _ = _send(ext_ns, topo.switch)
        assert crossed >= 20, crossed
        # Drop (Calico's default): each SYN reaches h1 once and goes no further
        loop.on_update(ServiceLoopUpdate((SERVICES,)))
        assert loop.apply()
        crossed, said = _send(ext_ns, topo.switch)
        assert 1 <= crossed <= 2 and "timed out" in said, (crossed, said)
        # Reject: the sender is told that nobody is there (ICMP port unreachable)
        loop.on_update(ServiceLoopUpdate((SERVICES,), "Reject"))
        assert loop.apply()
        crossed, said = _send(ext_ns, topo.switch)
        assert 1 <= crossed <= 2 and "refused" in said, (crossed, said)
        # Traffic that is not for a service CIDR is not touched (h1 still forwards it)
        assert run_in_netns(ext_ns, ["busybox", "ping", "-c", "1", "-W", "2",
                                     str(h1.address)], check=False).returncode == 0
        # Disabled (or no CIDRs): the table goes and the loop is back
        loop.on_update(ServiceLoopUpdate((SERVICES,), "Disabled"))
        assert loop.apply() and not driver.table_exists()
        crossed, _ = _send(ext_ns, topo.switch)
        assert crossed >= 20, crossed
    finally:
        driver.delete_table()
