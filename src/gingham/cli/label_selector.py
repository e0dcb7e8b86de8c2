"""``-l/--selector``: kubectl's label-selector syntax, else a Calico selector.

kubectl's syntax: requirements joined by commas (all must hold), each one of
``key=value``, ``key==value``, ``key!=value``, ``key in (v1,v2)``,
``key notin (v1)``, ``key`` (has the label) and ``!key`` (has not). As in
Kubernetes, ``!=`` and ``notin`` also match a resource without the label.
Keys and values follow the model's label rules.

What does not parse that way is tried as a Calico selector
(``app == 'web' && has(tier)``); if neither parses, the error is the Calico
parser's when the text has something only Calico's syntax has (quotes,
``&&``, ``||``, ``has(``, ``{``...), else kubectl's, with its position.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gingham.errors import SelectorError

Match = Callable[[Mapping[str, str]], bool]

_WORD = re.compile(r"[A-Za-z0-9_./-]+")
_CALICO_ONLY = re.compile(r"&&|\|\||['\"{}]|\b(?:has|all|global)\s*\(")
_OPERATORS = ("==", "!=", "=", "!", "(", ")", ",")


@dataclass(frozen=True)
class _Token:
    text: str
    position: int
    word: bool  # a key, value or keyword (in, notin); else an operator


def _tokens(expr: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(expr):
        if expr[i].isspace():
            i += 1
            continue
        word = _WORD.match(expr, i)
        if word:
            tokens.append(_Token(word.group(), i, True))
            i = word.end()
            continue
        for op in _OPERATORS:
            if expr.startswith(op, i):
                tokens.append(_Token(op, i, False))
                i += len(op)
                break
        else:
            raise SelectorError(f"unexpected character {expr[i]!r}", expr, i)
    return tokens


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.tokens = _tokens(expr)
        self.i = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def at(self, text: str) -> bool:
        token = self.peek()
        return token is not None and token.text == text

    def error(self, message: str) -> SelectorError:
        token = self.peek()
        return SelectorError(message, self.expr, token.position if token else len(self.expr))

    def take(self, text: str | None = None) -> _Token:
        token = self.peek()
        if token is None or (text is not None and token.text != text):
            raise self.error(f"expected {text!r}" if text else "unexpected end")
        self.i += 1
        return token

    def key(self) -> str:
        token = self.peek()
        if token is None or not token.word or token.text in ("in", "notin"):
            raise self.error("expected a label key")
        self.i += 1
        _check(token, self.expr, "key")
        return token.text

    def value(self) -> str:
        token = self.peek()
        if token is None or not token.word:
            return ""  # ``a=`` asks for the empty value, as in Kubernetes
        self.i += 1
        _check(token, self.expr, "value")
        return token.text

    def values(self) -> set[str]:
        self.take("(")
        found: set[str] = set()
        while True:
            token = self.peek()
            if token is None or not token.word:
                raise self.error("expected a value")
            found.add(self.value())
            if self.at(","):
                self.take(",")
                continue
            self.take(")")
            return found

    def requirement(self) -> Match:
        if self.at("!"):
            self.take("!")
            key = self.key()
            return lambda labels: key not in labels
        key = self.key()
        token = self.peek()
        if token is None or token.text == ",":
            return lambda labels: key in labels
        self.i += 1
        if token.text in ("=", "=="):
            value = self.value()
            return lambda labels: labels.get(key) == value
        if token.text == "!=":
            value = self.value()
            return lambda labels: labels.get(key) != value
        if token.text == "in":
            wanted = self.values()
            return lambda labels: labels.get(key) in wanted
        if token.text == "notin":
            unwanted = self.values()
            return lambda labels: labels.get(key) not in unwanted
        self.i -= 1
        raise self.error("expected '=', '==', '!=', 'in', 'notin', ',' or the end")

    def parse(self) -> Match:
        if not self.tokens:
            return lambda labels: True
        matches = [self.requirement()]
        while self.peek() is not None:
            self.take(",")
            matches.append(self.requirement())
        return lambda labels: all(m(labels) for m in matches)


def _check(token: _Token, expr: str, what: str) -> None:
    from gingham.model.meta import label_key_problem, label_value_problem

    problem = (label_key_problem if what == "key" else label_value_problem)(token.text)
    if problem:
        raise SelectorError(problem, expr, token.position)


def parse_label_selector(expr: str) -> Match:
    """kubectl's syntax only; SelectorError with the position if it does not parse."""
    return _Parser(expr).parse()


def parse_selector(expr: str) -> Match:
    """A predicate over a label set: kubectl's syntax, else Calico's (see the module doc)."""
    from gingham.selector import parse

    try:
        return parse_label_selector(expr)
    except SelectorError as kubectl_error:
        try:
            return parse(expr).evaluate
        except SelectorError as calico_error:
            if _CALICO_ONLY.search(expr):
                raise SelectorError(
                    f"not a selector: {_reason(calico_error)} (as a Calico selector)",
                    expr, calico_error.position,
                ) from None
            raise SelectorError(
                f"not a selector: {_reason(kubectl_error)} (as a label selector)",
                expr, kubectl_error.position,
            ) from None


def _reason(exc: SelectorError) -> str:
    """The message without its trailing ``at position N`` (the caller says where)."""
    text = str(exc)
    suffix = f" at position {exc.position}"
    return text[: -len(suffix)] if text.endswith(suffix) else text
