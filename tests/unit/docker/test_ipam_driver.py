"""The IPAM half of the Docker driver against a real sqlite store and gingham IPAM."""

from __future__ import annotations

import ipaddress

import pytest

from gingham.datastore.base import Datastore
from gingham.docker.ipam_driver import GLOBAL_SPACE, LOCAL_SPACE, IpamDriver, Pool
from gingham.errors import AddressInUse, DockerError
from gingham.ipam import who_holds
from tests.unit.ipam.helpers import put_pool


@pytest.fixture
def driver(sqlite_store: Datastore) -> IpamDriver:
    put_pool(sqlite_store, "p4", "198.18.0.0/16", 26)
    put_pool(sqlite_store, "p6", "2001:db8:7::/48", 122)
    return IpamDriver(sqlite_store, "h1")


def pool(d: IpamDriver, **body: object) -> str:
    got = d.request_pool({"AddressSpace": LOCAL_SPACE, **body})
    return str(got["PoolID"])


def address(d: IpamDriver, pool_id: str, **body: object) -> str:
    return str(d.request_address({"PoolID": pool_id, **body})["Address"])


def test_default_pool_is_every_gingham_pool_and_the_same_id_each_time(
        driver: IpamDriver) -> None:
    got = driver.request_pool({"AddressSpace": GLOBAL_SPACE})
    assert got == {"PoolID": "gingham|0.0.0.0/0|", "Pool": "0.0.0.0/0", "Data": {}}
    assert pool(driver) == got["PoolID"]
    assert driver.request_pool({"AddressSpace": LOCAL_SPACE, "V6": True})["Pool"] == "::/0"


def test_addresses_come_from_gingham_ipam_with_affinity_and_a_libnetwork_handle(
        driver: IpamDriver, sqlite_store: Datastore) -> None:
    pid = pool(driver)
    got = address(driver, pid)
    ip, prefix = got.split("/")
    assert prefix == "32" and ipaddress.ip_address(ip) in ipaddress.ip_network("198.18.0.0/16")
    holder = who_holds(sqlite_store, ip)
    assert holder is not None and holder.handle.startswith("libnetwork.")
    assert holder.block_host == "h1"
    assert address(driver, pid) != got
    v6 = address(driver, pool(driver, V6=True))
    assert v6.endswith("/128") and v6.startswith("2001:db8:7:")


def test_gateway_is_the_on_link_gateway_never_a_workload_address(
        driver: IpamDriver, sqlite_store: Datastore) -> None:
    gateway = {"Options": {"RequestAddressType": "com.docker.network.gateway"}}
    assert address(driver, pool(driver), **gateway) == "169.254.1.1/32"
    assert address(driver, pool(driver, V6=True), **gateway) == "fe80::ecee:eeff:feee:eeee/128"
    assert address(driver, pool(driver, Pool="198.18.3.0/24"), **gateway) == "169.254.1.1/32"
    with pytest.raises(DockerError, match=r"--gateway 198\.18\.3\.1"):
        address(driver, pool(driver, Pool="198.18.3.0/24"), Address="198.18.3.1", **gateway)
    driver.release_address({"PoolID": pool(driver), "Address": "169.254.1.1"})
    assert who_holds(sqlite_store, "198.18.3.1") is None


def test_subnet_and_ip_range_bound_the_addresses(driver: IpamDriver) -> None:
    pid = pool(driver, Pool="198.18.3.0/24", SubPool="198.18.3.128/28")
    assert Pool.parse(pid) == Pool(ipaddress.ip_network("198.18.3.0/24"),
                                   ipaddress.ip_network("198.18.3.128/28"))
    got = {address(driver, pid) for _ in range(16)}
    assert got == {f"198.18.3.{i}/32" for i in range(128, 144)}
    with pytest.raises(DockerError, match="outside"):
        address(driver, pid, Address="198.18.3.7")
    assert address(driver, pid.replace("|198.18.3.128/28", "|"), Address="198.18.3.7") == \
        "198.18.3.7/32"
    with pytest.raises(AddressInUse):
        address(driver, pool(driver), Address="198.18.3.7")


@pytest.mark.parametrize(("body", "message"), [
    ({"AddressSpace": "default"}, "AddressSpace 'default'"),
    ({"AddressSpace": LOCAL_SPACE, "Pool": "10.9.0.0/24"}, "lies in no gingham IPPool"),
    ({"AddressSpace": LOCAL_SPACE, "Pool": "nonsense"}, "--subnet 'nonsense' is not a CIDR"),
    ({"AddressSpace": LOCAL_SPACE, "SubPool": "198.18.1.0/24"}, "--ip-range needs --subnet"),
    ({"AddressSpace": LOCAL_SPACE, "Pool": "198.18.1.0/24", "SubPool": "198.18.2.0/25"},
     "not inside --subnet"),
    ({"AddressSpace": LOCAL_SPACE, "Options": {"foo": "bar"}}, "no option 'foo'"),
])
def test_request_pool_refuses_by_name(driver: IpamDriver, body: dict[str, object],
                                      message: str) -> None:
    with pytest.raises(DockerError, match=message):
        driver.request_pool(body)


def test_no_enabled_pool_of_the_family_is_refused(sqlite_store: Datastore) -> None:
    put_pool(sqlite_store, "off", "198.18.0.0/16", 26, disabled=True)
    d = IpamDriver(sqlite_store, "h1")
    with pytest.raises(DockerError, match="no enabled IPv4 IPPool"):
        pool(d)
    with pytest.raises(DockerError, match="disabled IPPool"):
        pool(d, Pool="198.18.1.0/24")


def test_release_frees_only_what_the_driver_handed_out(
        driver: IpamDriver, sqlite_store: Datastore) -> None:
    pid = pool(driver)
    ip = address(driver, pid).split("/")[0]
    driver.release_address({"PoolID": pid, "Address": ip})
    assert who_holds(sqlite_store, ip) is None
    driver.release_address({"PoolID": pid, "Address": ip})  # again: Docker retries
    other = driver.ipam.allocate("k8s-pod.1", num_v4=1)[0].ip
    with pytest.raises(DockerError, match="not by the Docker driver"):
        driver.release_address({"PoolID": pid, "Address": str(other)})
    assert who_holds(sqlite_store, other) is not None
    with pytest.raises(DockerError, match="not a gingham pool"):
        driver.release_address({"PoolID": "null|x|", "Address": ip})
