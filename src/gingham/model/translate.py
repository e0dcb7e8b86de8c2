"""pydantic's errors as :class:`~gingham.model.meta.Problem` s: a dotted path in the
manifest's own (camelCase) spelling and a short sentence.

Its own module because both the registry (every manifest) and single models
(a Kubernetes policy checking its converted Calico policy) translate errors.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic

from gingham.model.meta import Problem, Problems, dump_hint
from gingham.model.support import unknown_field_message


def join_path(base: str, relative: str) -> str:
    if not base:
        return relative
    if not relative:
        return base
    return base + relative if relative.startswith("[") else f"{base}.{relative}"


def loc_to_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif path and not _is_identifier(part):
            path += f"[{part!r}]"
        else:
            path = join_path(path, part)
    return path


def _is_identifier(part: str) -> bool:
    return part.replace("_", "a").replace("-", "a").isalnum()


def _model_in(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The model a field holds, through ``X | None``, ``Annotated`` and containers."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, tuple, list, dict):
        args = typing.get_args(annotation)
        if origin is dict:
            args = args[1:]
        for arg in args:
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def allowed_fields(model: type[pydantic.BaseModel] | None,
                   loc: Sequence[int | str]) -> list[str]:
    """The field names (camelCase) of the model found at ``loc`` inside ``model``.

    Steps that index a list or a mapping (ints, label keys) stay on the same
    model; an empty list when the path leaves the models.
    """
    current = model
    for step in loc:
        if current is None:
            return []
        fields = current.model_fields
        info = fields.get(step) if isinstance(step, str) else None
        if info is None and isinstance(step, str):
            info = next((f for f in fields.values() if f.alias == step), None)
        if info is None:
            continue  # an index into a container of models (or a union arm's name)
        current = _model_in(info.annotation)
    if current is None:
        return []
    return [info.alias or name for name, info in current.model_fields.items()]


def problem_message(error: Mapping[str, Any],
                    model: type[pydantic.BaseModel] | None = None) -> str:
    """One pydantic error as a short sentence; ``model`` (the one validated) lets an
    unknown field name the closest field it has."""
    kind = error["type"]
    if kind == "extra_forbidden":
        loc = error.get("loc") or ("",)
        return unknown_field_message(str(loc[-1]), allowed_fields(model, loc[:-1]))
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    message = str(error["msg"])
    if kind.endswith("_type") or kind in ("literal_error", "enum"):
        value = error.get("input")
        message += f", got {type(value).__name__} {dump_hint(value)}"
    return message


def translate(exc: pydantic.ValidationError, location: str,
              base: str = "", model: type[pydantic.BaseModel] | None = None) -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors():
        path = join_path(base, loc_to_path(error["loc"]))
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, Problems):
            problems.extend(Problem(location, join_path(path, rel), msg)
                            for rel, msg in cause.items)
        else:
            problems.append(Problem(location, path, problem_message(error, model)))
    return problems
