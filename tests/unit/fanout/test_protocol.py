"""The fan-out wire format: limits, and ProtocolError for every malformed frame (pure, no I/O)."""

from __future__ import annotations

import contextlib
import json
import time
import tracemalloc

import pytest

from gingham.datastore.base import Undecodable
from gingham.errors import ProtocolError, ValidationError
from gingham.fanout.protocol import (
    HEADER,
    MAX_DEPTH,
    MAX_VALUE_DEPTH,
    Frame,
    FrameDecoder,
    encode_frames,
)


def _framed(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_protocol_error_is_a_validation_error() -> None:
    # Callers that already catch ValidationError for bad input keep working.
    assert issubclass(ProtocolError, ValidationError)


def test_a_huge_length_prefix_is_refused_from_the_header_alone() -> None:
    decoder = FrameDecoder(max_frame=4 << 20)
    tracemalloc.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(ProtocolError, match="announced length 268435456"):
            decoder.feed(HEADER.pack(256 << 20) + b"{")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert time.monotonic() - t0 < 10  # nothing read or allocated for the body


MALFORMED = {
    "zero length": HEADER.pack(0),
    "not UTF-8": _framed(b'{"t":"ping","rev":1,"x":"\xff"}'),
    "not JSON": _framed(b"{oops"),
    "a JSON list": _framed(b"[1,2]"),
    "a JSON string": _framed(b'"ping"'),
    "unknown type": _framed(b'{"t":"hello","rev":1}'),
    "type not a string": _framed(b'{"t":5,"rev":1}'),
    "no type": _framed(b'{"rev":1}'),
    "missing items": _framed(b'{"t":"snapshot","rev":1}'),
    "unknown field": _framed(b'{"t":"ping","rev":1,"extra":true}'),
    "rev a string": _framed(b'{"t":"ping","rev":"1"}'),
    "rev a bool": _framed(b'{"t":"ping","rev":true}'),
    "rev negative": _framed(b'{"t":"ping","rev":-1}'),
    "items not a list": _framed(b'{"t":"snapshot","rev":1,"items":{}}'),
    "more not a bool": _framed(b'{"t":"snapshot","rev":1,"items":[],"more":1}'),
    "item too short": _framed(b'{"t":"deltas","rev":1,"updates":[["/a"]]}'),
    "item key not a string": _framed(b'{"t":"deltas","rev":1,"updates":[[1,{}]]}'),
    "value a number": _framed(b'{"t":"deltas","rev":1,"updates":[["/a",5]]}'),
    "value a list": _framed(b'{"t":"deltas","rev":1,"updates":[["/a",[1]]]}'),
    "bad undecodable item": _framed(
        b'{"t":"deltas","rev":1,"updates":[["/a",{},{"reason":"x","raw":"y"}]]}'
    ),
    "undecodable without raw": _framed(
        b'{"t":"deltas","rev":1,"updates":[["/a",null,{"reason":"x"}]]}'
    ),
    "error reason not a string": _framed(b'{"t":"error","rev":1,"reason":5}'),
    "huge integer": _framed(b'{"t":"ping","rev":' + b"9" * 5000 + b"}"),
    "nesting past the recursion limit": _framed(b"[" * 200_000 + b"]" * 200_000),
    "nesting in a value past MAX_DEPTH": _framed(
        b'{"t":"deltas","rev":1,"updates":[["/a",'
        + json.dumps(_nested(MAX_DEPTH)).encode()
        + b"]]}"
    ),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_every_malformed_frame_is_a_protocol_error(data: bytes) -> None:
    decoder = FrameDecoder()
    ok = b"".join(encode_frames(Frame("ping", 3)))
    with pytest.raises(ProtocolError, match="fan-out frame 1"):
        decoder.feed(ok + data)  # names the position: frame 1, after a good one


def test_nothing_but_protocol_error_escapes_random_bytes() -> None:
    import random

    rng = random.Random(12)
    ok = b"".join(encode_frames(Frame("deltas", 5, (("/k", {"a": [1, {"b": None}]}),))))
    for _ in range(2000):
        data = bytearray(ok)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        with contextlib.suppress(ProtocolError):
            FrameDecoder(max_frame=4096).feed(bytes(data))


def test_undecodable_values_cross_the_wire_as_undecodable() -> None:
    bad = Undecodable("{not json", "not JSON: Expecting property name")
    (data,) = encode_frames(Frame("deltas", 9, (("/a", bad), ("/b", {"ok": 1}), ("/c", None))))
    (frame,) = FrameDecoder().feed(data)
    got = dict(frame.updates)
    assert isinstance(got["/a"], Undecodable) and got["/a"] == bad
    assert got["/b"] == {"ok": 1} and got["/c"] is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (_nested(MAX_VALUE_DEPTH + 1), "nested deeper"),
        ({"blob": "x" * 20000}, "larger than a fan-out frame"),
        ({"nan": float("nan"), "bad": {1, 2}}, "cannot be encoded"),
        (["not", "an", "object"], "not a JSON object"),
    ],
    ids=["too deep", "too large", "not encodable", "not an object"],
)
def test_a_value_the_reader_would_refuse_is_sent_as_undecodable(value: object, reason: str) -> None:
    frames = encode_frames(Frame("deltas", 2, (("/bad", value), ("/good", {"v": 1}))), 16384)  # type: ignore[arg-type]
    decoder = FrameDecoder(max_frame=16384)
    updates = [u for data in frames for u in decoder.feed(data)[0].updates]
    got = dict(updates)
    assert isinstance(got["/bad"], Undecodable) and reason in got["/bad"].reason
    assert got["/good"] == {"v": 1}


def test_a_value_at_the_depth_limit_is_sent_as_is() -> None:
    value = _nested(MAX_VALUE_DEPTH)
    frames = encode_frames(Frame("deltas", 2, (("/deep", value),)))
    (frame,) = FrameDecoder().feed(b"".join(frames))
    assert frame.updates == (("/deep", value),)


def test_a_large_snapshot_is_split_into_parts_within_the_cap() -> None:
    items = tuple((f"/k/{i:05d}", {"v": "x" * 100}) for i in range(2000))
    frames = encode_frames(Frame("snapshot", 11, items), max_frame=8192)
    assert len(frames) > 20
    assert all(len(f) <= 8192 + HEADER.size for f in frames)
    decoder = FrameDecoder(max_frame=8192)
    parts = [p for f in frames for p in decoder.feed(f)]
    assert [p.more for p in parts] == [True] * (len(parts) - 1) + [False]
    assert tuple(u for p in parts for u in p.updates) == items


def test_an_empty_snapshot_is_one_final_frame() -> None:
    (data,) = encode_frames(Frame("snapshot", 1))
    assert FrameDecoder().feed(data) == [Frame("snapshot", 1, (), more=False)]


def test_error_frames_carry_the_reason() -> None:
    (data,) = encode_frames(Frame("error", 4, reason="server full: 2 clients"))
    assert FrameDecoder().feed(data) == [Frame("error", 4, reason="server full: 2 clients")]
