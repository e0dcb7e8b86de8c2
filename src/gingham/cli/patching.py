"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902) over plain JSON values.

Pure functions: they return a new document and never change their inputs. A
JSON patch that cannot be applied raises ValidationError naming the operation
(1-based, as the user counts) and its path; nothing of it is applied.
"""

from __future__ import annotations

import copy
from typing import Any

from gingham.errors import ValidationError


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_OPS = ("add", "remove", "replace", "move", "copy", "test")


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902: apply ``operations`` (a list of ``{op, path, ...}``) in order, all or none."""
    if not isinstance(operations, list):
        raise ValidationError(
            f"a JSON patch is a list of operations, got {_type(operations)}", location="patch"
        )
    result = copy.deepcopy(doc)
    for index, operation in enumerate(operations):
        where = f"patch operation {index + 1}"
        if not isinstance(operation, dict):
            raise ValidationError(f"must be an object, got {_type(operation)}", location=where)
        op = operation.get("op")
        path = operation.get("path")
        if op not in _OPS:
            raise ValidationError(
                f"op must be one of {', '.join(_OPS)}, got {op!r}", location=where
            )
        if not isinstance(path, str):
            raise ValidationError("path must be a string (a JSON pointer)", location=where)
        where = f"{where} ({op} {path})"
        try:
            result = _apply(result, op, path, operation)
        except _PatchFailed as exc:
            raise ValidationError(str(exc), location=where) from None
    return result


class _PatchFailed(Exception):
    pass


def _apply(doc: Any, op: str, path: str, operation: dict[str, Any]) -> Any:
    if op in ("add", "replace", "test") and "value" not in operation:
        raise _PatchFailed("'value' is missing")
    if op in ("move", "copy"):
        source = operation.get("from")
        if not isinstance(source, str):
            raise _PatchFailed("'from' must be a string (a JSON pointer)")
        if op == "move" and path.startswith(source + "/"):
            raise _PatchFailed(f"cannot move {source!r} into itself")
        value = copy.deepcopy(_get(doc, _pointer(source)))
        if op == "move":
            doc = _remove(doc, _pointer(source))
        return _add(doc, _pointer(path), value)
    tokens = _pointer(path)
    if op == "add":
        return _add(doc, tokens, copy.deepcopy(operation["value"]))
    if op == "remove":
        return _remove(doc, tokens)
    if op == "replace":
        _get(doc, tokens)  # must exist
        return _add(_remove(doc, tokens), tokens, copy.deepcopy(operation["value"]))
    current = _get(doc, tokens)
    if current != operation["value"] or not _same_types(current, operation["value"]):
        raise _PatchFailed(f"test failed: the value there is {current!r}")
    return doc


def _same_types(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == True`` and ``1 == 1.0`` in Python, not in JSON."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return all(_same_types(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    return True


def _pointer(path: str) -> list[str]:
    """RFC 6901: ``/a/b~1c`` -> ``["a", "b/c"]``; ``""`` is the whole document."""
    if path == "":
        return []
    if not path.startswith("/"):
        raise _PatchFailed(f"a JSON pointer starts with '/', got {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(container: list[Any], token: str, *, end_ok: bool) -> int:
    if token == "-" and end_ok:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise _PatchFailed(f"{token!r} is not an array index")
    index = int(token)
    if index > len(container) or (index == len(container) and not end_ok):
        raise _PatchFailed(f"index {index} is out of range (length {len(container)})")
    return index


def _get(doc: Any, tokens: list[str]) -> Any:
    for depth, token in enumerate(tokens):
        if isinstance(doc, dict):
            if token not in doc:
                raise _PatchFailed(f"{_show(tokens[: depth + 1])} does not exist")
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_index(doc, token, end_ok=False)]
        else:
            raise _PatchFailed(f"{_show(tokens[:depth])} is {_type(doc)}, not an object or array")
    return doc


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, end_ok=True), value)
    else:
        raise _PatchFailed(f"{_show(tokens[:-1])} is {_type(parent)}, not an object or array")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise _PatchFailed("cannot remove the whole document")
    parent = _get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchFailed(f"{_show(tokens)} does not exist")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, end_ok=False)]
    else:
        raise _PatchFailed(f"{_show(tokens[:-1])} is {_type(parent)}, not an object or array")
    return doc


def _show(tokens: list[str]) -> str:
    return "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens)


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "a number"
