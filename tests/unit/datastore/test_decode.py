"""Decoding stored bytes: every failure is an Undecodable with a reason, never an exception."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gingham.datastore.base import MAX_DEPTH, Undecodable, decode_value, encode_value
from gingham.datastore.etcd_codec import b64, decode_b64_value, unb64
from gingham.errors import ValidationError


@given(st.binary(max_size=200))
def test_any_bytes_decode_without_raising(data: bytes) -> None:
    value = decode_value(data)
    assert isinstance(value, dict)
    if isinstance(value, Undecodable):
        assert value.reason


@given(st.text(max_size=200))
def test_any_text_decodes_without_raising(text: str) -> None:
    assert isinstance(decode_value(text), dict)


def test_depth_limit_is_exact() -> None:
    def nested(levels: int) -> str:
        return '{"a":' * (levels - 1) + "{}" + "}" * (levels - 1)

    assert not isinstance(decode_value(nested(MAX_DEPTH)), Undecodable)
    assert isinstance(decode_value(nested(MAX_DEPTH + 1)), Undecodable)
    # Many brackets side by side are not depth.
    wide = '{"l": [' + ",".join(["[1]"] * 5000) + "]}"
    assert decode_value(wide) == {"l": [[1]] * 5000}


def test_undecodable_survives_copy_and_pickle() -> None:
    bad = Undecodable("raw text", "not JSON (x)")
    for twin in (copy.deepcopy(bad), copy.copy(bad), pickle.loads(pickle.dumps(bad))):
        assert isinstance(twin, Undecodable)
        assert (twin.raw, twin.reason) == ("raw text", "not JSON (x)")
        assert twin == bad
    assert bad != {}  # not the same as an empty document


def test_encode_refuses_what_decode_would_not_give_back() -> None:
    with pytest.raises(TypeError):
        encode_value(Undecodable("x", "y"))
    with pytest.raises(TypeError):
        encode_value([1])  # type: ignore[arg-type]
    deep: dict[str, object] = {}
    for _ in range(MAX_DEPTH + 1):
        deep = {"a": deep}
    with pytest.raises(ValidationError, match="nested deeper"):
        encode_value(deep)
    very_deep: dict[str, object] = {}
    for _ in range(100_000):
        very_deep = {"a": very_deep}
    with pytest.raises(ValidationError, match="nested deeper"):
        encode_value(very_deep)


def test_etcd_gateway_oddities() -> None:
    assert decode_b64_value(b64('{"v": 1}')) == {"v": 1}
    bad = decode_b64_value("%%% not base64 %%%")
    assert isinstance(bad, Undecodable) and "base64" in bad.reason
    odd = decode_b64_value(12)
    assert isinstance(odd, Undecodable)
    missing = decode_b64_value("")
    assert isinstance(missing, Undecodable) and "empty" in missing.reason
    # A key in bytes that are not UTF-8 comes back as the same bytes.
    key = unb64(b64(b"/k/\xff"))
    assert b64(key) == b64(b"/k/\xff")
