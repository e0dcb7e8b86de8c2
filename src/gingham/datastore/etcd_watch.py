"""etcd watches over the gateway's streaming ``POST /v3/watch``.

A background thread reads the newline-delimited JSON stream into a queue;
``next_batch`` drains it. When a member goes away the thread reconnects to
the next endpoint from the revision after the last one delivered, so the
consumer sees no gap and no duplicate. A compacted start revision arrives as
``canceled`` with ``compact_revision`` (the stream stays open): that becomes
:class:`ResyncRequired`, raised to the consumer, and the thread stops.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx

from gingham.datastore.base import EventType, Watch, WatchEvent
from gingham.datastore.etcd_codec import b64, decode_b64_value, range_end, unb64
from gingham.errors import DatastoreError, ResyncRequired, Unavailable

if TYPE_CHECKING:
    from gingham.datastore.etcd import Endpoint, EtcdDatastore

_Item = list[WatchEvent] | DatastoreError


class _StreamBroken(Exception):
    pass


class EtcdWatch(Watch):
    def __init__(self, ds: EtcdDatastore, prefix: str, start_revision: int) -> None:
        self._ds = ds
        self._prefix = prefix
        self._next = max(start_revision, 1)
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._error: DatastoreError | None = None
        self._closed = threading.Event()
        self._sock: socket.socket | None = None
        self._client: httpx.Client | None = None
        self._thread = threading.Thread(target=self._run, name=f"etcd-watch {prefix}", daemon=True)
        self._thread.start()

    # -- consumer side ------------------------------------------------------------

    def next_batch(self, timeout: float) -> list[WatchEvent]:
        if self._error is not None:
            raise self._error
        try:
            first = self._queue.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return []
        events: list[WatchEvent] = []
        item: _Item | None = first
        while item is not None:
            if isinstance(item, DatastoreError):
                self._error = item
                break
            events.extend(item)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                item = None
        if not events and self._error is not None:
            raise self._error
        return events

    def close(self) -> None:
        self._closed.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            # Closing a socket does not wake a thread blocked reading it; shutdown does.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        client = self._client
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        self._thread.join(timeout=2.0)

    # -- the reader thread ------------------------------------------------------------

    def _run(self) -> None:
        failing_since: float | None = None
        last = ""
        while not self._closed.is_set():
            for ep in self._ds.endpoints():
                if self._closed.is_set():
                    return
                try:
                    if self._stream(ep):
                        return
                    failing_since = None
                except (ResyncRequired, DatastoreError) as exc:
                    self._queue.put(exc)
                    return
                except (httpx.HTTPError, OSError, _StreamBroken, ValueError) as exc:
                    # httpx and server text may embed URLs: scrubbed before it is kept.
                    reason = self._ds.scrub(str(exc).strip()) or type(exc).__name__
                    last = f"{ep.name}: {reason}"
                    if self._closed.is_set():
                        return
                    if "token" in last:
                        self._ds.reauthenticate()
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
            elif now - failing_since > self._ds._retry_for:
                self._queue.put(Unavailable(f"watch on {self._ds.url} lost: {last}"))
                return
            time.sleep(0.2)

    def _stream(self, ep: Endpoint) -> bool:
        """Read one stream until it breaks; True when the watch was closed."""
        body = {
            "create_request": {
                "key": b64(self._prefix or "\0"),
                "range_end": b64(range_end(self._prefix)),
                "start_revision": str(self._next),
            }
        }
        client = self._client = self._ds.make_client(ep)
        try:
            with client.stream("POST", "/v3/watch", json=body, headers=self._ds.headers()) as resp:
                stream = resp.extensions.get("network_stream")
                if stream is not None:
                    self._sock = stream.get_extra_info("socket")
                if self._closed.is_set():
                    return True
                if resp.status_code != 200:
                    raise _StreamBroken(f"HTTP {resp.status_code}")
                for line in resp.iter_lines():
                    if self._closed.is_set():
                        return True
                    if line.strip():
                        self._handle(json.loads(line))
        finally:
            self._sock = None
            client.close()
        if self._closed.is_set():
            return True
        raise _StreamBroken("stream ended")

    def _handle(self, msg: dict[str, Any]) -> None:
        if "error" in msg:
            err = msg["error"]
            raise _StreamBroken(str(err.get("message", err) if isinstance(err, dict) else err))
        result = msg.get("result") or {}
        compact = int(result.get("compact_revision", 0) or 0)
        if compact > 0:
            raise ResyncRequired(
                f"{self._ds.url}: revision {self._next} was compacted (oldest kept: {compact})"
            )
        if result.get("canceled"):
            raise _StreamBroken(str(result.get("cancel_reason") or "watch canceled"))
        events = [_event(e) for e in result.get("events") or []]
        if events:
            self._next = events[-1].revision + 1
            self._queue.put(events)


def _event(raw: dict[str, Any]) -> WatchEvent:
    kv = raw.get("kv") or {}
    key = unb64(kv.get("key", ""))
    revision = int(kv.get("mod_revision", 0))
    # PUT events carry no "type" field: absent means PUT.
    if raw.get("type") == "DELETE":
        return WatchEvent(EventType.DELETE, key, None, revision)
    return WatchEvent(EventType.PUT, key, decode_b64_value(kv.get("value", "")), revision)
