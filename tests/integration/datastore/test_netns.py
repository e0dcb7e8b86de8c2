"""The reason for sqlite files and etcd unix sockets: processes in other network
namespaces reach them through the filesystem, where loopback TCP fails."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from gingham.datastore import open_datastore
from gingham.datastore.etcd_process import EtcdProcess

pytestmark = pytest.mark.integration

WRITER = """
import sys
from gingham.datastore import open_datastore
with open_datastore(sys.argv[1]) as ds:
    kv = ds.get("/t/ns/counter")
    ds.update("/t/ns/counter", {"n": kv.value["n"] + 1}, revision=kv.mod_revision)
    ds.create("/t/ns/from-" + sys.argv[2], {"ok": True})
"""


def _run_in(ns: str, url: str, tag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-c", WRITER, url, tag],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sqlite_shared_across_namespaces(netns: Callable[[str], str], sqlite_url: str) -> None:
    with open_datastore(sqlite_url, create=True) as ds:
        start = ds.create("/t/ns/counter", {"n": 0})
        for tag in ("a", "b"):
            result = _run_in(netns(tag), sqlite_url, tag)
            assert result.returncode == 0, result.stderr
        kv = ds.get("/t/ns/counter")
        assert kv is not None and kv.value == {"n": 2}
        with ds.watch("/t/ns/", start_revision=start + 1) as watch:
            keys = [e.key for e in watch.next_batch(2.0)]
        assert keys == ["/t/ns/counter", "/t/ns/from-a", "/t/ns/counter", "/t/ns/from-b"]


@pytest.mark.etcd
def test_etcd_unix_socket_across_namespaces(
    netns: Callable[[str], str], etcd_member: EtcdProcess, etcd_store: object
) -> None:
    with open_datastore(etcd_member.datastore_url, create=True) as ds:
        ds.create("/t/ns/counter", {"n": 0})
        ns = netns("e")
        # Loopback TCP is per namespace: the member's TCP URL is unreachable there.
        tcp = _run_in(ns, etcd_member.datastore_url + "?timeout=1", "tcp")
        assert tcp.returncode != 0
        assert "cannot reach datastore" in tcp.stderr
        unix = _run_in(ns, etcd_member.unix_datastore_url, "unix")
        assert unix.returncode == 0, unix.stderr
        kv = ds.get("/t/ns/counter")
        assert kv is not None and kv.value == {"n": 1}
        assert ds.get("/t/ns/from-unix") is not None


@pytest.mark.parametrize("enter", ["nsenter", "ip-netns-exec"])
def test_sqlite_watcher_in_another_namespace_is_woken_by_commit(
    netns: Callable[[str], str], sqlite_url: str, enter: str
) -> None:
    """The doorbell is a futex in a file: any process that sees the file hears it,
    whatever its network namespace (and, with ``ip netns exec``, mount namespace)."""
    from tests.unit.datastore.test_sqlite_push import finish, start_watcher, write_spaced

    open_datastore(sqlite_url, create=True).close()
    ns = netns("w")
    prefix = (["nsenter", f"--net=/run/netns/{ns}"] if enter == "nsenter"
              else ["ip", "netns", "exec", ns])
    proc = start_watcher(prefix, sqlite_url, 10)
    try:
        started = write_spaced(sqlite_url, 10)
        got = finish(proc)
    finally:
        proc.kill()
        proc.wait()
    # Its safety poll is an hour: only the writers' rings can have woken it.
    assert [k for k, _ in got] == sorted(started)
