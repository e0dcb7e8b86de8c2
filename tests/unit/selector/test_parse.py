"""Every operator, its evaluation, the canonical form and every parse error."""

from __future__ import annotations

import pytest

from gingham.errors import SelectorError, ValidationError
from gingham.selector import NAMESPACE_LABEL, Selector, parse

# (selector, labels, expected)
CASES: list[tuple[str, dict[str, str], bool]] = [
    ("a == 'x'", {"a": "x"}, True),
    ("a == 'x'", {"a": "y"}, False),
    ("a == 'x'", {}, False),
    ('a == "x"', {"a": "x"}, True),
    ("a != 'x'", {"a": "x"}, False),
    ("a != 'x'", {"a": "y"}, True),
    ("a != 'x'", {}, True),  # true when the label is absent
    ("a in {'x', 'y'}", {"a": "y"}, True),
    ("a in {'x', 'y'}", {"a": "z"}, False),
    ("a in {'x', 'y'}", {}, False),
    ("a in {}", {"a": ""}, False),
    ("a not in {'x', 'y'}", {"a": "x"}, False),
    ("a not in {'x', 'y'}", {"a": "z"}, True),
    ("a not in {'x', 'y'}", {}, True),  # true when absent
    ("a not in {}", {}, True),
    ("has(a)", {"a": ""}, True),
    ("has(a)", {"b": "a"}, False),
    ("!has(a)", {"b": "a"}, True),
    ("!has(a)", {"a": "b"}, False),
    ("all()", {}, True),
    ("all()", {"a": "b"}, True),
    ("", {"a": "b"}, True),  # empty selects everything, as in Calico
    ("   ", {}, True),
    ("!all()", {}, False),
    ("global()", {}, True),
    ("global()", {"a": "b"}, True),
    ("global()", {NAMESPACE_LABEL: "default"}, False),
    ("!global()", {NAMESPACE_LABEL: "default"}, True),
    ("a contains 'ell'", {"a": "hello"}, True),
    ("a contains 'ell'", {"a": "help"}, False),
    ("a contains ''", {"a": ""}, True),
    ("a contains ''", {}, False),  # string operators need the label
    ("a starts with 'he'", {"a": "hello"}, True),
    ("a starts with 'he'", {"a": "ohe"}, False),
    ("a starts with 'he'", {}, False),
    ("a ends with 'lo'", {"a": "hello"}, True),
    ("a ends with 'lo'", {"a": "lol"}, False),
    ("a ends with 'lo'", {}, False),
    ("!a == 'x'", {"a": "x"}, False),  # ! negates the whole comparison
    ("!(a == 'x')", {}, True),
    ("!(a contains 'x')", {}, True),
    ("!(a contains 'x')", {"a": "yxy"}, False),
    ("!!has(a)", {"a": "1"}, True),
    ("has(a) && has(b)", {"a": "1"}, False),
    ("has(a) && has(b)", {"a": "1", "b": "2"}, True),
    ("has(a) || has(b)", {"b": "2"}, True),
    ("has(a) || has(b)", {"c": "2"}, False),
    # || is loosest: a || (b && c)
    ("has(a) || has(b) && has(c)", {"a": "1"}, True),
    ("(has(a) || has(b)) && has(c)", {"a": "1"}, False),
    ("has(c) && has(b) || has(a)", {"a": "1"}, True),
    ("!has(a) && has(b)", {"b": "1"}, True),
    ("!(has(a) && has(b))", {"a": "1", "b": "1"}, False),
    ("!(has(a) || has(b))", {}, True),
    # keys with prefixes, dots, dashes, slashes, digits, and keyword-like keys
    ("projectcalico.org/name == 'kube-system'", {"projectcalico.org/name": "kube-system"}, True),
    ("app.kubernetes.io/part-of in {'x'}", {"app.kubernetes.io/part-of": "x"}, True),
    ("has(k8s_app)", {"k8s_app": "1"}, True),
    ("in == 'x' && has == 'y' && not not in {'z'}", {"in": "x", "has": "y", "not": "w"}, True),
    ("all == 'x' || global != 'y'", {"all": "x"}, True),
    ("contains contains 'a'", {"contains": "bab"}, True),
    # quotes and whitespace
    ('a == "it\'s"', {"a": "it's"}, True),
    ("a == 'say \"hi\"'", {"a": 'say "hi"'}, True),
    ("a=='x'&&b!='y'", {"a": "x"}, True),
    ("\t a \n==\n 'x' ", {"a": "x"}, True),
    ("has ( a )", {"a": "x"}, True),
    ("a starts   with 'x'", {"a": "xy"}, True),
    ("a not   in {  'x'  ,'y'  }", {"a": "q"}, True),
    ("a == ' x '", {"a": " x "}, True),
    ("a == ''", {"a": ""}, True),
    ("a == '&& || ! ( )'", {"a": "&& || ! ( )"}, True),
]


@pytest.mark.parametrize(("expr", "labels", "expected"), CASES)
def test_evaluate(expr: str, labels: dict[str, str], expected: bool) -> None:
    sel = parse(expr)
    assert sel.evaluate(labels) is expected
    assert sel(labels) is expected
    again = parse(sel.canonical)
    assert again == sel
    assert again.canonical == sel.canonical
    assert again.evaluate(labels) is expected


CANONICAL: list[tuple[str, str]] = [
    ("", "all()"),
    ("a=='x'", 'a == "x"'),
    ("a == 'say \"hi\"'", "a == 'say \"hi\"'"),
    ("!(a == 'x')", 'a != "x"'),
    ("!(a != 'x')", 'a == "x"'),
    ("!(a in {'x','y'})", 'a not in {"x", "y"}'),
    ("a in {'y', 'x', 'y'}", 'a in {"x", "y"}'),
    ("a in {'x'}", 'a == "x"'),
    ("a not in {'x'}", 'a != "x"'),
    ("a in {}", "a in {}"),
    ("!!!has(a)", "!has(a)"),
    ("has(b) && has(a)", "has(a) && has(b)"),
    ("has(b) && has(a) && has(b)", "has(a) && has(b)"),
    ("has(a) && (has(b) && has(c))", "has(a) && has(b) && has(c)"),
    ("has(c) || (has(b) || has(a))", "has(a) || has(b) || has(c)"),
    ("(has(c) || has(b)) && has(a)", "has(a) && (has(b) || has(c))"),
    ("has(a) && all()", "has(a)"),
    ("has(a) || all()", "all()"),
    ("all() && all()", "all()"),
    ("!(has(a) && has(b))", "!(has(a) && has(b))"),
    ("!(a starts with 'x')", '!(a starts with "x")'),
    ("((has(a)))", "has(a)"),
    ("!global()", "!global()"),
]


@pytest.mark.parametrize(("expr", "canonical"), CANONICAL)
def test_canonical(expr: str, canonical: str) -> None:
    assert parse(expr).canonical == canonical
    assert parse(canonical).canonical == canonical
    assert str(parse(expr)) == canonical


def test_id_is_stable_and_short() -> None:
    a = parse("has(b) && has(a)")
    b = parse("has(a)&&has(b)")
    assert a.id == b.id
    assert a.id.startswith("s:")
    assert len(a.id) == 28
    # A fixed value: the id must not change between versions or processes.
    assert parse("").id == "s:yAKsl-CNoToGJvI4pNl6xXkWbn"
    assert parse("has(a)").id != parse("has(b)").id


def test_label_keys() -> None:
    s = parse("a == 'x' && (has(b) || !c in {'1', '2'}) && d contains 'y' && global()")
    assert s.label_keys() == frozenset({"a", "b", "c", "d", NAMESPACE_LABEL})
    assert parse("all()").label_keys() == frozenset()


def test_matches_all_and_identity() -> None:
    assert parse("").matches_all
    assert parse("has(a) || all()").matches_all
    assert not parse("has(a)").matches_all
    assert parse("has(a)") is parse("has(a)")  # cached
    assert isinstance(parse("has(a)"), Selector)
    assert hash(parse("has(a) && has(b)")) == hash(parse("has(b) && has(a)"))
    assert repr(parse("has(a)")) == "Selector('has(a)')"


ERRORS: list[tuple[str, int, str]] = [
    ("a ==", 4, "expected a quoted string"),
    ("a == b", 5, "expected a quoted string"),
    ("a = 'b'", 2, "'=='"),
    ("a == 'b", 5, "unterminated string"),
    ('a == "b', 5, "unterminated string"),
    ("a == 'b\"", 5, "unterminated string"),
    ("(a == 'b'", 9, "expected ')'"),
    ("(has(a) || (has(b))", 19, "expected ')'"),
    ("a == 'b' c", 9, "expected '&&', '||' or end"),
    ("a == 'b')", 8, "expected '&&', '||' or end"),
    ("has(", 4, "label key inside has()"),
    ("has()", 4, "label key inside has()"),
    ("has(a", 5, "expected ')'"),
    ("has('a')", 4, "label key inside has()"),
    ("has(a b)", 6, "expected ')'"),
    ("a & b", 2, "'&&'"),
    ("has(a) | has(b)", 7, "'||'"),
    ("has(a) &&", 9, "expected a label key"),
    ("has(a) || ", 10, "expected a label key"),
    ("&& has(a)", 0, "expected a label key"),
    ("!", 1, "expected a label key"),
    ("()", 1, "expected a label key"),
    ("a", 1, "expected an operator"),
    ("a b", 2, "expected an operator"),
    ("a starts 'x'", 9, "expected 'with'"),
    ("a ends wth 'x'", 7, "expected 'with'"),
    ("a not 'x'", 6, "expected 'in'"),
    ("a in 'x'", 5, "expected '{'"),
    ("a in {,}", 6, "expected a quoted string"),
    ("a in {'x',,}", 10, "expected a quoted string"),
    ("a in {'x' 'y'}", 10, "expected '}'"),
    ("a in {'x'", 9, "expected '}'"),
    ("a in {x}", 6, "expected a quoted string"),
    ("'x' == a", 0, "expected a label key"),
    ("all", 3, "expected an operator"),
    ("all(x)", 4, "expected ')'"),
    ("global(", 7, "expected ')'"),
    ("a == 'x' && b @ 'y'", 14, "unexpected character '@'"),
    ("a === 'x'", 4, "'=='"),
    ("a == 'x' ; b == 'y'", 9, "unexpected character ';'"),
    ("café == 'x'", 3, "unexpected character 'é'"),
    ("a startwith 'x'", 2, "found 'startwith'; did you mean 'starts with'?"),
    ("a endwith 'x'", 2, "did you mean 'ends with'?"),
    ("a contain 'x'", 2, "did you mean 'contains'?"),
    ("a notn {'x'}", 2, "did you mean 'not in'?"),
    ("a startswithx 'y'", 2, "expected an operator"),
    ("a inx {'y'}", 2, "expected an operator"),
    ("a startswith x", 13, "expected a quoted string"),
    ("x" * 64 + " == 'a'", 0, "invalid label key"),
    ("has(a/b/c)", 4, "at most one '/'"),
]


@pytest.mark.parametrize(("expr", "position", "fragment"), ERRORS)
def test_errors(expr: str, position: int, fragment: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse(expr)
    err = info.value
    assert err.position == position, str(err)
    assert err.expression == expr
    assert fragment in str(err)
    assert f"at position {position}" in str(err)
    assert isinstance(err, ValidationError)


def test_nesting_limit_is_an_error_not_a_crash() -> None:
    deep = "(" * 200 + "has(a)" + ")" * 200
    with pytest.raises(SelectorError) as info:
        parse(deep)
    assert info.value.position == 64
    ok = "(" * 60 + "has(a)" + ")" * 60
    assert parse(ok).canonical == "has(a)"


def test_many_bangs_and_long_chains() -> None:
    assert parse("!" * 5001 + "has(a)").canonical == "!has(a)"
    chain = " && ".join(f"has(k{i})" for i in range(3000))
    s = parse(chain)
    labels = {f"k{i}": "" for i in range(3000)}
    assert s.evaluate(labels)
    del labels["k2999"]
    assert not s.evaluate(labels)
    either = parse(" || ".join(f"has(k{i})" for i in range(3000)))
    assert either.evaluate({"k1500": ""})
    assert not either.evaluate({})
