"""Expected reachability, written by hand: a tiny language for 9x9 matrices.

    Reach().block(to="x/*").allow(frm="x/*", to="x/*")

means "nothing reaches namespace x, except from namespace x". Patterns are
shell globs over ``NS/POD`` (``x/*``, ``*/a``, ``*``) or lists of them; later
calls override earlier ones. A workload always reaches itself (the
connection never leaves its namespace), whatever the policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
REFS = tuple(f"{ns}/{p}" for ns in NAMESPACES for p in PODS)

Pattern = str | Iterable[str]


def _select(pattern: Pattern) -> list[str]:
    pats = [pattern] if isinstance(pattern, str) else list(pattern)
    out = [r for r in REFS if any(fnmatchcase(r, p) for p in pats)]
    if not out:
        raise ValueError(f"pattern {pattern!r} matches no workload")
    return out


class Reach:
    def __init__(self, default: bool = True) -> None:
        self.cells = {(a, b): default for a in REFS for b in REFS}

    def set(self, frm: Pattern, to: Pattern, value: bool) -> Reach:
        for a in _select(frm):
            for b in _select(to):
                self.cells[(a, b)] = value
        return self

    def allow(self, frm: Pattern = "*", to: Pattern = "*") -> Reach:
        return self.set(frm, to, True)

    def block(self, frm: Pattern = "*", to: Pattern = "*") -> Reach:
        return self.set(frm, to, False)

    def as_dict(self) -> dict[str, dict[str, bool]]:
        return {a: {b: self.cells[(a, b)] or a == b for b in REFS} for a in REFS}


def render(m: dict[str, dict[str, bool]]) -> str:
    head = "     " + " ".join(r.replace("/", "") for r in REFS)
    rows = [head]
    for a in REFS:
        rows.append(a.replace("/", "").ljust(5) + " ".join(
            (" ." if m[a][b] else " X") for b in REFS))
    return "\n".join(rows)


def diff(expected: dict[str, dict[str, bool]], measured: dict[str, dict[str, bool]]) -> str:
    bad = [f"{a} -> {b}: expected {'open' if expected[a][b] else 'blocked'}, "
           f"got {'open' if measured[a][b] else 'blocked'}"
           for a in REFS for b in REFS if expected[a][b] != measured[a][b]]
    return "\n".join([*bad, "expected:", render(expected), "measured:", render(measured)])
