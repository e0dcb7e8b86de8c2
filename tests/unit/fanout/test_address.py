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


def test_tls_endpoints_carry_their_files() -> None:
    from gingham.fanout.address import parse

    a = parse("tls://fanout.example:5473?ca=/etc/g/ca.pem&cert=/etc/g/c.pem&key=/etc/g/c.key")
    assert (a.host, a.port, a.path) == ("fanout.example", 5473, "")
    assert a.tls is not None and (a.tls.ca, a.tls.cert, a.tls.key) == (
        "/etc/g/ca.pem", "/etc/g/c.pem", "/etc/g/c.key")
    assert str(a) == "tls://fanout.example:5473"  # file names stay out of messages
    v6 = parse("tls://[2001:db8::1]:5473?ca=/a&cert=/b&key=/c")
    assert (v6.host, str(v6)) == ("2001:db8::1", "tls://[2001:db8::1]:5473")
    assert parse("/run/f.sock").path == "/run/f.sock"


@pytest.mark.parametrize(
    ("given", "why"),
    [("tls://h:5473?ca=/a&cert=/b", "key= must be given"),
     ("tls://h:5473?ca=a&cert=/b&key=/c", "ca= must be given once, as an absolute path"),
     ("tls://h:5473?ca=/a&ca=/z&cert=/b&key=/c", "ca= must be given once"),
     ("tls://h:5473?ca=/a&cert=/b&key=/c&verify=no", "unknown parameters verify"),
     ("tls://h:0?ca=/a&cert=/b&key=/c", "port 0"),
     ("tls://h?ca=/a&cert=/b&key=/c", "must be HOST:PORT"),
     ("tls://u:p@h:1?ca=/a&cert=/b&key=/c", "only tls://HOST:PORT"),
     ("tls://h_x:1?ca=/a&cert=/b&key=/c", "neither an address nor a host name")],
)  # fmt: skip
def test_bad_tls_endpoints_are_refused(given: str, why: str) -> None:
    from gingham.fanout.address import parse

    with pytest.raises(ValidationError, match=why):
        parse(given)
