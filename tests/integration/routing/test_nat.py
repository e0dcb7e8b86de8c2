"""NAT outgoing: leaving the pools, a workload's traffic carries the host address;
between pools (here: across a router through VXLAN) workload addresses stay."""

from __future__ import annotations

import json

import pytest

from gingham.calc.messages import NatOutgoingUpdate
from gingham.dataplane import nft
from gingham.dataplane.nat import NAT_TABLE, NatOutgoing
from gingham.lab.netns import run_in_netns

from .topo import POOL, add_external, build, own_blocks, ping

pytestmark = pytest.mark.integration

SEEN = """\
table inet seen {
  counter from_h1 { }
  counter from_w1 { }
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr 192.0.2.11 icmp type echo-request counter name from_h1
    ip saddr 198.18.1.1 icmp type echo-request counter name from_w1
  }
}
"""


def seen(ns: str) -> dict[str, int]:
    out = run_in_netns(ns, ["nft", "-j", "list", "counters", "table", "inet", "seen"]).stdout
    return {
        i["counter"]["name"]: i["counter"]["packets"]
        for i in json.loads(out)["nftables"]
        if "counter" in i
    }


def test_nat_outgoing(netns, make_fabric) -> None:
    topo = build(netns, make_fabric, [0, 1])
    h1, h2 = topo.hosts
    w1 = topo.add_workload(h1, "a", "198.18.1.1")
    w2 = topo.add_workload(h2, "a", "198.18.2.1")
    ext, ext_ip = add_external(topo)
    for h in topo.hosts:
        topo.apply(h, topo.plan(h, own_blocks(topo), "CrossSubnet"))
    for ns in (ext, w2):
        run_in_netns(ns, ["nft", "-f", "-"], input=SEEN)
    # without NAT no answer comes back: the router knows no route to the pool
    assert not ping(w1, ext_ip)
    before = seen(ext)
    driver = nft.NFT(table=NAT_TABLE, netns=h1.ns)
    nat = NatOutgoing(driver)
    nat.on_update(NatOutgoingUpdate(masquerade=(POOL,), pools=(POOL,)))
    assert nat.apply()
    assert not nat.apply()  # nothing changed: nothing written
    restarted = NatOutgoing(driver)  # an agent after a restart reads the chain back
    restarted.on_update(NatOutgoingUpdate(masquerade=(POOL,), pools=(POOL,)))
    assert not restarted.apply()
    assert ping(w1, ext_ip, count=2)
    after = seen(ext)
    assert after["from_h1"] >= 2 and after["from_w1"] == before["from_w1"]
    assert ping(w1, h2.workloads["a"][1], count=2)
    assert seen(w2)["from_w1"] >= 2 and seen(w2)["from_h1"] == 0
    # the pool stops NATting: its rule goes, and the answer no longer comes back
    restarted.on_update(NatOutgoingUpdate(masquerade=(), pools=(POOL,)))
    assert restarted.apply()
    assert driver.list_rules("gingham-nat") == []
    assert not ping(w1, ext_ip)
