"""\"Did you mean\": the known word closest to a mistyped one.

Shared by the manifest model (unknown fields), the selector parser (unknown
operators) and any command that names a thing the user may have misspelt.
Standard library only, so every package may use it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib's similarity ratio a guess must reach; below it, no guess beats none.
CUTOFF = 0.6


def closest(word: str, choices: Iterable[str], cutoff: float = CUTOFF) -> str | None:
    """The choice most like ``word``, case ignored (``selecter`` -> ``selector``), or None.

    Case is ignored so that ``peerIp`` finds ``peerIP``; the choice is returned
    as it is spelt among ``choices``.
    """
    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    lowered = word.lower()
    if lowered in by_lower:
        return by_lower[lowered]
    found = difflib.get_close_matches(lowered, list(by_lower), n=1, cutoff=cutoff)
    return by_lower[found[0]] if found else None


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = CUTOFF) -> str:
    """``"; did you mean 'selector'?"`` to append to a message, or ``""``."""
    guess = closest(word, choices, cutoff)
    return f"; did you mean {guess!r}?" if guess is not None and guess != word else ""
