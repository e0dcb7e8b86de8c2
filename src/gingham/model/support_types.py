"""The words of the support tables: one field's :class:`Support` and its constructors.

Kept apart from :mod:`gingham.model.support`, which loads the tables
(``support_policy``, ``support_network``) and checks models against them: the
tables import these words, and the loader imports the tables, so both depend on
this module and neither on the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic_core import PydanticUndefined

from gingham.model.meta import dump_hint

Status = Literal["effect", "reported", "recorded", "planned", "refused"]
STATUSES: Final[tuple[Status, ...]] = ("effect", "reported", "recorded", "planned", "refused")

# A check of a value that gingham honours only in part: None, or why not.
Limit = Callable[[Any], str | None]


@dataclass(frozen=True, slots=True)
class Support:
    """What gingham does with one field.

    ``what``: for effect/reported/recorded, what gingham does with the value;
    for planned/refused, why a value is refused (a sentence that reads well
    after the field name in an error message). ``instead``: what to use
    instead. ``accepts``: the values still accepted (None: the field's
    default). ``limit``: for a field gingham honours only in part, the check of
    the part it does not. ``checked`` is False for the parts of a field that is
    refused as a whole (the whole is checked, not each part).
    """

    status: Status
    what: str
    tests: tuple[str, ...] = ()
    instead: str = ""
    accepts: tuple[Any, ...] | None = None
    needs: str = ""
    limit: Limit | None = None
    checked: bool = True

    @property
    def refuses(self) -> bool:
        return self.checked and (self.status in ("planned", "refused") or self.limit is not None)

    def problem(self, value: Any, default: Any) -> str | None:
        """Why ``value`` (explicitly set) is refused, or None when it is accepted."""
        if not self.checked:
            return None
        if self.limit is not None:
            return self.limit(value)
        if self.status not in ("planned", "refused"):
            return None
        allowed = self.accepts if self.accepts is not None else (default,)
        if any(_same(value, a) for a in allowed):
            return None
        return self.message(value)

    def message(self, value: Any = PydanticUndefined) -> str:
        got = "" if value is PydanticUndefined or not _scalar(value) else f" (got {dump_hint(value)})"
        text = self.what + got
        return f"{text}; {self.instead}" if self.instead else text


def _same(value: Any, accepted: Any) -> bool:
    # 1 == True in Python; a refused boolean must not be let through by an int.
    return type(value) is type(accepted) and value == accepted


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def effect(what: str, *tests: str, limit: Limit | None = None) -> Support:
    return Support("effect", what, tuple(tests), limit=limit)


def reported(what: str, needs: str, *tests: str) -> Support:
    return Support("reported", what, tuple(tests), needs=needs)


def recorded(what: str, *tests: str) -> Support:
    return Support("recorded", what, tuple(tests) or (ROUND_TRIP,))


def planned(what: str, instead: str = "", accepts: tuple[Any, ...] | None = None) -> Support:
    if "not supported yet" not in what:
        raise ValueError(f"a planned field's message says 'not supported yet': {what!r}")
    return Support("planned", what, instead=instead, accepts=accepts)


def refused(what: str, instead: str = "", accepts: tuple[Any, ...] | None = None) -> Support:
    if "not supported" not in what:
        raise ValueError(f"a refused field's message says 'not supported': {what!r}")
    return Support("refused", what, instead=instead, accepts=accepts)


def part_of(status: Status) -> Support:
    """A field inside a field that is refused as a whole (``serviceClusterIPs[].cidr``):
    accepted where the whole is. ``status`` is the usual one of the wholes; the
    generated doc shows each part with the status of the field it is in."""
    return Support(status, "part of the field above: accepted where it is", checked=False)


# The test that shows a recorded field is kept as written.
ROUND_TRIP: Final = "tests/unit/model/test_corpus.py::test_file_round_trips"
# The test that tries a refused value of every planned and refused field.
REFUSAL_TEST: Final = "tests/unit/model/test_support.py::test_every_refusable_field_refuses_its_example"
