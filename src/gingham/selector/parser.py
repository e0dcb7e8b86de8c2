"""Tokenizer and recursive-descent parser for Calico's selector language.

Grammar (``||`` binds loosest, ``!`` tightest; whitespace is free between
tokens)::

    selector := ε | or
    or       := and ( "||" and )*
    and      := unary ( "&&" unary )*
    unary    := "!" unary | term
    term     := "(" or ")" | "all" "(" ")" | "global" "(" ")"
              | "has" "(" KEY ")" | KEY op
    op       := ( "==" | "!=" | "contains" | "starts" "with" | "ends" "with" ) STRING
              | ( "in" | "not" "in" ) "{" [ STRING ( "," STRING )* [ "," ] ] "}"

KEY is a run of ``[A-Za-z0-9_./-]`` (so ``projectcalico.org/name`` and
``app.kubernetes.io/part-of`` are single keys); the words ``in``, ``has``,
``all`` … are keywords only where the grammar expects them, so they remain
usable as label keys. STRING is single- or double-quoted with no escapes.

As in Calico's tokenizer, the two words of ``starts with``, ``ends with`` and
``not in`` may be written together (``startswith``, ``notin``), an operator
may touch the literal after it (``a startswith'x'``, ``a in{'x'}``), and a
set may end with a comma (``{'x',}``; ``{,}`` is still an error). A KEY must
be a valid label key (Kubernetes' qualified name: ``gingham.selector.labels``):
a key no label can have is refused rather than left never to match.

Errors raise :class:`gingham.errors.SelectorError` with the 0-based column
of the offending token (or of the end of input when something is missing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from gingham.errors import SelectorError
from gingham.selector.ast import (
    ALL,
    GLOBAL,
    CmpOp,
    Node,
    make_and,
    make_cmp,
    make_has,
    make_in,
    make_not,
    make_or,
)
from gingham.selector.labels import selector_key_problem
from gingham.suggest import closest

TokKind = Literal["key", "str", "op", "end"]

_KEY_CHARS: Final = re.compile(r"[A-Za-z0-9_./\-]+")
_SPACE: Final = re.compile(r"\s*")
# Longest punctuation first so "!=" is not read as "!" then "=".
_PUNCT: Final = ("==", "!=", "&&", "||", "!", "(", ")", "{", "}", ",")
MAX_LENGTH: Final = 64 * 1024
# Each level costs a few Python frames while parsing, printing and compiling.
MAX_DEPTH: Final = 64
# The operators after a label key, as the error for a missing one lists them.
_OPERATORS: Final = ("==", "!=", "in", "not in", "contains", "starts with", "ends with")
# Operators written as one word; the two-word spellings are parsed word by word.
_ONE_WORD: Final[dict[str, CmpOp]] = {"startswith": "starts with", "endswith": "ends with"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokKind
    text: str  # the key, the unquoted string, or the operator
    pos: int


def tokenize(expr: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(expr)
    while True:
        m = _SPACE.match(expr, i)
        i = m.end() if m else i
        if i >= n:
            tokens.append(Token("end", "", n))
            return tokens
        ch = expr[i]
        if ch in "'\"":
            close = expr.find(ch, i + 1)
            if close < 0:
                raise SelectorError("unterminated string", expr, i)
            tokens.append(Token("str", expr[i + 1 : close], i))
            i = close + 1
            continue
        km = _KEY_CHARS.match(expr, i)
        if km:
            tokens.append(Token("key", km.group(), i))
            i = km.end()
            continue
        for p in _PUNCT:
            if expr.startswith(p, i):
                tokens.append(Token("op", p, i))
                i += len(p)
                break
        else:
            if ch in "&|=":
                raise SelectorError(f"unexpected {ch!r} (did you mean {ch * 2!r}?)", expr, i)
            raise SelectorError(f"unexpected character {ch!r}", expr, i)


def _describe(tok: Token) -> str:
    if tok.kind == "end":
        return "end of selector"
    if tok.kind == "str":
        return "a quoted string"
    return repr(tok.text)


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.toks = tokenize(expr)
        self.i = 0
        self.depth = 0

    # -- helpers -----------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        if tok.kind != "end":
            self.i += 1
        return tok

    def fail(self, message: str, tok: Token | None = None) -> SelectorError:
        tok = tok or self.peek()
        return SelectorError(f"{message}, found {_describe(tok)}", self.expr, tok.pos)

    def is_op(self, text: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "op" and tok.text == text

    def is_word(self, text: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "key" and tok.text == text

    def expect_op(self, text: str, context: str) -> Token:
        if not self.is_op(text):
            raise self.fail(f"expected {text!r} {context}")
        return self.next()

    # -- grammar -------------------------------------------------------------
    def parse(self) -> Node:
        if self.peek().kind == "end":
            return ALL  # Calico: the empty selector selects everything
        node = self.parse_or()
        if self.peek().kind != "end":
            raise self.fail("expected '&&', '||' or end of selector")
        return node

    def parse_or(self) -> Node:
        parts = [self.parse_and()]
        while self.is_op("||"):
            self.next()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else make_or(parts)

    def parse_and(self) -> Node:
        parts = [self.parse_unary()]
        while self.is_op("&&"):
            self.next()
            parts.append(self.parse_unary())
        return parts[0] if len(parts) == 1 else make_and(parts)

    def parse_unary(self) -> Node:
        bangs = 0
        while self.is_op("!"):
            self.next()
            bangs += 1
        node = self.parse_term()
        for _ in range(bangs):
            node = make_not(node)
        return node

    def parse_term(self) -> Node:
        tok = self.peek()
        if self.is_op("("):
            if self.depth >= MAX_DEPTH:
                raise self.fail(f"parentheses nested deeper than {MAX_DEPTH}")
            self.next()
            self.depth += 1
            node = self.parse_or()
            self.depth -= 1
            self.expect_op(")", f"to close the '(' opened at position {tok.pos}")
            return node
        if tok.kind != "key":
            raise self.fail("expected a label key, 'has(', 'all()', 'global()', '!' or '('")
        if self.is_op("(", 1) and tok.text in ("all", "global", "has"):
            self.next()
            self.next()
            if tok.text == "has":
                key = self.peek()
                if key.kind != "key":
                    raise self.fail("expected a label key inside has()")
                self.check_key(key)
                self.next()
                self.expect_op(")", "after the label key of has(")
                return make_has(key.text)
            self.expect_op(")", f"after {tok.text}(")
            return ALL if tok.text == "all" else GLOBAL
        self.next()
        node = self.parse_operator(tok.text)
        # Checked once the operator is known: "a b" is a missing operator, not a bad key.
        self.check_key(tok)
        return node

    def check_key(self, tok: Token) -> None:
        problem = selector_key_problem(tok.text)
        if problem is not None:
            raise SelectorError(problem, self.expr, tok.pos)

    def parse_operator(self, key: str) -> Node:
        tok = self.peek()
        op: CmpOp
        if self.is_op("==") or self.is_op("!="):
            op = "==" if tok.text == "==" else "!="
            self.next()
        elif self.is_word("contains"):
            op = "contains"
            self.next()
        elif tok.kind == "key" and tok.text in _ONE_WORD:
            op = _ONE_WORD[tok.text]
            self.next()
        elif self.is_word("starts") or self.is_word("ends"):
            self.next()
            if not self.is_word("with"):
                raise self.fail(f"expected 'with' after {tok.text!r}")
            self.next()
            op = "starts with" if tok.text == "starts" else "ends with"
        elif self.is_word("in"):
            self.next()
            return make_in(key, self.parse_set(), negated=False)
        elif self.is_word("notin"):
            self.next()
            return make_in(key, self.parse_set(), negated=True)
        elif self.is_word("not"):
            self.next()
            if not self.is_word("in"):
                raise self.fail("expected 'in' after 'not'")
            self.next()
            return make_in(key, self.parse_set(), negated=True)
        else:
            listed = ", ".join(repr(o) for o in _OPERATORS)
            message = (f"expected an operator after label key {key!r} ({listed}), "
                       f"found {_describe(tok)}")
            guess = closest(tok.text, [*_OPERATORS, *_ONE_WORD]) if tok.kind == "key" else None
            if guess is not None:
                message += f"; did you mean {_ONE_WORD.get(guess, guess)!r}?"
            raise SelectorError(message, self.expr, tok.pos)
        return make_cmp(key, op, self.parse_string())

    def parse_string(self) -> str:
        tok = self.peek()
        if tok.kind != "str":
            raise self.fail("expected a quoted string")
        self.next()
        return tok.text

    def parse_set(self) -> list[str]:
        self.expect_op("{", "to open the set of values")
        values: list[str] = []
        if self.is_op("}"):
            self.next()
            return values
        while True:
            values.append(self.parse_string())
            if self.is_op(","):
                self.next()
                if self.is_op("}"):  # a trailing comma, as Calico allows
                    self.next()
                    return values
                continue
            self.expect_op("}", "or ',' in the set of values")
            return values


def parse_node(expr: str) -> Node:
    """Parse ``expr`` to a normal-form tree or raise :class:`SelectorError`."""
    if len(expr) > MAX_LENGTH:
        raise SelectorError(f"selector longer than {MAX_LENGTH} characters", expr, MAX_LENGTH)
    return _Parser(expr).parse()
