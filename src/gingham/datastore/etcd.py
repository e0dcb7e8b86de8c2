"""The distributed backend: etcd v3 through its JSON gateway (``/v3/``).

Unary calls go over one keep-alive ``http.client`` connection per thread and
endpoint (``etcd_http.py``); watches are httpx streams (``etcd_watch.py``).

Why the gateway and not gRPC: the gRPC clients do not survive the fork that
network-namespace helpers do, and the maintained-ness of Python etcd clients is
poor. The gateway speaks protobuf-as-JSON, with quirks (FIELD-NOTES.md): keys
and values are base64, 64-bit integers are strings, a failed txn has no
``succeeded`` key, PUT events have no ``type``, a compacted watch answers
``canceled`` with ``compact_revision`` and keeps the stream open.

Every write is a txn comparing the key's MOD revision (CREATE revision == 0 for
create). Several endpoints: a connection error moves on to the next one; only
when every endpoint fails does the caller see :class:`Unavailable`, whose
message names the datastore URL without credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from gingham.datastore.base import (
    JSON,
    Datastore,
    KeyValue,
    TxnResult,
    Watch,
    check_txn,
    encode_value,
)
from gingham.datastore.etcd_codec import b64, decode_b64_value, range_end, unb64
from gingham.datastore.etcd_http import ConnectFailed, GatewayConnection, Reply, RequestFailed
from gingham.datastore.url import DatastoreURL, parse_url, scrub
from gingham.errors import (
    AlreadyExists,
    DatastoreError,
    NotFound,
    RevisionConflict,
    Unavailable,
    ValidationError,
)

if TYPE_CHECKING:
    import httpx

_Compares = list[JSON]  # spelled here: inside the class, ``list`` is a method

# gRPC status codes the gateway passes through in its error bodies.
_NOT_FOUND, _OUT_OF_RANGE, _UNAVAILABLE, _UNAUTHENTICATED = 5, 11, 14, 16
_DEADLINE_EXCEEDED = 4
_NO_SUCH_PATH = -404  # ours: the gateway of this version lacks the path
# Errors a healthy member returns while the cluster elects a leader: retried.
_TRANSIENT = ("leader", "timed out", "too many requests", "not capable", "stopped")


@dataclass(frozen=True)
class Endpoint:
    """How to reach one member: a base URL, and a unix socket path if any."""

    name: str  # for messages: host:port or the socket path
    base: str
    uds: str | None = None


class EtcdError(DatastoreError):
    """An error body from the gateway (translated further by the caller)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


def endpoints_of(parsed: DatastoreURL) -> list[Endpoint]:
    if parsed.scheme == "etcd+unix":
        return [Endpoint(h, "http://localhost", uds=h) for h in parsed.hosts]
    tls = parsed.scheme in ("etcds", "https")
    return [Endpoint(h, f"{'https' if tls else 'http'}://{h}") for h in parsed.hosts]


class EtcdDatastore(Datastore):
    def __init__(
        self,
        endpoints: list[Endpoint],
        *,
        url: str,
        cacert: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        retry_for: float = 8.0,
        connect_retry_for: float = 1.0,
        scrub: Callable[[str], str] | None = None,
    ) -> None:
        self.url = url
        self._scrub: Callable[[str], str] = scrub or partial(_scrub_password, password=password)
        self._endpoints = endpoints
        self._current = 0
        self._timeout, self._connect_timeout = timeout, min(timeout, 2.0)
        # A caller that asks for a short timeout wants failures reported soon too.
        self._retry_for = min(retry_for, timeout)
        self._connect_retry_for = connect_retry_for
        self._verify: ssl.SSLContext | bool = True
        if cacert or cert:
            try:
                ctx = ssl.create_default_context(cafile=cacert)
                if cert:
                    ctx.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as exc:
                raise ValidationError(
                    f"cannot load TLS files for {url}: {exc}", location="datastore URL"
                ) from exc
            self._verify = ctx
        self._user, self._password = user, password
        self._token: str | None = None
        self._lock = threading.RLock()  # make_client runs under it too
        # Per thread: endpoint index -> connection. All of them, for close(): weakly,
        # so a thread that ends takes its connections (and sockets) with it.
        self._local = threading.local()
        self._connections: weakref.WeakSet[GatewayConnection] = weakref.WeakSet()
        self._dir_fds: dict[str, int] = {}
        self._pid = os.getpid()
        self._closed = False

    @classmethod
    def from_url(cls, url: str) -> EtcdDatastore:
        return cls.from_parsed(parse_url(url))

    @classmethod
    def from_parsed(cls, parsed: DatastoreURL) -> EtcdDatastore:
        if not parsed.is_etcd:
            raise ValidationError(f"not an etcd URL: {parsed}", location="datastore URL")
        timeout_text = parsed.option("timeout", "10") or "10"
        try:
            timeout = float(timeout_text)
        except ValueError:
            timeout = 0.0
        if not timeout > 0:
            raise ValidationError(
                f"timeout must be a positive number of seconds, got {timeout_text!r}",
                location="datastore URL",
            )
        return cls(
            endpoints_of(parsed),
            url=parsed.redacted(),
            cacert=parsed.option("cacert"),
            cert=parsed.option("cert"),
            key=parsed.option("key"),
            user=parsed.user,
            password=parsed.password,
            timeout=timeout,
            scrub=parsed.scrub,
        )

    def __repr__(self) -> str:
        return f"<EtcdDatastore {self.url}>"

    def scrub(self, text: str) -> str:
        """Third-party text (httpx, the server) as fit for a message: no password in it."""
        return self._scrub(text)

    # -- transport ------------------------------------------------------------

    def _socket_path(self, path: str) -> str:
        """A path ``connect()`` accepts: AF_UNIX paths stop at 107 bytes, and
        temporary lab directories go deeper. Long ones are reached through an
        O_PATH descriptor of their directory (kept until ``close``)."""
        if len(path.encode()) < 100:
            return path
        directory, name = os.path.split(path)
        with self._lock:
            fd = self._dir_fds.get(directory)
            if fd is None:
                try:
                    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
                except OSError as exc:
                    raise Unavailable(f"cannot reach datastore {self.url}: {exc}") from exc
                self._dir_fds[directory] = fd
        return f"/proc/self/fd/{fd}/{name}"

    def make_client(self, ep: Endpoint) -> httpx.Client:
        """An httpx client for a watch stream on ``ep`` (no read timeout)."""
        import httpx

        uds = self._socket_path(ep.uds) if ep.uds else None
        transport = httpx.HTTPTransport(uds=uds, verify=self._verify, retries=0)
        timeout = httpx.Timeout(None, connect=self._connect_timeout)
        return httpx.Client(base_url=ep.base, transport=transport, timeout=timeout)

    def _tls(self, ep: Endpoint) -> ssl.SSLContext | None:
        if not ep.base.startswith("https:"):
            return None
        if isinstance(self._verify, ssl.SSLContext):
            return self._verify
        with self._lock:
            if not isinstance(self._verify, ssl.SSLContext):
                self._verify = ssl.create_default_context()
            return self._verify

    def _connection(self, index: int) -> GatewayConnection:
        with self._lock:
            if self._pid != os.getpid():
                # Inherited across fork: the parent's sockets are not ours to use.
                self._connections, self._pid, self._token = weakref.WeakSet(), os.getpid(), None
                self._local = threading.local()
        mine: dict[int, GatewayConnection] | None = getattr(self._local, "connections", None)
        if mine is None:
            mine = self._local.connections = {}
        conn = mine.get(index)
        if conn is None:
            ep = self._endpoints[index]
            uds = ep.uds
            conn = mine[index] = GatewayConnection(
                ep.base,
                uds=None if uds is None else partial(self._socket_path, uds),
                tls=self._tls(ep),
                timeout=self._timeout,
                connect_timeout=self._connect_timeout,
            )
            with self._lock:
                self._connections.add(conn)
        return conn

    def endpoints(self) -> list[Endpoint]:
        """Endpoints in the order to try them: the last one that worked first."""
        n = len(self._endpoints)
        return [self._endpoints[(self._current + i) % n] for i in range(n)]

    def headers(self) -> dict[str, str]:
        return {"Authorization": self._token} if self._token else {}

    def call(
        self,
        path: str,
        body: JSON,
        *,
        idempotent: bool = True,
        auth: bool = True,
        reauth: bool = True,
    ) -> JSON:
        """POST to the gateway with fail-over and retries of transient errors.

        Writes are retried when the request surely did not reach a member
        (connect errors), when the member refused it (no leader), and after an
        etcd "request timed out", which may still commit: a retried create may
        then report AlreadyExists and a retried update RevisionConflict. Both
        are the answers compare-and-swap callers already handle (re-read);
        nothing is written twice and no update is lost.
        """
        if self._closed:
            raise Unavailable(f"{self.url}: datastore is closed")
        if auth and self._user and self._token is None:
            self._authenticate()
        payload = json.dumps(body, separators=(",", ":")).encode()
        start = time.monotonic()
        last = ""
        while True:
            # Nobody answering at all rarely heals within seconds (unlike an
            # election): give up on that sooner.
            refused_only = True
            n = len(self._endpoints)
            for i in range(n):
                index = (self._current + i) % n
                ep = self._endpoints[index]
                try:
                    headers = self.headers() if auth else {}
                    resp = self._connection(index).post(path, payload, headers)
                except ConnectFailed as exc:
                    last = f"{ep.name}: {self._reason(exc)}"
                    continue
                except RequestFailed as exc:
                    if not idempotent:
                        raise Unavailable(
                            f"cannot reach datastore {self.url}: {ep.name}: {self._reason(exc)}"
                        ) from None
                    last = f"{ep.name}: {self._reason(exc)}"
                    refused_only = False
                    continue
                self._current = index
                try:
                    return self._decode(resp)
                except EtcdError as exc:
                    if exc.code == _UNAUTHENTICATED and auth and self._user and reauth:
                        # The token expired (etcd's simple tokens do): once more with a new one.
                        self._authenticate()
                        return self.call(path, body, idempotent=idempotent, reauth=False)
                    if exc.code in (_UNAVAILABLE, _DEADLINE_EXCEEDED) or any(
                        t in str(exc) for t in _TRANSIENT
                    ):
                        last = f"{ep.name}: {self._scrub(str(exc))}"
                        refused_only = False
                        continue
                    raise
            waited = time.monotonic() - start
            if waited >= self._retry_for or (refused_only and waited >= self._connect_retry_for):
                raise Unavailable(f"cannot reach datastore {self.url}: {last}")
            time.sleep(0.1)

    def _decode(self, resp: Reply) -> JSON:
        try:
            data: JSON = resp.json()
        except ValueError:
            if resp.status == 404:
                raise EtcdError(_NO_SUCH_PATH, f"no such gateway path {resp.path}") from None
            # Keep what the server said (etcd 3.4's gateway explains a refused
            # client certificate in plain text, for example).
            said = self._scrub(" ".join(resp.text.split())[:200])
            raise Unavailable(
                f"{self.url}: not an etcd gateway answer (HTTP {resp.status})"
                + (f": {said}" if said else "")
            ) from None
        if resp.status != 200 or "error" in data:
            code = data.get("code", 0) if isinstance(data, dict) else 0
            message = data.get("message") if isinstance(data, dict) else None
            raise EtcdError(
                int(code) if isinstance(code, int | str) and str(code).isdigit() else 0,
                self._scrub(str(message or data)[:500]),
            )
        return data

    def _authenticate(self) -> None:
        self._token = None
        try:
            data = self.call(
                "/v3/auth/authenticate",
                {"name": self._user, "password": self._password},
                auth=False,
            )
        except EtcdError as exc:
            raise Unavailable(
                f"{self.url}: authentication as {self._user!r} failed: {self._scrub(str(exc))}"
            ) from None
        self._token = str(data.get("token", "")) or None

    def reauthenticate(self) -> None:
        """Fetch a fresh token (a watch stream refused for an expired one); errors wait."""
        if self._user:
            with contextlib.suppress(DatastoreError):  # the next call retries and reports
                self._authenticate()

    # -- the contract -----------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        data = self.call("/v3/kv/range", {"key": b64(key)})
        kvs = data.get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        body = {"key": b64(prefix or "\0"), "range_end": b64(range_end(prefix))}
        data = self.call("/v3/kv/range", body)
        items = [_kv(kv) for kv in data.get("kvs") or []]
        return items, _revision(data)

    def _txn(self, compare: _Compares, success: JSON, failure: JSON | None) -> tuple[bool, JSON]:
        body: JSON = {"compare": compare, "success": [success]}
        if failure is not None:
            body["failure"] = [failure]
        try:
            data = self.call("/v3/kv/txn", body, idempotent=False)
        except EtcdError as exc:
            if exc.code == _NOT_FOUND and "lease" in str(exc):
                raise NotFound(f"{exc} (expired or revoked)") from None
            _raise_if_too_large(exc, compare[0]["key"])
            raise
        return bool(data.get("succeeded")), data

    def _put_op(self, key: str, value: JSON, lease: int) -> JSON:
        put: JSON = {"key": b64(key), "value": b64(encode_value(value))}
        if lease:
            put["lease"] = str(lease)
        return {"request_put": put}

    def create(self, key: str, value: JSON, *, lease: int = 0) -> int:
        ok, data = self._txn([_created_eq_zero(key)], self._put_op(key, value, lease), None)
        if not ok:
            raise AlreadyExists(f"{key} already exists")
        return _revision(data)

    def put_raw(self, key: str, data: bytes) -> int:
        body = {"key": b64(key), "value": b64(bytes(data))}
        try:
            reply = self.call("/v3/kv/put", body, idempotent=False)
        except EtcdError as exc:
            _raise_if_too_large(exc, body["key"])
            raise
        return _revision(reply)

    def update(self, key: str, value: JSON, *, revision: int, lease: int = 0) -> int:
        ok, data = self._txn(
            _exists_at(key, revision),
            self._put_op(key, value, lease),
            {"request_range": {"key": b64(key)}},
        )
        if not ok:
            _raise_conflict(key, revision, data)
        return _revision(data)

    def delete(self, key: str, *, revision: int | None = None) -> int:
        compare = _exists_at(key, revision)
        ok, data = self._txn(
            compare,
            {"request_delete_range": {"key": b64(key)}},
            {"request_range": {"key": b64(key)}},
        )
        if not ok:
            _raise_conflict(key, revision, data)
        return _revision(data)

    def txn(
        self,
        compares: Mapping[str, int],
        puts: Mapping[str, JSON] | None = None,
        deletes: Iterable[str] = (),
    ) -> TxnResult:
        texts, gone = check_txn(compares, puts or {}, deletes)
        keys = list(compares)
        body: JSON = {
            "compare": [_at_revision(key, rev) for key, rev in compares.items()],
            "success": [
                *({"request_put": {"key": b64(k), "value": b64(t)}} for k, t in texts.items()),
                *({"request_delete_range": {"key": b64(k)}} for k in gone),
            ],
            # On failure: the compared keys as they are, so the caller need not read again.
            "failure": [{"request_range": {"key": b64(key)}} for key in keys],
        }
        try:
            data = self.call("/v3/kv/txn", body, idempotent=False)
        except EtcdError as exc:
            first = next(iter(texts), None)
            if first is not None:
                _raise_if_too_large(exc, b64(first))
            raise
        revision = _revision(data)
        if data.get("succeeded"):
            return TxnResult(True, revision, revisions=dict.fromkeys(texts, revision))
        responses = data.get("responses") or []
        current: dict[str, KeyValue | None] = dict.fromkeys(keys)
        for key, response in zip(keys, responses, strict=False):
            kvs = (response.get("response_range") or {}).get("kvs") or []
            current[key] = _kv(kvs[0]) if kvs else None
        return TxnResult(False, revision, current=current)

    def watch(self, prefix: str, *, start_revision: int) -> Watch:
        from gingham.datastore.etcd_watch import EtcdWatch

        return EtcdWatch(self, prefix, start_revision)

    def revision(self) -> int:
        data = self.call("/v3/kv/range", {"key": b64("\0"), "count_only": True})
        return _revision(data)

    def grant_lease(self, ttl: int) -> int:
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")
        data = self.call("/v3/lease/grant", {"TTL": str(ttl)}, idempotent=False)
        return int(data["ID"])

    def keepalive(self, lease: int) -> None:
        data = self.call("/v3/lease/keepalive", {"ID": str(lease)})
        result = data.get("result") or {}
        if int(result.get("TTL", 0) or 0) <= 0:
            raise NotFound(f"lease {lease} not found (expired or revoked)")

    def revoke_lease(self, lease: int) -> None:
        """Delete the lease and its keys; revoking an unknown lease does nothing."""
        # 3.5 serves /v3/lease/revoke; older gateways only /v3/kv/lease/revoke.
        for path in ("/v3/lease/revoke", "/v3/kv/lease/revoke"):
            try:
                self.call(path, {"ID": str(lease)})
                return
            except EtcdError as exc:
                if exc.code == _NOT_FOUND:
                    return
                if exc.code != _NO_SUCH_PATH:
                    raise

    def compact(self, revision: int) -> None:
        try:
            self.call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        except EtcdError as exc:
            if exc.code == _OUT_OF_RANGE and "compacted" in str(exc):
                return  # already compacted at or beyond this revision
            if exc.code == _OUT_OF_RANGE and "future" in str(exc):
                raise ValidationError(f"cannot compact at revision {revision}: {exc}") from None
            raise

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._connections = list(self._connections), weakref.WeakSet()
            fds, self._dir_fds = self._dir_fds, {}
            mine = self._pid == os.getpid()
        for conn in conns if mine else ():
            # Another thread may be in a call on it: that call fails, as after close().
            with contextlib.suppress(OSError):
                conn.close()
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)


    def _reason(self, exc: Exception) -> str:
        text = str(exc).strip().splitlines()
        return self._scrub(text[-1]) if text else type(exc).__name__


def _scrub_password(text: str, password: str | None) -> str:
    return scrub(text, password)


def _raise_if_too_large(exc: EtcdError, key_b64: str) -> None:
    """etcd's size limits (--max-request-bytes, the gateway's 2 MiB) as one clear error."""
    text = str(exc)
    if "too large" in text or "larger than max" in text:
        raise DatastoreError(
            f"{unb64(key_b64)}: the value is too large for this etcd ({text});"
            " nothing was written"
        ) from None


def _revision(data: JSON) -> int:
    return int((data.get("header") or {}).get("revision", 0))


def _kv(raw: dict[str, Any]) -> KeyValue:
    key = unb64(raw.get("key", ""))
    return KeyValue(
        key=key,
        value=decode_b64_value(raw.get("value", "")),
        mod_revision=int(raw.get("mod_revision", 0)),
        create_revision=int(raw.get("create_revision", 0)),
        lease=int(raw.get("lease", 0)),
    )


def _created_eq_zero(key: str) -> JSON:
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}


def _at_revision(key: str, revision: int) -> JSON:
    """A compare: ``key`` is at ``revision`` (0: absent, which is CREATE == 0; a
    missing key's MOD is 0 too, so MOD == revision > 0 also means it exists)."""
    if revision == 0:
        return _created_eq_zero(key)
    return {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


def _exists_at(key: str, revision: int | None) -> list[JSON]:
    """Compares: the key exists and, if ``revision`` is given, is at it.

    A missing key has mod_revision 0 in etcd's eyes, so "MOD == 0" alone
    would let an update create a key: existence is always checked as well.
    """
    exists = {"key": b64(key), "target": "CREATE", "result": "GREATER", "create_revision": "0"}
    if revision is None:
        return [exists]
    at = {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}
    return [exists, at]


def _raise_conflict(key: str, revision: int | None, data: JSON) -> None:
    responses = data.get("responses") or [{}]
    kvs = (responses[0].get("response_range") or {}).get("kvs") or []
    if not kvs:
        raise NotFound(f"{key} not found")
    current = int(kvs[0].get("mod_revision", 0))
    raise RevisionConflict(f"{key} is at revision {current}, not {revision}: re-read and retry")
