"""etcd-only behaviour: fail-over in a 3-member cluster, unix socket, auth, TLS, errors."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gingham.datastore import (
    Datastore,
    EventType,
    Undecodable,
    WatchEvent,
    open_datastore,
    redact_url,
)
from gingham.datastore.etcd_codec import b64
from gingham.datastore.etcd_process import (
    EtcdProcess,
    cluster_url,
    free_ports,
    start_etcd_cluster,
    stop_etcd_cluster,
)
from gingham.errors import RevisionConflict, Unavailable

pytestmark = [pytest.mark.integration, pytest.mark.etcd]


def collect(watch, want: int, timeout: float = 10.0) -> list[WatchEvent]:  # type: ignore[no-untyped-def]
    events: list[WatchEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < want and time.monotonic() < deadline:
        events.extend(watch.next_batch(0.2))
    return events


def test_cluster_keeps_working_when_a_member_stops(etcd_cluster: list[EtcdProcess]) -> None:
    url = cluster_url(etcd_cluster)
    with open_datastore(url, create=True) as ds:
        r1 = ds.create("/t/a", {"v": 1})
        with ds.watch("/t/", start_revision=r1 + 1) as watch:
            r2 = ds.update("/t/a", {"v": 2}, revision=r1)
            assert [e.revision for e in collect(watch, 1)] == [r2]
            # The first endpoint is the one the client (and the watch) talk to.
            etcd_cluster[0].stop()
            r3 = ds.update("/t/a", {"v": 3}, revision=r2)
            ds.create("/t/b", {"v": 1})
            kv = ds.get("/t/a")
            assert kv is not None and kv.value == {"v": 3} and kv.mod_revision == r3
            with pytest.raises(RevisionConflict):
                ds.update("/t/a", {"v": 4}, revision=r2)
            events = collect(watch, 2)
        assert [(e.type, e.key, e.value) for e in events] == [
            (EventType.PUT, "/t/a", {"v": 3}),
            (EventType.PUT, "/t/b", {"v": 1}),
        ]
        # A fresh client whose first endpoint is the dead member fails over too.
    with open_datastore(url) as ds2:
        items, _ = ds2.list("/t/")
        assert [kv.key for kv in items] == ["/t/a", "/t/b"]


def test_unix_socket_url(etcd_member: EtcdProcess) -> None:
    with open_datastore(etcd_member.unix_datastore_url, create=True) as ds:
        rev = ds.create("/t/unix", {"ok": True})
        kv = ds.get("/t/unix")
        assert kv is not None and kv.mod_revision == rev
        with ds.watch("/t/", start_revision=rev) as watch:
            assert [e.key for e in collect(watch, 1)] == ["/t/unix"]
        ds.delete("/t/unix")


def test_unreachable_gives_one_line_unavailable() -> None:
    (port,) = free_ports(1)
    url = f"etcd://127.0.0.1:{port}?timeout=1"
    ds = open_datastore(url)
    try:
        with pytest.raises(Unavailable) as info:
            ds.get("/t/x")
    finally:
        ds.close()
    message = str(info.value)
    assert message.startswith(f"cannot reach datastore etcd://127.0.0.1:{port}")
    assert "\n" not in message


@pytest.fixture
def lone_etcd() -> Iterator[EtcdProcess]:
    base = Path(tempfile.mkdtemp(prefix="gingham-etcd-auth-"))
    members: list[EtcdProcess] = []
    try:
        # Auth tokens live 1 s, so the test sees them expire.
        members = start_etcd_cluster(
            base, 1, die_with_parent=True, extra_args=["--auth-token-ttl", "1"]
        )
        yield members[0]
    finally:
        stop_etcd_cluster(members)
        shutil.rmtree(base, ignore_errors=True)


def test_username_password(lone_etcd: EtcdProcess) -> None:
    base = lone_etcd.client_url
    for path, body in [
        ("/v3/auth/user/add", {"name": "root", "password": "s3cret"}),
        ("/v3/auth/role/add", {"name": "root"}),
        ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
        ("/v3/auth/user/add", {"name": "nasty", "password": NASTY_PASSWORD}),
        ("/v3/auth/user/grant", {"user": "nasty", "role": "root"}),
        ("/v3/auth/enable", {}),
    ]:
        r = httpx.post(base + path, json=body, timeout=5)
        assert r.status_code == 200, r.text
    good = f"{lone_etcd.datastore_url}?user=root&password=s3cret"
    with open_datastore(good, create=True) as ds:
        assert "s3cret" not in ds.url
        rev = ds.create("/t/auth", {"v": 1})
        assert ds.get("/t/auth") is not None
        with ds.watch("/t/", start_revision=rev) as watch:
            assert [e.key for e in collect(watch, 1)] == ["/t/auth"]
            first_token = ds._token  # type: ignore[attr-defined]
            time.sleep(2.5)  # the token expires; the client fetches a new one
            ds.create("/t/auth2", {"v": 2})
            assert ds._token != first_token  # type: ignore[attr-defined]
            assert [e.key for e in collect(watch, 1)] == ["/t/auth2"]
    userinfo = lone_etcd.datastore_url.replace("etcd://", "etcd://root:s3cret@")
    with open_datastore(userinfo) as ds:
        assert "s3cret" not in ds.url
        assert ds.get("/t/auth") is not None
    with open_datastore(f"{lone_etcd.datastore_url}?user=root&password=wrong") as bad:
        with pytest.raises(Unavailable) as info:
            bad.get("/t/auth")
        assert "wrong" not in str(info.value)
    with open_datastore(lone_etcd.datastore_url) as anonymous, pytest.raises(Exception):  # noqa: B017
        anonymous.get("/t/auth")
    _nasty_password_works_and_never_shows(lone_etcd)


NASTY_PASSWORD = "p/a#s?s@w:o%rd&x+y=z"


def _nasty_password_works_and_never_shows(member: EtcdProcess) -> None:
    """Every way of writing a password with URL syntax in it reaches etcd intact
    and no message shows it (before issue 12, ``/ # ? @`` leaked through redact_url)."""
    from urllib.parse import quote

    host = f"127.0.0.1:{member.client_port}"
    enc = quote(NASTY_PASSWORD, safe="")
    raw_userinfo = NASTY_PASSWORD.replace("%", "%25")  # only % needs escaping there
    forms = [
        f"etcd://nasty:{enc}@{host}",
        f"etcd://nasty:{raw_userinfo}@{host}",
        f"etcd://nasty:{raw_userinfo}@{host}?timeout=5",
        f"etcd://{host}?user=nasty&password={enc}",
    ]
    secrets = {NASTY_PASSWORD, enc, raw_userinfo}
    for url in forms:
        with open_datastore(url) as ds:
            assert ds.get("/t/auth") is not None, url
            shown = f"{ds.url} {ds!r} {redact_url(url)}"
            assert not any(s in shown for s in secrets), shown
    wrong = f"etcd://nasty:{quote('x' + NASTY_PASSWORD, safe='')}@{host}?timeout=2"
    with open_datastore(wrong) as bad, pytest.raises(Unavailable) as info:
        bad.get("/t/auth")
    message = str(info.value)
    assert "authentication" in message
    assert not any(s in message for s in secrets), message


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_etcd() -> Iterator[tuple[EtcdProcess, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    base = Path(tempfile.mkdtemp(prefix="gingham-etcd-tls-"))
    member: EtcdProcess | None = None
    try:
        pki = base / "pki"
        pki.mkdir()
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=gingham-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            cwd=pki,
        )
        (pki / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
        for name in ("server", "client"):
            _openssl(
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                f"/CN={name}",
                "-keyout",
                f"{name}.key",
                "-out",
                f"{name}.csr",
                cwd=pki,
            )
            _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                     "-CAcreateserial", "-days", "1", "-extfile", "ext",
                     "-out", f"{name}.crt", cwd=pki)  # fmt: skip
        client_port, peer_port = free_ports(2)
        member = EtcdProcess(
            name="tls", directory=base / "tls", client_port=client_port, peer_port=peer_port,
            cert_file=str(pki / "server.crt"), key_file=str(pki / "server.key"),
            ca_file=str(pki / "ca.crt"), die_with_parent=True,
        )  # fmt: skip
        member.start()
        member.wait_healthy()
        yield member, pki
    finally:
        if member is not None:
            member.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_tls(tls_etcd: tuple[EtcdProcess, Path]) -> None:
    member, pki = tls_etcd
    url = (
        f"etcds://127.0.0.1:{member.client_port}?cacert={pki / 'ca.crt'}"
        f"&cert={pki / 'client.crt'}&key={pki / 'client.key'}"
    )
    with open_datastore(url, create=True) as ds:
        ds.create("/t/tls", {"v": 1})
        assert ds.get("/t/tls") is not None
    # Without the CA the server certificate is not trusted.
    with open_datastore(f"etcds://127.0.0.1:{member.client_port}?timeout=2") as untrusted:
        untrusted._retry_for = 0.5  # type: ignore[attr-defined]
        with pytest.raises(Unavailable):
            untrusted.get("/t/tls")


def test_values_another_program_wrote_cost_their_key_only(
    etcd_store: Datastore, etcd_member: EtcdProcess
) -> None:
    """Written past gingham straight through the gateway: bad JSON, bad UTF-8, a key
    that is not UTF-8. Before issue 12 one of them failed the whole list."""

    def raw_put(key: bytes, value: bytes) -> None:
        r = httpx.post(
            etcd_member.client_url + "/v3/kv/put",
            json={"key": b64(key), "value": b64(value)},
            timeout=5,
        )
        assert r.status_code == 200, r.text

    etcd_store.create("/t/f/a-good", {"v": 1})
    raw_put(b"/t/f/b-not-json", b"not json")
    raw_put(b"/t/f/c-not-utf8", b'{"v": "\xff\xfe"}')
    raw_put(b"/t/f/d-key-\xff", b'{"v": 4}')
    etcd_store.create("/t/f/e-good", {"v": 5})
    items, _ = etcd_store.list("/t/f/")
    by_key = {kv.key: kv.value for kv in items}
    assert by_key["/t/f/a-good"] == {"v": 1} and by_key["/t/f/e-good"] == {"v": 5}
    not_json = by_key["/t/f/b-not-json"]
    assert isinstance(not_json, Undecodable) and not_json.raw == "not json"
    assert "not JSON" in not_json.reason
    not_utf8 = by_key["/t/f/c-not-utf8"]
    assert isinstance(not_utf8, Undecodable) and "not UTF-8" in not_utf8.reason
    odd_key = "/t/f/d-key-\udcff"  # the byte kept by surrogateescape
    assert by_key[odd_key] == {"v": 4}
    etcd_store.delete(odd_key)  # and it can be deleted by the key list gave
    assert etcd_store.get(odd_key) is None
    kv = etcd_store.get("/t/f/b-not-json")
    assert kv is not None and isinstance(kv.value, Undecodable)


def test_unix_socket_in_a_deep_directory() -> None:
    base = Path(tempfile.mkdtemp(prefix="gingham-etcd-deep-"))
    deep = base / ("d" * 60) / ("e" * 60)
    members: list[EtcdProcess] = []
    try:
        members = start_etcd_cluster(deep, 1, unix_socket=True, die_with_parent=True)
        assert len(str(members[0].socket_path)) > 108
        with open_datastore(cluster_url(members, unix=True), create=True) as ds:
            ds.create("/t/deep", {"v": 1})
            kv = ds.get("/t/deep")
            assert kv is not None and kv.value == {"v": 1}
    finally:
        stop_etcd_cluster(members)
        shutil.rmtree(base, ignore_errors=True)
