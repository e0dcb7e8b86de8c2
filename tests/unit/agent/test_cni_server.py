"""What the agent's CNI socket takes and what it declines (the exchange with a real agent:
tests/integration/cni/test_agent_path.py)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gingham.agent.cni_handover import Handover
from gingham.agent.cni_server import CniServer, _read_request, namespace_id, same_datastore
from gingham.cni import wire
from gingham.datastore import open_datastore


@pytest.mark.parametrize(("a", "b", "same"), [
    ("sqlite:///var/lib/g.db", "sqlite:///var/lib/../lib/g.db", True),
    ("sqlite:///var/lib/g.db", "sqlite:///var/lib/h.db", False),
    ("etcd://a:2379,b:2379", "etcd://b:2379,a:2379", True),
    ("etcd://u:p@a:2379", "etcd://a:2379?user=v&password=q", True),  # credentials aside
    ("etcd://a:2379", "etcds://a:2379", False),
    ("etcd://a:2379", "sqlite:///a", False),
    ("etcd://a:2379", "not a url", False),
])  # fmt: skip
def test_one_datastore_however_spelled(a: str, b: str, same: bool) -> None:
    assert same_datastore(a, b) is same


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CniServer]:
    url = f"sqlite://{tmp_path / 'g.db'}"
    open_datastore(url, create=True).close()
    srv = CniServer("h1", url, tmp_path / "run", Handover())
    yield srv
    srv.close()


def _header(**over: str) -> dict[str, str]:
    head = {wire.COMMAND: "ADD", wire.NODE: "h1",
            wire.CLIENT_NETNS: namespace_id("/proc/self/ns/net"),
            wire.ENV_PREFIX + "CNI_NETNS": "/proc/self/ns/net",
            wire.SANDBOX: namespace_id("/proc/self/ns/net")}
    return head | over


def test_its_own_nodes_command_is_taken(server: CniServer) -> None:
    conf = json.dumps({"datastore": server.datastore_url}).encode()
    assert server._not_mine(_header(), conf) == ""
    assert server._not_mine(_header(), b"not json") == ""  # fails here as it would anywhere


@pytest.mark.parametrize(("header", "why"), [
    ({wire.NODE: "h2"}, "not of 'h2'"),
    ({wire.CLIENT_NETNS: "1:2"}, "another network namespace"),
    ({wire.SANDBOX: "1:2"}, "is not the same namespace here"),
    ({wire.SANDBOX: ""}, "is not the same namespace here"),
])  # fmt: skip
def test_what_is_not_its_own_is_declined(server: CniServer, header: dict[str, str],
                                         why: str) -> None:
    assert why in server._not_mine(_header(**header), b"{}")


def test_another_datastore_is_declined(server: CniServer, tmp_path: Path) -> None:
    conf = json.dumps({"datastore": f"sqlite://{tmp_path / 'other.db'}"}).encode()
    assert "another datastore" in server._not_mine(_header(), conf)
    env = _header(**{wire.ENV_PREFIX + "GINGHAM_DATASTORE": f"sqlite://{tmp_path / 'o.db'}"})
    assert "another datastore" in server._not_mine(env, b"{}")


def test_nothing_while_the_cluster_guard_blocks_or_the_server_stops(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'g.db'}"
    open_datastore(url, create=True).close()
    blocked = {"why": "no cluster ID"}
    srv = CniServer("h1", url, tmp_path / "run", Handover(), blocked=lambda: blocked["why"])
    try:
        assert "leaves this host alone: no cluster ID" in srv._not_mine(_header(), b"{}")
        blocked["why"] = ""
        assert srv._not_mine(_header(), b"{}") == ""
    finally:
        srv.close()
    assert "stopping" in srv._not_mine(_header(), b"{}")


def test_requests_are_read_whole_and_bounded() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(wire.encode_request({"command": "DEL", "env:X": "1"}, b'{"a": 1}'))
        assert _read_request(b) == ({"command": "DEL", "env:X": "1"}, b'{"a": 1}')
        a.sendall(b"HTTP/1.1 GET /\r\n")
        with pytest.raises(wire.WireError):
            _read_request(b)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(wire.MAGIC + (wire.MAX_HEADER + 1).to_bytes(4, "big"))
        with pytest.raises(wire.WireError):
            _read_request(b)


def test_the_socket_is_born_private(server: CniServer) -> None:
    old = os.umask(0)  # whatever the agent's umask
    try:
        server.start()
    finally:
        os.umask(old)
    assert os.stat(server.path).st_mode & 0o777 == 0o600


def test_a_datastore_file_moved_away_is_left_to_the_plugin(server: CniServer,
                                                          tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    db.rename(tmp_path / "away.db")
    db.mkdir()  # what the plugin on its own calls "no datastore" (CNI 7)
    try:
        assert "not the one the agent opened" in server._not_mine(_header(), b"{}")
    finally:
        db.rmdir()
        (tmp_path / "away.db").rename(db)
    assert server._not_mine(_header(), b"{}") == ""
