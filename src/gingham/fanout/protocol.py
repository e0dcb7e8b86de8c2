"""Frames between the fan-out server and its clients. No I/O here.

A frame is a 4-byte big-endian length, then that many bytes of one UTF-8
JSON object::

    {"t": "snapshot", "rev": R, "more": bool, "items": [item, ...]}
    {"t": "deltas", "rev": R, "updates": [item, ...]}
    {"t": "ping", "rev": R}                        the server is alive (every few seconds)
    {"t": "stale", "rev": R, "reason": "..."}    the server lost the datastore: what the
                                                   client has may be stale until the next snapshot
    {"t": "error", "rev": R, "reason": "..."}    the server's last word before it closes

    item: [key, {...}]                             the key's value now
          [key, null]                              the key is absent now
          [key, null, {"reason": s, "raw": s}]     present, but its value does not decode

A snapshot may span several frames (``"more": true`` on all but the last),
so no frame has to hold the whole state of a large cluster.

The length comes first so that a reader can refuse an oversized frame from
its four header bytes, before reading or allocating the body (a newline
delimited stream has to be read until the newline to learn its size).
Every way a frame can be wrong -- length, UTF-8, JSON, shape, types,
nesting, message type -- raises :class:`~gingham.errors.ProtocolError`;
nothing else escapes :class:`FrameDecoder` (not even ``RecursionError``).

The sender keeps every frame within the limits the reader enforces: a value
that is too large, too deeply nested or not encodable travels as the
"does not decode" item and reaches the consumer as
:class:`~gingham.datastore.base.Undecodable`, as if the datastore had held
bad bytes. It costs that key only; a frame the reader refused would cost
the connection, again on every reconnect.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gingham.datastore.base import Undecodable
from gingham.errors import ProtocolError

log = logging.getLogger(__name__)

KINDS = ("snapshot", "deltas", "ping", "stale", "error")
HEADER = struct.Struct(">I")
# A few MiB: room for a few thousand resources a frame. Values the datastore
# holds are far smaller (etcd refuses requests above 1.5 MiB by default).
DEFAULT_MAX_FRAME = 4 << 20
# Nesting of a whole frame: three levels of framing (frame, list, item) plus
# the value. Resources nest less than ten levels; the margin is for what an
# operator may store in annotations.
MAX_DEPTH = 64
MAX_VALUE_DEPTH = MAX_DEPTH - 3
# The stored text of an undecodable value travels for the log line, shortened.
MAX_RAW = 4096

Update = tuple[str, dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class Frame:
    kind: str
    revision: int
    updates: tuple[Update, ...] = ()
    more: bool = False  # snapshot: further parts follow
    reason: str = ""  # error: why the server closes; stale: why it lost the datastore


# -- encoding ------------------------------------------------------------------


def _too_deep(value: Any, limit: int) -> bool:
    """True if ``value`` nests more than ``limit`` containers; iterative, so depth costs no stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Iterable[Any] = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend(
            (child, depth + 1) for child in children if isinstance(child, dict | list | tuple)
        )
    return False


def _undecodable_item(key: str, raw: str, reason: str) -> bytes:
    if len(raw) > MAX_RAW:
        raw = raw[:MAX_RAW] + f"... ({len(raw)} characters)"
    return _dumps([key, None, {"reason": reason, "raw": raw}])


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def encode_item(key: str, value: Any, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """One item as JSON bytes, within the limits the reader enforces (see the module doc)."""
    if value is None:
        return _dumps([key, None])
    if isinstance(value, Undecodable):
        return _undecodable_item(key, value.raw, value.reason)
    if not isinstance(value, dict):
        return _undecodable_item(key, repr(value), f"not a JSON object ({type(value).__name__})")
    if _too_deep(value, MAX_VALUE_DEPTH):
        return _undecodable_item(key, "", f"nested deeper than {MAX_VALUE_DEPTH} levels")
    try:
        data = _dumps([key, value])
    except (TypeError, ValueError, RecursionError) as exc:
        return _undecodable_item(key, repr(value)[:MAX_RAW], f"cannot be encoded: {exc}")
    if len(data) > max_frame - 256:  # room for the frame around one item
        return _undecodable_item(
            key, data[: MAX_RAW * 2].decode(errors="replace"),
            f"{len(data)} bytes: larger than a fan-out frame ({max_frame})",
        )  # fmt: skip
    return data


def _frame_bytes(head: bytes, field: bytes, items: Sequence[bytes]) -> bytes:
    body = b"".join((head, b',"', field, b'":[', b",".join(items), b"]}"))
    return HEADER.pack(len(body)) + body


def encode_frames(frame: Frame, max_frame: int = DEFAULT_MAX_FRAME) -> list[bytes]:
    """``frame`` as one or more wire frames of at most ``max_frame`` bytes each.

    A snapshot is split into parts marked ``more``; deltas are split into
    independent frames in order. Each item is encoded once, however many
    frames result.
    """
    if frame.kind in ("ping", "stale", "error"):
        body: dict[str, Any] = {"t": frame.kind, "rev": frame.revision}
        if frame.kind != "ping":
            body["reason"] = frame.reason[:MAX_RAW]
        data = _dumps(body)
        return [HEADER.pack(len(data)) + data]
    if frame.kind not in ("snapshot", "deltas"):
        raise ValueError(f"unknown frame kind {frame.kind!r}")
    items: list[bytes] = []
    for key, value in frame.updates:
        if len(key) > max_frame // 4:
            # Not even "this key does not decode" fits: a key this long is
            # no resource key. Said loudly; the frame stays readable.
            log.error("fan-out: key of %d characters not sent: %.200s...", len(key), key)
            continue
        items.append(encode_item(key, value, max_frame))
    # Parts: runs of items whose frame stays within max_frame (64 bytes cover the head).
    parts: list[list[bytes]] = [[]]
    size = 64
    for item in items:
        if parts[-1] and size + len(item) + 1 > max_frame:
            parts.append([])
            size = 64
        parts[-1].append(item)
        size += len(item) + 1
    out: list[bytes] = []
    for i, part in enumerate(parts):
        if frame.kind == "snapshot":
            more = "true" if i < len(parts) - 1 else "false"
            head = f'{{"t":"snapshot","rev":{frame.revision},"more":{more}'.encode()
            out.append(_frame_bytes(head, b"items", part))
        else:
            head = f'{{"t":"deltas","rev":{frame.revision}'.encode()
            out.append(_frame_bytes(head, b"updates", part))
    return out


def encode_frame(frame: Frame, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """All wire frames of ``frame``, concatenated."""
    return b"".join(encode_frames(frame, max_frame))


# -- decoding ------------------------------------------------------------------

_FIELDS = {
    "snapshot": ({"t", "rev", "items"}, {"more"}),
    "deltas": ({"t", "rev", "updates"}, set()),
    "ping": ({"t", "rev"}, set()),
    "stale": ({"t", "rev", "reason"}, set()),
    "error": ({"t", "rev", "reason"}, set()),
}


def _item(raw: Any, where: str) -> Update:
    if not (isinstance(raw, list) and len(raw) in (2, 3) and isinstance(raw[0], str)):
        raise ProtocolError("must be [key, value] or [key, null, {reason, raw}]", where)
    key, value = raw[0], raw[1]
    if len(raw) == 3:
        bad = raw[2]
        if not (
            value is None
            and isinstance(bad, dict)
            and set(bad) == {"reason", "raw"}
            and isinstance(bad["reason"], str)
            and isinstance(bad["raw"], str)
        ):
            raise ProtocolError("an undecodable item must be [key, null, {reason, raw}]", where)
        return key, Undecodable(bad["raw"], bad["reason"])
    if value is not None and not isinstance(value, dict):
        raise ProtocolError(f"value must be an object or null, not {type(value).__name__}", where)
    return key, value


def decode_body(body: bytes, position: int = 0) -> Frame:
    """One frame's JSON body as a :class:`Frame`; :class:`ProtocolError` for anything else."""
    where = f"fan-out frame {position}"
    try:
        doc = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"not UTF-8: {exc.reason} at byte {exc.start}", where) from None
    except RecursionError:
        raise ProtocolError("nested too deeply to decode", where) from None
    except ValueError as exc:  # json.JSONDecodeError, and over-long integers
        raise ProtocolError(f"not JSON: {exc}", where) from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"must be a JSON object, not {type(doc).__name__}", where)
    kind = doc.get("t")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ProtocolError(
            f"unknown message type {kind!r} (want one of {', '.join(KINDS)})", where
        )
    required, optional = _FIELDS[kind]
    missing = required - set(doc)
    if missing:
        raise ProtocolError(f"{kind} frame lacks {', '.join(sorted(missing))}", where)
    extra = set(doc) - required - optional
    if extra:
        raise ProtocolError(f"{kind} frame has unknown fields {', '.join(sorted(extra))}", where)
    rev = doc["rev"]
    if not isinstance(rev, int) or isinstance(rev, bool) or rev < 0:
        raise ProtocolError("'rev' must be a non-negative integer", where)
    # Nesting needs an opening bracket a level: a frame with fewer than MAX_DEPTH of
    # them (every delta of a resource or two) cannot be too deep, and counting bytes
    # costs a hundredth of walking the document, which every agent does per frame.
    if body.count(b"{") + body.count(b"[") > MAX_DEPTH and _too_deep(doc, MAX_DEPTH):
        raise ProtocolError(f"nested deeper than {MAX_DEPTH} levels", where)
    if kind in ("error", "stale"):
        if not isinstance(doc["reason"], str):
            raise ProtocolError("'reason' must be a string", where)
        return Frame(kind, rev, reason=doc["reason"])
    if kind == "ping":
        return Frame(kind, rev)
    field = "items" if kind == "snapshot" else "updates"
    raw = doc[field]
    if not isinstance(raw, list):
        raise ProtocolError(f"'{field}' must be a list", where)
    more = doc.get("more", False)
    if not isinstance(more, bool):
        raise ProtocolError("'more' must be true or false", where)
    updates = tuple(_item(item, f"{where}: {field}[{i}]") for i, item in enumerate(raw))
    return Frame(kind, rev, updates, more=more)


class FrameDecoder:
    """Incremental reader: bytes in (as they arrive), whole frames out.

    Memory stays within one frame plus one read: a header announcing more
    than ``max_frame`` bytes is refused as soon as its four bytes are in.
    After a :class:`ProtocolError` the stream has no trustworthy frame
    boundary left; the caller drops the connection (and resyncs).
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.frames = 0  # decoded so far, to name the position of a bad one
        self._buf = bytearray()
        self._need = 0  # body length of the frame being read; 0 while reading a header

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        pos = 0
        try:
            while True:
                if not self._need:
                    if len(self._buf) - pos < HEADER.size:
                        break
                    (length,) = HEADER.unpack_from(self._buf, pos)
                    if length == 0 or length > self.max_frame:
                        raise ProtocolError(
                            f"announced length {length} is not within 1..{self.max_frame}",
                            f"fan-out frame {self.frames}",
                        )
                    pos += HEADER.size
                    self._need = length
                if len(self._buf) - pos < self._need:
                    break
                body = bytes(self._buf[pos : pos + self._need])
                pos += self._need
                self._need = 0
                frames.append(decode_body(body, self.frames))
                self.frames += 1
        finally:
            del self._buf[:pos]
        return frames
