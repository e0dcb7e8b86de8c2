"""pydantic's errors as :class:`~gingham.model.meta.Problem` s: a dotted path in the
manifest's own (camelCase) spelling and a short sentence.

Its own module because both the registry (every manifest) and single models
(a Kubernetes policy checking its converted Calico policy) translate errors.
"""

from __future__ import annotations

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


def problem_message(error: Mapping[str, Any]) -> str:
    """One pydantic error as a short sentence."""
    kind = error["type"]
    if kind == "extra_forbidden":
        loc = error.get("loc") or ("",)
        return unknown_field_message(str(loc[-1]))
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
              base: str = "") -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors():
        path = join_path(base, loc_to_path(error["loc"]))
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, Problems):
            problems.extend(Problem(location, join_path(path, rel), msg)
                            for rel, msg in cause.items)
        else:
            problems.append(Problem(location, path, problem_message(error)))
    return problems
