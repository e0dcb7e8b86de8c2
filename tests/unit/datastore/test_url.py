"""Datastore URL parsing and redaction: one parser, so a password is found and hidden alike."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gingham.datastore import open_datastore, redact_url
from gingham.datastore.etcd import EtcdDatastore
from gingham.datastore.url import parse_url, split_credentials
from gingham.errors import Unavailable, ValidationError

NASTY = [
    "s3cret",
    "p/a#s?s@w:o%rd",
    "ends-with-@",
    "@@@",
    ":::",
    "?#/",
    "a b&c=d+e",
    "pässwörd✓",
    "100%",
    "%41%2F",  # literally these six characters
    "x@127.0.0.1:2379",  # looks like a host
    "?timeout=1",  # looks like an option
]


def _forms(user: str, password: str, host: str = "127.0.0.1:2379") -> list[str]:
    enc = quote(password, safe="")
    forms = [
        f"etcd://{user}:{enc}@{host}",
        f"etcd://{host}?user={user}&password={enc}",
        f"etcd://{host}?password={enc}&user={user}&timeout=3",
        f"etcd://{user}:{enc}@{host},127.0.0.2:2379?timeout=3",
        f"etcds://{user}:{enc}@{host}?cacert=/etc/ca.pem",
    ]
    # Written raw, as people do: fine whenever the password has no %XX in it
    # (userinfo) or no & + = % (query).
    if "%" not in password:
        forms.append(f"etcd://{user}:{password}@{host}")
        forms.append(f"etcd://{user}:{password}@{host}?timeout=3")
    if not set(password) & set("&+=%#"):
        forms.append(f"etcd://{host}?user={user}&password={password}")
    return forms


@pytest.mark.parametrize("password", NASTY)
def test_nasty_passwords_are_parsed_and_never_shown(password: str) -> None:
    for url in _forms("root", password):
        parsed = parse_url(url)
        assert parsed.password == password, url
        assert parsed.user == "root", url
        assert parsed.hosts[0] == "127.0.0.1:2379", url
        for shown in (redact_url(url), str(parsed), repr(parsed), parsed.public()):
            for secret in parsed.secrets():
                assert secret not in shown, (url, shown)
        # The redacted URL still says which server and user, and parses again.
        again = parse_url(redact_url(url))
        assert again.hosts == parsed.hosts and again.user == "root"
        assert again.password == "***"


def test_redacted_forms() -> None:
    assert redact_url("etcd://h:1?user=u&password=p") == "etcd://h:1?user=u&password=***"
    assert redact_url("etcd://u:p/x#y@h:1") == "etcd://u:***@h:1"
    assert redact_url("etcd://u@h:1") == "etcd://u@h:1"
    assert redact_url("etcds://h:1?cacert=/ca.pem&key=/k.pem") == (
        "etcds://h:1?cacert=/ca.pem&key=***"
    )
    assert redact_url("sqlite:///var/lib/gingham/a@b.db") == "sqlite:///var/lib/gingham/a@b.db"
    assert redact_url("sqlite:///x.db?history=5") == "sqlite:///x.db?history=5"
    assert redact_url("memory://t") == "memory://t"
    assert redact_url("etcd+unix:///run/e/s:2379?password=a/b") == (
        "etcd+unix:///run/e/s:2379?password=***"
    )


def test_the_query_wins_and_the_last_value_wins() -> None:
    parsed = parse_url("etcd://a:b@h:1?password=c&password=d")
    assert (parsed.user, parsed.password) == ("a", "d")


def test_split_credentials_round_trip() -> None:
    public, creds = split_credentials("etcd://u:p%2Fq@h:1,h:2?timeout=2")
    assert public == "etcd://h:1,h:2?timeout=2"
    assert creds == {"user": "u", "password": "p/q"}
    assert split_credentials("sqlite:///a@b.db") == ("sqlite:///a@b.db", {})


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("etcd://h:1?timout=3", "unknown option 'timout'"),
        ("etcd://h:1?timeout", "has no value"),
        ("sqlite:///x.db?hist=3", "unknown option 'hist'"),
        ("etcd://", "names no endpoint"),
        ("etcd://bad host:1", "not a host"),
        ("ftp://x", "unknown datastore scheme"),
        ("nonsense", "not a datastore URL"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        parse_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "etcd://u:hunter2@h:1?password=x&oops",
        "etcd://h:1?password=hunter2&oops",
        "etcd://u:hunter2@bad host:1",
        "etcd://h:1?password=hun&ter2",
    ],
)
def test_errors_about_urls_with_passwords_quote_no_part(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_url(url)
    assert "hunter2" not in str(info.value) and "ter2" not in str(info.value)
    assert "hunter2" not in redact_url(url) and "ter2" not in redact_url(url)
    with pytest.raises(ValidationError) as info:
        open_datastore(url)
    assert "ter2" not in str(info.value)


@given(st.text(min_size=1, max_size=30).filter(lambda p: p.strip() == p and p))
def test_any_password_round_trips_quoted(password: str) -> None:
    enc = quote(password, safe="")
    for url in (f"etcd://u:{enc}@h:1", f"etcd://h:1?user=u&password={enc}"):
        assert parse_url(url).password == password
    assert redact_url(f"etcd://u:{enc}@h:1") == "etcd://u:***@h:1"
    assert redact_url(f"etcd://h:1?user=u&password={enc}") == "etcd://h:1?user=u&password=***"


def test_the_backend_never_shows_the_password() -> None:
    """Nobody listens on the port: the errors, the URL and the repr hold no password."""
    from gingham.datastore.etcd_process import free_ports

    (port,) = free_ports(1)
    password = "p/a#s?s@w:o%rd"
    for url in _forms("root", password, host=f"127.0.0.1:{port}"):
        if url.startswith("etcds"):
            continue  # no CA file here; TLS is tested against a real server
        if "timeout" not in url:
            url += ("&" if "?" in url else "?") + "timeout=1"
        ds = open_datastore(url)
        try:
            assert isinstance(ds, EtcdDatastore)
            assert ds._password == password  # type: ignore[attr-defined]
            for shown in (ds.url, repr(ds), str(ds)):
                assert password not in shown and quote(password, safe="") not in shown
            with pytest.raises(Unavailable) as info:
                ds.get("/x")
        finally:
            ds.close()
        message = str(info.value)
        assert f"127.0.0.1:{port}" in message
        assert password not in message and quote(password, safe="") not in message
        assert info.value.__cause__ is None or password not in str(info.value.__cause__)
