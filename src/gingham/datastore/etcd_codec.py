"""How the etcd gateway spells keys, values and ranges (base64, byte-wise range ends).

Shared by the backend (``etcd.py``) and its watches (``etcd_watch.py``), which
both read what the gateway sends; neither imports the other at run time.
"""

from __future__ import annotations

import base64

from gingham.datastore.base import JSON, Undecodable, decode_value


def b64(text: str | bytes) -> str:
    # surrogateescape: a key another program wrote in bytes that are not
    # UTF-8 comes back as the same bytes, so it can still be read or deleted.
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str) -> str:
    """A key from the gateway; never raises (see ``b64``)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return text  # not base64 at all: keep what the gateway said, visibly wrong
    return raw.decode("utf-8", "surrogateescape")


def range_end(prefix: str) -> bytes:
    """etcd's range end for a prefix: the prefix with its last byte bumped."""
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return bytes(raw)
        raw.pop()
    return b"\0"  # every key


def decode_b64_value(raw: object) -> JSON:
    """A stored value as the gateway hands it (base64); an Undecodable, never an exception."""
    if not isinstance(raw, str):
        return Undecodable(repr(raw), "the gateway sent a value that is not a base64 string")
    try:
        data = base64.b64decode(raw, validate=True)
    except ValueError:
        return Undecodable(raw, "the gateway sent a value that is not valid base64")
    return decode_value(data)
