"""What the agent reads from ``ip -j`` (the parsing; the commands run in the lab tests),
and the workload MTU the graph derives from it."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from gingham.agent.detect import mtu_from_ip_json, underlay_mtu_probe
from gingham.agent.node import HostAddresses
from gingham.calc.routing_types import workload_mtu
from gingham.errors import RoutingError


def test_underlay_mtu_is_the_mtu_of_the_link_holding_the_address() -> None:
    links = [
        {"ifname": "lo", "mtu": 65536, "addr_info": [{"local": "127.0.0.1"}]},
        {"ifname": "eth0", "mtu": 9000, "addr_info": [{"local": "192.0.2.1"}]},
    ]
    assert mtu_from_ip_json(links, ip_address("192.0.2.1")) == 9000
    with pytest.raises(RoutingError, match=r"192\.0\.2\.9"):
        mtu_from_ip_json(links, ip_address("192.0.2.9"))


def test_workload_mtu() -> None:
    assert workload_mtu(1500, False) == 1500
    assert workload_mtu(1500, True) == 1450
    assert workload_mtu(9000, True, 6) == 8930
    with pytest.raises(RoutingError):
        workload_mtu(1000, True)


def test_no_address_no_probe() -> None:
    assert underlay_mtu_probe(HostAddresses(None))() is None
