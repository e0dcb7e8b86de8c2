"""When a lab gets a fan-out server, and where its socket lives."""

from __future__ import annotations

from gingham.fanout.address import socket_path
from gingham.lab import fanout as labfanout


def test_automatic_above_twenty_hosts_and_forced_either_way() -> None:
    assert labfanout.AUTO_HOSTS == 20
    assert not labfanout.wanted(20, None)
    assert labfanout.wanted(21, None)
    assert labfanout.wanted(1, True)
    assert not labfanout.wanted(200, False)


def test_the_socket_is_under_the_lab_directory_and_a_valid_address() -> None:
    path = labfanout.socket_path("a-lab-name-of-some-length")
    assert path.parent.name == "a-lab-name-of-some-length"
    assert socket_path(str(path)) == str(path)


def test_a_pid_that_is_not_the_labs_server_is_not_taken_for_it() -> None:
    import os

    assert not labfanout.is_lab_process(os.getpid(), "x", "fanout serve")  # no marker
    assert not labfanout.is_lab_process(0, "x", "fanout serve")
    assert not labfanout.is_lab_process(2**22 + 12345, "x", "fanout serve")  # no such pid
