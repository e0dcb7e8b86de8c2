"""The YAML loader: YAML 1.1 surprises off, duplicate keys refused, errors located."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.errors import ValidationError
from gingham.model import ManifestError, load_manifests
from gingham.model.yamlio import PyLoader, dump_yaml, load_yaml_documents


def one(text: str) -> object:
    [doc] = load_yaml_documents(text)
    # The pure-Python parser (used where PyYAML lacks libyaml) must agree.
    assert load_yaml_documents(text, PyLoader) == [doc]
    return doc


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        ("1:30", "1:30"),
        ("on", "on"),
        ("off", "off"),
        ("yes", "yes"),
        ("no", "no"),
        ("y", "y"),
        ("On", "On"),
        ("2024-01-01", "2024-01-01"),
        ("1_000", "1_000"),
        ("true", True),
        ("False", False),
        ("12", 12),
        ("-3", -3),
        ("0o17", 15),
        ("0x1f", 31),
        ("0755", 755),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("null", None),
        ("~", None),
        ("", None),
        ("'1:30'", "1:30"),
        ("'true'", "true"),
    ],
)
def test_plain_scalars_follow_yaml_1_2(scalar: str, expected: object) -> None:
    value = one(f"v: {scalar}\n")
    assert value == {"v": expected}
    if expected is not None:
        assert type(value["v"]) is type(expected)  # type: ignore[index]


def test_duplicate_key_is_an_error_naming_both_lines() -> None:
    with pytest.raises(ManifestError) as info:
        load_manifests("apiVersion: v1\nkind: Namespace\nkind: Namespace\n")
    message = str(info.value)
    assert "duplicate key 'kind'" in message
    assert "line 3" in message and "first at line 2" in message


@pytest.mark.parametrize("loader", [None, PyLoader])
def test_duplicate_key_in_nested_mapping(loader: type[PyLoader] | None) -> None:
    with pytest.raises(ManifestError, match=r"line 4.*duplicate key 'a'"):
        load_yaml_documents("x:\n  a: 1\n  b: 2\n  a: 3\n", loader)


def test_invalid_yaml_names_document_and_line() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [\n"
    with pytest.raises(ValidationError) as info:
        load_manifests(text)
    assert "doc 2" in str(info.value)
    assert "line" in str(info.value)


def test_empty_documents_are_skipped() -> None:
    assert load_manifests("---\n---\n") == []
    assert load_yaml_documents("---\na: 1\n---\n") == [{"a": 1}]


def test_dumper_quotes_strings_that_look_like_other_types() -> None:
    text = dump_yaml(
        load_manifests(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  annotations:\n"
            "    a: '1:30'\n    b: 'yes'\n    c: '0o17'\n    d: '12'\n    e: 'null'\n"
            "    f: '2024-01-01'\n    g: 'true'\n"
        )
    )
    for token in ("'1:30'", "'yes'", "'0o17'", "'12'", "'null'", "'2024-01-01'", "'true'"):
        assert token in text
    [ns] = load_manifests(text)
    assert ns.metadata.annotations["c"] == "0o17"


def test_json_is_yaml() -> None:
    [ns] = load_manifests('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}')
    assert ns.name == "a"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_any_string_survives_dump_and_load(value: str) -> None:
    [ns] = load_manifests(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
    ns = ns.model_copy(update={"metadata": ns.metadata.model_copy(
        update={"annotations": {"note": value}})})
    [again] = load_manifests(dump_yaml([ns]))
    assert again.metadata.annotations == {"note": value}
