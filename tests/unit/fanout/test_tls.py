"""The fan-out over TCP: mutual TLS or nothing. Real sockets on 127.0.0.1, real
certificates made with openssl for the test, a real sqlite datastore."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import open_datastore
from gingham.datastore.base import Datastore
from gingham.errors import ValidationError
from gingham.fanout import FanoutClient, FanoutServer, server
from gingham.fanout.tls import TLSFiles

PREFIX = "/gingham/v1/resources/"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _openssl(pki: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=pki, check=True, capture_output=True)


def _ca(pki: Path, name: str) -> None:
    _openssl(pki, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt")  # fmt: skip


def _cert(pki: Path, ca: str, name: str, cn: str, san: str) -> None:
    (pki / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    _openssl(pki, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
    _openssl(pki, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.crt")  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "otherca")
    _cert(d, "ca", "server", "fanout", "IP:127.0.0.1")
    _cert(d, "ca", "elsewhere", "fanout", "DNS:elsewhere.example")
    _cert(d, "ca", "agent", "agent-h1", "DNS:h1")
    _cert(d, "ca", "intruder", "intruder", "DNS:h9")
    _cert(d, "otherca", "stranger", "agent-h1", "DNS:h1")
    return d


def files(pki: Path, name: str) -> TLSFiles:
    return TLSFiles(str(pki / "ca.crt"), str(pki / f"{name}.crt"), str(pki / f"{name}.key"))


def url(srv: FanoutServer, pki: Path, name: str) -> str:
    assert srv.tcp_address is not None
    host, port = srv.tcp_address
    f = files(pki, name)
    return f"tls://{host}:{port}?ca={f.ca}&cert={f.cert}&key={f.key}"


@pytest.fixture
def ds(tmp_path: Path) -> Iterator[Datastore]:
    store = open_datastore(f"sqlite://{tmp_path / 'g.db'}", create=True)
    store.create(PREFIX + "A/one", {"v": 1})
    yield store
    store.close()


Serve = Callable[..., FanoutServer]


@pytest.fixture
def serve(ds: Datastore, pki: Path) -> Iterator[Serve]:
    running: list[tuple[threading.Event, threading.Thread]] = []

    def _serve(cert: str = "server", path: str | None = None, **kwargs: Any) -> FanoutServer:
        srv = FanoutServer(ds, PREFIX, path, listen=("127.0.0.1", 0), tls=files(pki, cert),
                           **kwargs)  # fmt: skip
        stop = threading.Event()
        thread = threading.Thread(target=srv.serve, args=(stop.is_set, 0.05), daemon=True)
        thread.start()
        running.append((stop, thread))
        return srv

    yield _serve
    for stop, thread in running:
        stop.set()
        thread.join(10)


def _poll_until(client: FanoutClient, view: dict[str, object], cond: Callable[[], bool],
                seconds: float = 20) -> bool:  # fmt: skip
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, value in client.poll(0.05):
            if value is None:
                view.pop(key, None)
            else:
                view[key] = value
        if cond():
            return True
    return False


def test_a_client_the_ca_signed_is_served_beside_the_unix_socket(
    ds: Datastore, serve: Serve, pki: Path, tmp_path: Path
) -> None:
    srv = serve(path=str(tmp_path / "f.sock"))
    over_tls = FanoutClient(url(srv, pki, "agent"))
    local = FanoutClient(str(tmp_path / "f.sock"))
    views: list[dict[str, object]] = [{}, {}]
    try:
        for c, v in zip((over_tls, local), views, strict=True):
            assert _poll_until(c, v, lambda c=c: c.status.in_sync), c.status
        ds.create(PREFIX + "A/two", {"v": 2})
        for c, v in zip((over_tls, local), views, strict=True):
            assert _poll_until(c, v, lambda v=v: PREFIX + "A/two" in v)
        assert views[0] == views[1] == {PREFIX + "A/one": {"v": 1}, PREFIX + "A/two": {"v": 2}}
        assert str(over_tls.address).startswith("tls://127.0.0.1:")
        assert srv.stats.accepted == 2 and srv.stats.refused_tls == 0
    finally:
        over_tls.close()
        local.close()


def test_certificates_the_ca_did_not_sign_and_plain_tcp_get_nothing(
    serve: Serve, pki: Path
) -> None:
    srv = serve()
    good = FanoutClient(url(srv, pki, "agent"))
    f = files(pki, "stranger")
    stranger = FanoutClient(url(srv, pki, "agent").split("?")[0]
                            + f"?ca={f.ca}&cert={f.cert}&key={f.key}", retry_interval=0.05)  # fmt: skip
    assert srv.tcp_address is not None
    plain = socket.create_connection(srv.tcp_address, timeout=10)
    try:
        assert _poll_until(good, {}, lambda: good.status.in_sync)
        assert _poll_until(stranger, {}, lambda: srv.stats.refused_tls >= 1 and bool(
            stranger.status.last_error))  # fmt: skip
        assert not stranger.status.in_sync
        plain.sendall(b'{"t": "hello"}\n')  # whatever a plain client says
        data = b""
        try:
            while chunk := plain.recv(65536):  # the server closes it (or resets it)
                data += chunk
        except ConnectionResetError:
            pass
        assert b"snapshot" not in data and b"/gingham/" not in data
        assert _poll_until(good, {}, lambda: srv.stats.refused_tls >= 2)
        assert good.status.in_sync and good.status.resyncs == 0
    finally:
        good.close()
        stranger.close()
        plain.close()


def test_a_peer_that_never_shakes_hands_is_dropped(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "HANDSHAKE_TIMEOUT", 0.3)
    srv = serve(max_clients=1)
    assert srv.tcp_address is not None
    silent = socket.create_connection(srv.tcp_address, timeout=20)
    try:
        assert silent.recv(1) == b""  # closed by the server, not left holding a slot
        deadline = time.monotonic() + 10  # the stats are the server thread's: let it finish
        while (srv.stats.refused_tls, srv.stats.clients) != (1, 0) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (srv.stats.refused_tls, srv.stats.clients) == (1, 0), srv.stats
    finally:
        silent.close()


def test_only_allowed_names_are_served(serve: Serve, pki: Path) -> None:
    srv = serve(allowed_names=["agent-h1"])
    intruder = FanoutClient(url(srv, pki, "intruder"), retry_interval=60)
    agent = FanoutClient(url(srv, pki, "agent"))
    try:
        assert _poll_until(intruder, {}, lambda: "not allowed" in intruder.status.last_error)
        assert "'intruder'" in intruder.status.last_error and not intruder.status.in_sync
        assert _poll_until(agent, {}, lambda: agent.status.in_sync)
    finally:
        intruder.close()
        agent.close()


def test_the_client_checks_the_servers_name(serve: Serve, pki: Path) -> None:
    srv = serve(cert="elsewhere")  # signed by the CA, but for another name
    client = FanoutClient(url(srv, pki, "agent"), retry_interval=60)
    try:
        assert _poll_until(client, {}, lambda: "certificate" in client.status.last_error)
        assert not client.status.in_sync and srv.stats.accepted == 0
    finally:
        client.close()


def test_tcp_without_tls_and_unreadable_tls_files_are_refused(
    ds: Datastore, pki: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="mutual TLS only"):
        FanoutServer(ds, PREFIX, None, listen=("127.0.0.1", 0))
    with pytest.raises(ValidationError, match="cannot load the certificate"):
        FanoutServer(ds, PREFIX, None, listen=("127.0.0.1", 0),
                     tls=TLSFiles(str(pki / "ca.crt"), str(tmp_path / "no.crt"), "/x"))  # fmt: skip
    with pytest.raises(ValidationError, match="cannot load the CA"):
        FanoutClient(f"tls://127.0.0.1:1?ca={tmp_path}/no.pem&cert={pki}/agent.crt"
                     f"&key={pki}/agent.key")  # fmt: skip
