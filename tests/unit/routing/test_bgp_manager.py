"""The BGP manager: BgpUpdate in, BIRD started, reloaded only on a change, stopped when BGP
goes off; a failure keeps the update for the agent's retry. BIRD itself is a recording
stand-in here (its process control runs against real BIRD in
tests/integration/routing/test_drivers.py)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from gingham.calc.messages import BgpConfig, BgpUpdate
from gingham.calc.routing_types import BGPSettings, HostInfo
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
