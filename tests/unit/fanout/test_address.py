"""Which fan-out addresses are taken, and which are refused by name."""

from __future__ import annotations

import pytest

from gingham.errors import ValidationError
from gingham.fanout.address import socket_path


@pytest.mark.parametrize(
    ("given", "path"),
    [("/run/gingham/fanout.sock", "/run/gingham/fanout.sock"),
     ("unix:/run/gingham/fanout.sock", "/run/gingham/fanout.sock"),
     ("  /tmp/f.sock\n", "/tmp/f.sock")],
)  # fmt: skip
def test_unix_socket_paths_are_taken(given: str, path: str) -> None:
    assert socket_path(given) == path


@pytest.mark.parametrize(
    "given", ["10.0.0.1:5473", "typha:5473", "[2001:db8::1]:5473", "tcp://10.0.0.1:5473",
              "tcp://[::1]:5473"],
)  # fmt: skip
def test_tcp_is_refused_by_name(given: str) -> None:
    with pytest.raises(ValidationError, match=r"TCP is not supported.*anyone who connects"):
        socket_path(given)


@pytest.mark.parametrize(
    ("given", "why"),
    [("", "is empty"), ("fanout.sock", "absolute path"), ("unix:fanout.sock", "absolute path"),
     ("http://x/f.sock", "scheme 'http'"), ("/" + "x" * 120, "at most 107 bytes"),
     ("/tmp/a\0b", "no NUL")],
)  # fmt: skip
def test_other_addresses_are_refused_with_the_reason(given: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        socket_path(given)
