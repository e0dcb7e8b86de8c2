"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), the functions under ``gingham patch``."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gingham.cli.patching import json_patch, merge_patch
from gingham.errors import ValidationError


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # RFC 7386, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc_7386_examples(target: Any, patch: Any, result: Any) -> None:
    before = copy.deepcopy(target)
    assert merge_patch(target, patch) == result
    assert target == before  # the input is not changed


DOC = {"spec": {"order": 1, "ports": [80, 443], "a/b": {"m~n": 1}}, "metadata": {"name": "x"}}


@pytest.mark.parametrize(
    ("ops", "result"),
    [
        ([{"op": "replace", "path": "/spec/order", "value": 5}],
         {**DOC, "spec": {**DOC["spec"], "order": 5}}),
        ([{"op": "add", "path": "/spec/ports/-", "value": 8080}],
         {**DOC, "spec": {**DOC["spec"], "ports": [80, 443, 8080]}}),
        ([{"op": "add", "path": "/spec/ports/0", "value": 22}],
         {**DOC, "spec": {**DOC["spec"], "ports": [22, 80, 443]}}),
        ([{"op": "remove", "path": "/spec/ports/1"}],
         {**DOC, "spec": {**DOC["spec"], "ports": [80]}}),
        ([{"op": "remove", "path": "/spec/a~1b/m~0n"}],
         {**DOC, "spec": {**DOC["spec"], "a/b": {}}}),
        ([{"op": "test", "path": "/spec/order", "value": 1},
          {"op": "copy", "from": "/spec/order", "path": "/spec/tier"}],
         {**DOC, "spec": {**DOC["spec"], "tier": 1}}),
        ([{"op": "move", "from": "/spec/order", "path": "/metadata/order"}],
         {"spec": {k: v for k, v in DOC["spec"].items() if k != "order"},
          "metadata": {"name": "x", "order": 1}}),
        ([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}],
         {**DOC, "metadata": {"name": "x", "labels": {"a": "b"}}}),
    ],
)  # fmt: skip
def test_json_patch_operations(ops: list[dict[str, Any]], result: Any) -> None:
    before = copy.deepcopy(DOC)
    assert json_patch(DOC, ops) == result
    assert before == DOC


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ({"op": "add"}, "a JSON patch is a list of operations"),
        ([{"op": "frob", "path": "/a"}], "patch operation 1: op must be one of"),
        ([{"op": "add", "path": "/spec/x", "value": 1},
          {"op": "replace", "path": "/spec/nope", "value": 1}],
         r"patch operation 2 \(replace /spec/nope\): /spec/nope does not exist"),
        ([{"op": "remove", "path": "/spec/ports/2"}], "index 2 is out of range"),
        ([{"op": "add", "path": "/spec/ports/01", "value": 1}], "'01' is not an array index"),
        ([{"op": "test", "path": "/spec/order", "value": True}], "test failed"),
        ([{"op": "add", "path": "spec", "value": 1}], "starts with '/'"),
        ([{"op": "add", "path": "/spec/order/x", "value": 1}], "/spec/order is a number"),
        ([{"op": "replace", "path": "/spec/order"}], "'value' is missing"),
        ([{"op": "move", "from": "/spec", "path": "/spec/inner"}], "into itself"),
    ],
)  # fmt: skip
def test_json_patch_errors_name_the_operation(ops: Any, message: str) -> None:
    before = copy.deepcopy(DOC)
    with pytest.raises(ValidationError, match=message):
        json_patch(DOC, ops)
    assert before == DOC  # nothing applied, not even the operations before the bad one
