from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from gingham.errors import RoutingError
from gingham.routing.mtu import mtu_from_ip_json, workload_mtu
from gingham.routing.nat import nat_outgoing_rules, nat_outgoing_script
from gingham.routing.types import PoolInfo


def test_nat_rules_per_family_and_only_for_nat_pools():
    pools = [
        PoolInfo(ip_network("198.18.0.0/16"), nat_outgoing=True),
        PoolInfo(ip_network("198.19.0.0/16")),
        PoolInfo(ip_network("2001:db8:1::/64"), nat_outgoing=True, disabled=True),
    ]
    assert nat_outgoing_rules(reversed(pools)) == [
        "ip saddr { 198.18.0.0/16 } ip daddr != { 198.18.0.0/16, 198.19.0.0/16 } masquerade",
        "ip6 saddr { 2001:db8:1::/64 } ip6 daddr != { 2001:db8:1::/64 } masquerade",
    ]
    assert nat_outgoing_rules(pools[1:2]) == []
    snat = nat_outgoing_rules(pools[:2], snat_v4=ip_address("192.0.2.11"))  # type: ignore[arg-type]
    assert snat == [
        "ip saddr { 198.18.0.0/16 } ip daddr != { 198.18.0.0/16, 198.19.0.0/16 } "
        "snat ip to 192.0.2.11"
    ]
    script = nat_outgoing_script(pools)
    assert "type nat hook postrouting priority srcnat" in script
    assert script.count("masquerade") == 2


def test_mtu():
    assert workload_mtu(1500, False) == 1500
    assert workload_mtu(1500, True) == 1450
    assert workload_mtu(9000, True, 6) == 8930
    with pytest.raises(RoutingError):
        workload_mtu(1000, True)
    links = [
        {"ifname": "lo", "mtu": 65536, "addr_info": [{"local": "127.0.0.1"}]},
        {"ifname": "eth0", "mtu": 9000, "addr_info": [{"local": "192.0.2.1"}]},
    ]
    assert mtu_from_ip_json(links, ip_address("192.0.2.1")) == 9000
    with pytest.raises(RoutingError, match=r"192\.0\.2\.9"):
        mtu_from_ip_json(links, ip_address("192.0.2.9"))
