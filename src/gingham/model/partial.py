"""One validation phase: a model whose fields fail still runs its cross-field checks.

pydantic runs a model's ``mode="after"`` validators only when every field of
that model validated, so a wrong type in one rule used to hide a semantic
problem elsewhere in the same policy (``doNotTrack`` with ``preDNAT``,
``ports`` without a protocol) until the type was fixed. The user then fixed
one problem, ran again and found the next.

:func:`with_cross_field_problems` is called with the failed validation of one
model. It validates the fields that did parse on their own (failed fields
left out, or, when required, replaced by a stand-in), deletes the failed
fields from that partial instance, and runs the model's after-validators on
it. A check that reads a failed field gets ``AttributeError`` and is skipped:
its answer would rest on a value that does not exist. The problems the other
checks find are added to the original errors, so one run lists every problem
that can be found.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

import pydantic
import pydantic_core
from pydantic import BaseModel

# A sentinel: no stand-in is known for a required field of this type.
_NO_STAND_IN: Final = object()

# True while the checks run on a partial instance, where reading a failed field is
# expected; anywhere else an AttributeError is a bug and must surface.
_PARTIAL: ContextVar[bool] = ContextVar("gingham_partial_validation", default=False)


@contextmanager
def independent_check() -> Iterator[None]:
    """Marks one check among several in a validator as standing alone: on a partial
    instance, if it reads a field that failed, it is skipped and the next one runs."""
    try:
        yield
    except AttributeError:
        if not _PARTIAL.get():
            raise


def _after_validators(cls: type[BaseModel]) -> list[Callable[[Any], Any]]:
    return [d.func for d in cls.__pydantic_decorators__.model_validators.values()
            if d.info.mode == "after"]


def _stand_in(annotation: Any) -> Any:
    """A value that validates as ``annotation`` and is never read (see the module doc)."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        # An instance is taken as it is (revalidate_instances is "never").
        return annotation.model_construct()
    return _NO_STAND_IN


def _line_error(error: Mapping[str, Any]) -> pydantic_core.InitErrorDetails:
    line: pydantic_core.InitErrorDetails = {
        "type": error["type"], "loc": tuple(error["loc"]), "input": error.get("input")}
    if "ctx" in error:
        line["ctx"] = error["ctx"]
    return line


def cross_field_problems(cls: type[BaseModel], data: Any,
                         handler: Callable[[Any], BaseModel],
                         exc: pydantic.ValidationError) -> list[Exception]:
    """What ``cls``'s after-validators say about the fields of ``data`` that did parse."""
    checks = _after_validators(cls)
    if not checks or not isinstance(data, Mapping):
        return []
    fields = cls.model_fields
    by_key = {name: name for name in fields}
    by_key.update({info.alias: name for name, info in fields.items() if info.alias})
    failed: set[str] = set()
    unknown: set[Any] = set()
    for error in exc.errors():
        loc = error["loc"]
        if not loc:
            return []  # the input as a whole is wrong (not a mapping, say)
        name = by_key.get(loc[0]) if isinstance(loc[0], str) else None
        if name is None:
            unknown.add(loc[0])
        else:
            failed.add(name)
    kept = {key: value for key, value in data.items()
            if key not in unknown and by_key.get(key) not in failed}
    for name in failed:
        info = fields[name]
        if info.is_required():
            stand_in = _stand_in(info.annotation)
            if stand_in is _NO_STAND_IN:
                return []
            kept[info.alias or name] = stand_in
    try:
        partial = handler(kept)
    except pydantic.ValidationError:
        return []
    for name in failed:
        partial.__dict__.pop(name, None)
        partial.__pydantic_fields_set__.discard(name)
    found: list[Exception] = []
    token = _PARTIAL.set(True)
    try:
        for check in checks:
            try:
                check(partial)
            except AttributeError:
                continue  # it read a field that failed
            except (ValueError, AssertionError) as problem:
                found.append(problem)
    finally:
        _PARTIAL.reset(token)
    return found


def with_cross_field_problems(cls: type[BaseModel], data: Any,
                              handler: Callable[[Any], BaseModel],
                              exc: pydantic.ValidationError) -> pydantic.ValidationError:
    """``exc`` with the problems of :func:`cross_field_problems` added (or ``exc`` itself)."""
    more = cross_field_problems(cls, data, handler, exc)
    if not more:
        return exc
    lines = [_line_error(error) for error in exc.errors()]
    lines.extend({"type": "value_error", "loc": (), "input": data, "ctx": {"error": problem}}
                 for problem in more)
    try:
        return pydantic_core.ValidationError.from_exception_data(exc.title, lines)
    except (KeyError, TypeError, ValueError):  # an error type that cannot be rebuilt
        return exc
