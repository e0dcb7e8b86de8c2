"""The BGP manager: BgpUpdate in, BIRD started, reloaded only on a change, stopped when BGP
goes off; a failure keeps the update for the agent's retry; password files read on every
render and rechecked, a session without its password left out and reported. BIRD itself is a recording
stand-in here (its process control runs against real BIRD in
tests/integration/routing/test_drivers.py)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from gingham.calc.messages import BgpConfig, BgpUpdate
from gingham.calc.routing_types import BGPSettings, HostInfo, PeerInfo
from gingham.errors import RoutingError
from gingham.routing.bgp import BgpManager


class Bird:
    """What BirdProcess does with a configuration, without a process."""

    def __init__(self, fail: int = 0) -> None:
        self.log = Path("/run/gingham/h1/bird/bird.log")
        self.text: str | None = None
        self.fail = fail
        self.calls: list[str] = []

    def running(self) -> bool:
        return self.text is not None

    def apply(self, text: str) -> str:
        if self.fail:
            self.fail -= 1
            raise RoutingError("BIRD rejects the configuration")
        result = "started" if self.text is None else (
            "unchanged" if text == self.text else "reloaded")
        self.text = text
        self.calls.append(result)
        return result

    def stop(self) -> None:
        self.text = None
        self.calls.append("stopped")


ME = HostInfo("h1", IPv4Address("192.0.2.11"), IPv4Network("192.0.2.0/24"))
PEER = HostInfo("h2", IPv4Address("192.0.2.12"), IPv4Network("192.0.2.0/24"))


def on(*hosts: HostInfo) -> BgpUpdate:
    return BgpUpdate(BgpConfig(BGPSettings(True), ME, (ME, *hosts), ()))


def test_start_reload_only_on_change_and_stop() -> None:
    bird = Bird()
    mgr = BgpManager(bird)
    mgr.apply([on()])
    assert bird.calls == ["started"] and bird.text is not None
    assert 'log "/run/gingham/h1/bird/bird.log" all;' in bird.text
    mgr.apply([])  # nothing new: BIRD is not touched
    mgr.apply([on(PEER)])
    assert bird.calls == ["started", "reloaded"] and "Mesh_192_0_2_12" in bird.text
    mgr.apply([BgpUpdate(None)])
    assert bird.calls[-1] == "stopped" and not bird.running()
    mgr.apply([BgpUpdate(None)])  # not running: nothing to stop
    assert bird.calls.count("stopped") == 1


def test_a_failure_keeps_the_update_for_the_retry() -> None:
    bird = Bird(fail=1)
    mgr = BgpManager(bird)
    with pytest.raises(RoutingError):
        mgr.apply([on()])
    mgr.apply([])  # the agent retries with no new messages
    assert bird.calls == ["started"]


def test_passwords_are_read_on_render_and_rechecked_and_problems_are_notices(
        tmp_path: Path) -> None:
    pw = tmp_path / "tor.pass"
    tor = PeerInfo("tor", peer_ip=IPv4Address("192.0.2.1"), as_number=65000,
                   password_file=str(pw))
    update = BgpUpdate(BgpConfig(BGPSettings(True, peers=(tor,)), ME, (ME, PEER), ()))
    bird = Bird()
    mgr = BgpManager(bird, recheck=10.0)
    assert not mgr.due(0.0)  # nothing rendered yet: no file to watch
    mgr.apply([update])
    # no file: the session is left out, the mesh stands, and the agent is told why
    assert bird.text is not None and "Global_192_0_2_1" not in bird.text
    assert "Mesh_192_0_2_12" in bird.text
    [notice] = mgr.notices()
    assert "Global_192_0_2_1 left out" in notice and "cannot open" in notice
    # the file appears (as it must: 0600); the next recheck brings the session up
    pw.write_text("s3cret\n")
    pw.chmod(0o600)
    assert mgr.due(1.0)
    assert not mgr.due(2.0)  # once per recheck period
    mgr.apply([])
    assert 'password "s3cret";' in bird.text and mgr.notices() == []
    assert bird.calls == ["started", "reloaded"]
    # unchanged file: re-read, same text, BIRD left alone
    assert mgr.due(11.5)
    mgr.apply([])
    assert bird.calls == ["started", "reloaded", "unchanged"]
    # a file others may read is refused: the session goes rather than keep a stale secret
    pw.chmod(0o644)
    assert mgr.due(22.0)
    mgr.apply([])
    assert "s3cret" not in bird.text
    assert "chmod 600" in mgr.notices()[0] and "s3cret" not in mgr.notices()[0]
    # BGP off: nothing to watch
    mgr.apply([BgpUpdate(None)])
    assert not mgr.due(100.0) and mgr.notices() == []
