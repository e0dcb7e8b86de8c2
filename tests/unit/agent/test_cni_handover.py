"""The CNI server's writes reach the agent's loop ahead of its watch, never stale:
Handover's rules on their own, then Agent.step on the faithful fakes (a handed-over
endpoint is programmed before the watch brings it; an old one never undoes a newer
state; a snapshot that lacks a handed-over key makes it absent)."""

from __future__ import annotations

from gingham.agent.cni_handover import BUSY_POLL, Handover
from gingham.datastore import keys
from gingham.datastore.base import Datastore

from . import test_step
from .test_step import Host, wep

ds = test_step.ds  # the fixtures of Agent.step's own tests
host = test_step.host

KEY = "/gingham/v1/resources/WorkloadEndpoint/web/w1"
DOC = {"kind": "WorkloadEndpoint"}


def test_a_write_the_watch_has_not_reached_is_fed_once() -> None:
    h = Handover()
    h.put(KEY, DOC, 10)
    assert h.take([], 9, snapshot=False) == [(KEY, DOC)]
    assert h.take([], 9, snapshot=False) == []


def test_a_write_the_watch_has_brought_or_passed_is_dropped() -> None:
    h = Handover()
    h.put(KEY, DOC, 10)
    h.put(KEY + "x", DOC, 12)
    assert h.take([], 10, snapshot=False) == [(KEY + "x", DOC)]


def test_a_snapshot_without_a_handed_over_key_makes_it_absent() -> None:
    h = Handover()
    h.put(KEY, DOC, 10)
    h.put(KEY + "late", DOC, 30)
    assert len(h.take([], 9, snapshot=False)) == 2
    # resync at 20: the key written at 10 is not in the snapshot (deleted since); the one
    # written at 30 is newer than the snapshot, and the watch from 21 will bring it
    assert h.take([("/other", {})], 20, snapshot=True) == [(KEY, None)]
    assert h.take([], 25, snapshot=True) == []


def test_a_key_the_syncer_delivered_is_its_again() -> None:
    h = Handover()
    h.put(KEY, DOC, 10)
    h.take([], 9, snapshot=False)
    h.take([(KEY, DOC)], 10, snapshot=False)  # the watch brought it: the syncer knows it
    assert h.take([], 40, snapshot=True) == []  # so its snapshot speaks for it


def test_the_loop_waits_briefly_while_commands_are_in_flight() -> None:
    h = Handover()
    assert h.poll_timeout(0.1) == 0.1
    h.begin()
    assert h.poll_timeout(0.1) == BUSY_POLL
    h.put(KEY, DOC, 1)
    assert h.poll_timeout(0.1) == 0.0
    h.end()


# -- in the agent's loop ------------------------------------------------------------------


def _programmed(host: Host, ip: str) -> bool:
    return host.route(f"{ip}/32") is not None


def test_a_handed_over_endpoint_is_programmed_before_the_watch_brings_it(
    ds: Datastore, host: Host
) -> None:
    host.agent.handover = Handover()
    host.steps()
    host.routes.add_link("gh0123456789a")
    key = keys.resource_key("WorkloadEndpoint", "w1", "web")
    # handed over at a revision the datastore has not reached: no watch can bring it
    host.agent.handover.put(key, wep("w1", "198.18.1.5"), ds.revision() + 100)
    host.steps(1)
    assert _programmed(host, "198.18.1.5")


def test_an_old_write_never_undoes_a_newer_state(ds: Datastore, host: Host) -> None:
    host.agent.handover = Handover()
    host.steps()
    host.routes.add_link("gh0123456789a")
    key = keys.resource_key("WorkloadEndpoint", "w1", "web")
    written = ds.create(key, wep("w1", "198.18.1.5"))
    ds.delete(key)
    host.steps(2)
    assert not _programmed(host, "198.18.1.5")
    host.agent.handover.put(key, wep("w1", "198.18.1.5"), written)  # late, and stale
    host.steps(2)
    assert not _programmed(host, "198.18.1.5")


def test_the_loop_lets_commands_in_flight_finish_first() -> None:
    import threading
    import time

    h = Handover()
    h.begin()
    ended: list[float] = []

    def command() -> None:
        time.sleep(0.005)
        h.put(KEY, DOC, 7)
        ended.append(time.monotonic())
        h.end()

    threading.Thread(target=command).start()
    h.settle(limit=5.0)
    settled = time.monotonic()
    assert ended and ended[0] <= settled  # it waited for the command, not for the limit
    assert h.take([], 6, snapshot=False) == [(KEY, DOC)]
    h.begin()
    h.settle(limit=0.01)  # a command that never ends holds the loop back no longer
    h.end()
