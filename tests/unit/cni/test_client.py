"""The thin client: its JSON reading agrees with json, it finds the socket the network
configuration names, and it falls back only when the agent has done nothing -- against
a scripted agent on a real unix socket (the real agent: tests/integration/cni)."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.cni import client, wire

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), JSON, max_size=5))
def test_objects_read_as_json_reads_them(doc: dict[str, object]) -> None:
    assert client.parse_object(json.dumps(doc, indent=1).encode()) == doc


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_anything_else_is_none_never_an_error(text: str) -> None:
    def strict(name: str) -> object:
        raise ValueError(name)  # NaN and Infinity are not JSON: the client leaves them alone

    try:
        expected = json.loads(text, parse_constant=strict)
    except ValueError:
        expected = None
    got = client.parse_object(text.encode("utf-8", "surrogatepass"))
    assert got == (expected if isinstance(expected, dict) else None)


@pytest.mark.parametrize("data", [b"", b"\xff{}", b"{} {}", b'{"a": NaN}', b"[]", b"{" * 5000])
def test_not_an_object(data: bytes) -> None:
    assert client.parse_object(data) is None


def test_the_socket_is_under_the_run_directory_the_configuration_names() -> None:
    conf = {"nodename": "h1", "runDir": "/run/x"}
    assert client.socket_for(conf, {}) == ("h1", "/run/x/h1/cni.sock")
    assert client.socket_for({"nodename": "h1"}, {"GINGHAM_RUN_DIR": "/e"}) == \
        ("h1", "/e/h1/cni.sock")
    assert client.socket_for({}, {"GINGHAM_NODENAME": "h2"}) == \
        ("h2", "/run/gingham/h2/cni.sock")


@pytest.mark.parametrize("conf", [
    {"nodename": "h1", "agent": False},
    {"nodename": "h1", "runDir": "relative"},
    {"nodename": "../h1"},
    {"nodename": "h1/x"},
    {"nodename": "H1"},
    {"nodename": "h1", "runDir": 5},
])  # fmt: skip
def test_no_socket_for_a_configuration_that_turns_it_off_or_names_nonsense(
    conf: dict[str, object],
) -> None:
    assert client.socket_for(conf, {}) is None


def test_wire_frames_round_trip() -> None:
    frame = wire.encode_request({"command": "ADD", "env:X": "a=b"}, b"{}")
    assert frame.startswith(wire.MAGIC)
    head = frame[len(wire.MAGIC) + 4:]
    size = int.from_bytes(frame[len(wire.MAGIC):len(wire.MAGIC) + 4], "big")
    assert wire.decode_header(head[:size]) == {"command": "ADD", "env:X": "a=b"}
    assert wire.decode_reply(wire.encode_reply(3, b"out", b"err")) == (3, b"out", b"err")
    with pytest.raises(wire.WireError):
        wire.decode_reply(wire.encode_reply(0, b"out", b"err")[:-1])
    with pytest.raises(wire.WireError):
        wire.encode_request({"x": "\0"}, b"")


# -- against a scripted agent -----------------------------------------------------------

Script = Callable[[socket.socket], None]


class Agent:
    """Serves one connection with ``script`` and records what the client sent."""

    def __init__(self, path: Path, script: Script) -> None:
        self.script = script
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.got_go = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            self.script(conn)

    def close(self) -> None:
        self.thread.join(5)
        self.sock.close()


def _read_request(conn: socket.socket) -> bytes:
    conn.settimeout(5)
    data = b""
    while len(data) < len(wire.MAGIC) + 4:
        data += conn.recv(4096)
    return data


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    (tmp_path / "h1").mkdir()
    return tmp_path


@pytest.fixture
def serve(run_dir: Path) -> Iterator[Callable[[Script], Agent]]:
    agents: list[Agent] = []

    def start(script: Script) -> Agent:
        agents.append(Agent(run_dir / "h1" / "cni.sock", script))
        return agents[-1]

    yield start
    for a in agents:
        a.close()


def _call(run_dir: Path) -> tuple[int, bytes, bytes] | None:
    conf = json.dumps({"cniVersion": "1.1.0", "nodename": "h1", "runDir": str(run_dir)})
    return client.hand_to_agent("DEL", conf.encode(), {"CNI_CONTAINERID": "c1"},
                                ipam_only=False)


def test_no_agent_is_a_fallback(run_dir: Path) -> None:
    assert _call(run_dir) is None


def test_a_decline_is_a_fallback(run_dir: Path, serve: Callable[[Script], Agent],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    def script(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(wire.DECLINE + b"not mine")

    serve(script)
    assert _call(run_dir) is None
    assert "declined (not mine)" in capsys.readouterr().err


def test_an_agent_that_does_not_accept_in_time_gets_no_go(
    run_dir: Path, serve: Callable[[Script], Agent], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "ACCEPT_TIMEOUT", 0.2)

    def script(conn: socket.socket) -> None:
        _read_request(conn)
        conn.settimeout(5)
        if conn.recv(1) == wire.GO:  # without an ACCEPT, the client may send nothing more
            agent.got_go.set()

    agent = serve(script)
    assert _call(run_dir) is None
    agent.close()
    assert not agent.got_go.is_set()


def test_an_agent_that_dies_after_go_is_a_fallback(
    run_dir: Path, serve: Callable[[Script], Agent]
) -> None:
    def script(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(wire.ACCEPT)
        if conn.recv(1) == wire.GO:
            agent.got_go.set()
        # ... and ends without a reply

    agent = serve(script)
    assert _call(run_dir) is None
    assert agent.got_go.is_set()


def test_an_agent_that_is_slow_after_go_is_try_again_never_a_second_run(
    run_dir: Path, serve: Callable[[Script], Agent], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "REPLY_TIMEOUT", 0.2)
    done = threading.Event()

    def script(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(wire.ACCEPT)
        conn.recv(1)
        done.wait(2)

    serve(script)
    got = _call(run_dir)
    done.set()
    assert got is not None
    code, out, _ = got
    assert code == 1 and json.loads(out) == {
        "cniVersion": "1.1.0", "code": 11,
        "msg": "the agent of h1 did not answer in time; try again"}


def test_the_agents_answer_is_passed_on(run_dir: Path, serve: Callable[[Script], Agent]) -> None:
    def script(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(wire.ACCEPT)
        assert conn.recv(1) == wire.GO
        conn.sendall(wire.encode_reply(0, b'{"ok":1}\n', b"gingham-cni: note\n"))

    serve(script)
    assert _call(run_dir) == (0, b'{"ok":1}\n', b"gingham-cni: note\n")


def test_the_socket_must_be_served_by_root(run_dir: Path) -> None:
    """A socket served by another user (here: a child that gave up root before listen(),
    which is when the kernel records a server's credentials) is not used."""
    if os.geteuid() != 0:
        pytest.skip("needs root to serve as another user")
    path = run_dir / "h1" / "cni.sock"
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(ready_r)
            os.close(release_w)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(str(path))
            os.setuid(65534)
            s.listen(1)
            os.write(ready_w, b"x")
            os.read(release_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(release_r)
    try:
        assert os.read(ready_r, 1) == b"x", "the child could not serve"
        assert _call(run_dir) is None
    finally:
        os.write(release_w, b"x")
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(release_w)
