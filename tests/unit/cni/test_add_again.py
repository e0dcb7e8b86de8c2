"""ADD may run again for one attachment (the runtime retries, or the thin client reruns a
command whose agent died under it) and leaks nothing: what an earlier attempt left under
the handle is reused when it fits and given back when not; another interface of the
container keeps its addresses; a failed ADD gives back only its own.

The plugin's own commands on an sqlite datastore with real IPAM; the plumbing is a
recording stand-in (the kernel side is tests/integration/cni)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from ipaddress import ip_address

import pytest

from gingham.cni import plugin
from gingham.cni.host import Addresses, Session, Store
from gingham.cni.netconf import Invocation
from gingham.cni.plumbing import Macs
from gingham.cni.protocol import PluginError
from gingham.datastore.base import Datastore
from gingham.errors import CNIError
from gingham.ipam import IPAM
from tests.unit.ipam.helpers import put_pool

NODE = "h1"


class Plumbing:
    def __init__(self) -> None:
        self.links: dict[str, list[str]] = {}
        self.fail_setup = False

    def setup(self, netns: str, host_if: str, cidrs: list[str], mtu: int,
              container_ifname: str) -> Macs:
        if self.fail_setup:
            raise CNIError(5, "no veth today")
        self.links[host_if] = cidrs
        return {"host_mac": "ee:ee:ee:ee:ee:ee", "container_mac": "02:00:00:00:00:01"}

    def teardown(self, host_if: str, *, wait: bool = True) -> bool:
        return self.links.pop(host_if, None) is not None

    def exists(self, host_if: str) -> bool:
        return host_if in self.links


class _Session:
    def __init__(self, ds: Datastore) -> None:
        self.store: Store = ds
        self._ipam = IPAM(ds, host=NODE)

    @property
    def addresses(self) -> Addresses:
        return self._ipam


class Host:
    def __init__(self, ds: Datastore) -> None:
        self.ds = ds
        self.plumbing = Plumbing()
        self.keys: list[str] = []  # what was handed over, in order

    @contextlib.contextmanager
    def session(self, inv: Invocation) -> Iterator[Session]:
        yield _Session(self.ds)

    def log(self, message: str) -> None:
        pass

    def written(self, key: str, value: Mapping[str, object] | None, revision: int) -> None:
        self.keys.append(key)

    def mtu(self, inv: Invocation) -> int | None:
        return None


@pytest.fixture
def host(sqlite_store: Datastore) -> Host:
    put_pool(sqlite_store, "v4", "198.18.0.0/16", 26, nodeSelector="all()")
    put_pool(sqlite_store, "v6", "2001:db8::/48", 122, nodeSelector="all()")
    return Host(sqlite_store)


def _conf(ipam: dict[str, object] | None = None) -> dict[str, object]:
    return {"cniVersion": "1.0.0", "name": "blue", "type": "gingham", "datastore": "sqlite:///x",
            "nodename": NODE, "ipam": ipam or {"type": "gingham-ipam"}}


def _env(cid: str, ifname: str = "eth0") -> dict[str, str]:
    return {"CNI_CONTAINERID": cid, "CNI_IFNAME": ifname, "CNI_NETNS": "/proc/self/ns/net",
            "CNI_ARGS": f"K8S_POD_NAMESPACE=ns;K8S_POD_NAME={cid}"}


def _add(host: Host, cid: str, ifname: str = "eth0",
         ipam: dict[str, object] | None = None) -> list[str]:
    result = plugin.dispatch("ADD", _conf(ipam), _env(cid, ifname), ipam_only=False, host=host)
    assert result is not None and "interfaces" in result
    return [ip["address"] for ip in result["ips"]]


def _held(host: Host, handle: str) -> list[str]:
    return sorted(str(ip) for ip in IPAM(host.ds, host=NODE).held_by(handle))


def test_an_add_run_again_keeps_one_address(host: Host) -> None:
    first = _add(host, "c1")
    assert _add(host, "c1") == first
    assert _held(host, "blue.c1") == [first[0].split("/")[0]]


def test_an_add_after_one_that_died_past_ipam_reuses_its_address(host: Host) -> None:
    # the earlier attempt allocated, then its agent died: no veth, no endpoint
    IPAM(host.ds, host=NODE).auto_assign("blue.c1", {"namespace": "ns", "workload": "c1"})
    [earlier] = _held(host, "blue.c1")
    assert _add(host, "c1") == [f"{earlier}/32"]
    assert _held(host, "blue.c1") == [earlier]


def test_what_an_earlier_attempt_took_is_given_back_when_it_does_not_fit(host: Host) -> None:
    ipam = IPAM(host.ds, host=NODE)
    ipam.auto_assign("blue.c1", {"namespace": "ns", "workload": "c1"}, num_v4=2)
    got = _add(host, "c1")
    assert len(got) == 1 and _held(host, "blue.c1") == [got[0].split("/")[0]]


def test_another_interface_of_the_container_keeps_its_addresses(host: Host) -> None:
    eth0 = _add(host, "c1")
    net1 = _add(host, "c1", "net1", {"type": "gingham-ipam", "assign_ipv4": False,
                                     "assign_ipv6": True})
    assert ip_address(net1[0].split("/")[0]).version == 6
    assert _held(host, "blue.c1") == sorted([eth0[0].split("/")[0], net1[0].split("/")[0]])
    # net1 again: its own address again, eth0's untouched
    again = _add(host, "c1", "net1", {"type": "gingham-ipam", "assign_ipv4": False,
                                      "assign_ipv6": True})
    assert again == net1 and len(_held(host, "blue.c1")) == 2


def test_a_failed_add_gives_back_only_its_own_addresses(host: Host) -> None:
    eth0 = _add(host, "c1")
    host.plumbing.fail_setup = True
    with pytest.raises(PluginError):
        _add(host, "c1", "net1", {"type": "gingham-ipam", "assign_ipv4": False,
                                  "assign_ipv6": True})
    assert _held(host, "blue.c1") == [eth0[0].split("/")[0]]


def test_the_writes_are_handed_to_the_host(host: Host) -> None:
    _add(host, "c1")
    assert host.keys == ["/gingham/v1/resources/Namespace/ns",
                         "/gingham/v1/resources/WorkloadEndpoint/ns/h1-k8s-c1-eth0"]
    plugin.dispatch("DEL", _conf(), _env("c1"), ipam_only=False, host=host)
    assert host.keys[-1] == "/gingham/v1/resources/WorkloadEndpoint/ns/h1-k8s-c1-eth0"
