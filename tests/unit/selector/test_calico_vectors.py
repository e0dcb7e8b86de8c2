"""Calico's own selector test vectors, as data: gingham's parser must agree with them.

Transcribed from projectcalico/calico ``libcalico-go/lib/selector/parser/parser_test.go``
(selectorTests, badSelectors, canonicalisationTests) and
``libcalico-go/lib/selector/tokenizer/tokenizer_test.go`` (the inputs that are
whole selectors, and the ones the tokenizer refuses). Where gingham decides
differently on purpose, the vector is in ``DIFFERENCES`` with the reason.
"""

from __future__ import annotations

import pytest

from gingham.errors import SelectorError
from gingham.selector import parse

Labels = dict[str, str]

# parser_test.go selectorTests: (selector, label sets it matches, label sets it does not).
MATCHES: list[tuple[str, list[Labels], list[Labels]]] = [
    ('a == "b"', [{"a": "b"}, {"a": "b", "c": "d"}], [{}, {"a": "c"}, {"c": "d"}]),
    ('a == "b" && c == "d"', [{"a": "b", "c": "d"}],
     [{}, {"a": "b", "c": "e"}, {"a": "c", "c": "d"}, {"c": "d"}, {"a": "b"}]),
    ('a == "b" || c == "d"', [{"a": "b", "c": "d"}, {"a": "b"}, {"c": "d"}],
     [{}, {"a": "e", "c": "e"}, {"c": "e"}, {"a": "e"}]),
    ("a in {\"'\", '\"', \"c\"}", [{"a": "c"}, {"a": '"'}, {"a": "'"}], [{}, {"a": "e"}]),
    ("a not in {\"'\", '\"', \"c\"}", [{}, {"a": "e"}], [{"a": "c"}, {"a": '"'}, {"a": "'"}]),
    ("a == 'a'", [{"a": "a"}], []),
    ('a == "a"', [{"a": "a"}], []),
    ('a != "b"', [{"a": "a"}], []),
    ('a != "a"', [{}], []),
    ('a contains "a"', [{"a": "a"}, {"a": "bab"}, {"a": "aaa", "b": "c"}],
     [{}, {"a": "b"}, {"b": "aaa"}]),
    ('a starts with "a"', [{"a": "a"}, {"a": "abb"}, {"a": "aaa", "b": "c"}],
     [{}, {"a": "b"}, {"a": "baa"}, {"b": "aaa"}]),
    ('a ends with "a"', [{"a": "a"}, {"a": "bba"}, {"a": "aaa", "b": "c"}],
     [{}, {"a": "b"}, {"a": "aab"}, {"b": "aaa"}]),
    ('a in {"a"}', [{"a": "a"}], []),
    ('!a in {"a"}', [{"a": "b"}], []),
    ('a in {"a", "b"}', [{"a": "a"}, {"a": "b"}], []),
    ('a not in {"d", "e"}', [{"a": "a"}], []),
    ("has(a)", [{"a": "b"}], []),
    ("!has(a)", [{"b": "b"}], []),
    ("", [{}, {"a": "b"}], []),
    (" ", [{}], []),
    ("all()", [{}], []),
    (" all()", [{}, {"a": "b"}], []),
    ("global()", [{}], []),
    (" global()", [{}, {"a": "b"}], []),
    ("a == 'a'", [], [{"a": "b"}, {}]),
    ('a != "a"', [], [{"a": "a"}]),
    ("a != 'a'", [], [{"a": "a"}]),
    ('a in {"a"}', [], [{"a": "b"}]),
    ('a not in {"a"}', [], [{"a": "a"}]),
    ('a in {"a", "b"}', [], [{"a": "c"}]),
    ("has(b)", [], [{"a": "b"}]),
    ("!!has(b)", [], [{"a": "b"}]),
    ("! has(a)", [], [{"a": "b"}]),
    ("!has(a)", [], [{"a": "b"}]),
    ("!!! has(a)", [], [{"a": "b"}]),
    ("!!!has(a)", [], [{"a": "b"}]),
    ("!! ! has(a)", [], [{"a": "b"}]),
    ("! !!has(a)", [], [{"a": "b"}]),
    ("a == 'a1' && b == 'b1'", [{"a": "a1", "b": "b1"}], []),
    ("a == 'a1' && b != 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("a != 'a1' && b == 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("a != 'a1' && b != 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("a != 'a1' && !b == 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("!a == 'a1' && b == 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("has(a) && !has(b)", [{"a": "a"}], []),
    ("!has(b) && has(a)", [{"a": "a"}], []),
    ("!(!has(a) || has(b))", [{"a": "a"}], []),
    ("!(has(b) || !has(a))", [{"a": "a"}], []),
    ("a == 'a1' || b == 'b1'", [{"a": "a1", "b": "b1"}], []),
    ("a == 'a1' || b != 'b1'", [{"a": "a1", "b": "b1"}], []),
    ("a != 'a1' || b == 'b1'", [{"a": "a1", "b": "b1"}], []),
    ("a != 'a1' || b != 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("! a == 'a1' || ! b == 'b1'", [], [{"a": "a1", "b": "b1"}]),
]

# parser_test.go badSelectors, then the inputs tokenizer_test.go expects an error for.
BAD: list[str] = [
    "b == b", "b contains b", "b starts with b", "b ends with b", "'b1' == b", "b", "a b",
    "!", 'foo == "bar" &', 'foo == "bar" |', "foo != ||", 'foo in {"", ||', 'foo in ""',
    '"FOO', "\"FOO'", "'FOO", "(", '(a == "foo"', ")", "()", "%", 'a == "b" && %',
    'a == "b" || %', "a ", "has(foo) &&",
    "a" * 513 + ' == "value"', 'label == "value', "label == 'value", 'label = "value"',
    "all(", "global(", "has()", "has(foo", "has( foo ", 'a == "b" & has(foo)',
    'a == "b" | has(foo)', 'label starts foo "value"', 'label inf "value"',
    'label ends foo "value"', 'label ends withs "value"', 'label squiggles "value"',
]

# tokenizer_test.go inputs that are whole selectors, each with a spelling of the same
# selector in Calico's canonical form; the parse must give one Selector for both.
SPELLINGS: list[tuple[str, str]] = [
    ('a=="b"', 'a == "b"'),
    ('a!="b"', 'a != "b"'),
    ('(a=="b")', 'a == "b"'),
    ('label == "value"', 'label == "value"'),
    ('label contains "value"', 'label contains "value"'),
    ('contains contains "contains"', 'contains contains "contains"'),
    ("contains contains 'contains'", 'contains contains "contains"'),
    ('label contains"value"', 'label contains "value"'),
    ('label startswith "value"', 'label starts with "value"'),
    ('label endswith "value"', 'label ends with "value"'),
    ('label starts with "value"', 'label starts with "value"'),
    ('startswith starts with "value"', 'startswith starts with "value"'),
    ('label ends with "value"', 'label ends with "value"'),
    ('endswith ends with "value"', 'endswith ends with "value"'),
    ('label starts  with "value"', 'label starts with "value"'),
    ('label ends  with "value"', 'label ends with "value"'),
    ("a" * 63 + ' == "value"', "a" * 63 + ' == "value"'),
    ("has(calico/k8s_ns)", "has(calico/k8s_ns)"),
    ('calico/k8s_ns == "kube-system" && k8s-app == "kube-dns"',
     'calico/k8s_ns == "kube-system" && k8s-app == "kube-dns"'),
    ("a not in {}", "a not in {}"),
    ('a not in {"a"}', 'a not in {"a"}'),
    ('a not in {"a","B"}', 'a not in {"a", "B"}'),
    ("global()", "global()"),
    ("global( )", "global()"),
    ("all()", "all()"),
    ("all( )", "all()"),
    # The tokenizer's "notin" and operators touching the literal, in whole selectors.
    ('a notin{"bar"}&&!has(foo)||b in{"c"}', '(a not in {"bar"} && !has(foo)) || b in {"c"}'),
    ('a  not  in  {"bar"}  &&  ! has( foo )', 'a not in {"bar"} && !has(foo)'),
    # parser.go reads a set as values each followed by an optional comma.
    ('a in {"x",}', 'a in {"x"}'),
    ('a in {"x", "y",}', 'a in {"x", "y"}'),
    ("a not in {'x' , }", 'a not in {"x"}'),
    # parser_test.go canonicalisationTests: (input, Calico's canonical form).
    ("", "all()"),
    (" all() ", "all()"),
    (" (all() )", "all()"),
    ("! (has( b)||! has(a ))", "!(has(b) || !has(a))"),
    ('! (a == "b"&&! c != "d")', '!(a == "b" && !c != "d")'),
    ("a == \"'\"", "a == \"'\""),
    ("a == '\"'", "a == '\"'"),
    ("a contains '\"'", "a contains '\"'"),
    ("a contains \"'\"", "a contains \"'\""),
    ("a startswith '\"'", "a starts with '\"'"),
    ("a endswith \"'\"", "a ends with \"'\""),
    ("a!='\"'", "a != '\"'"),
    ('a in {"d"}', 'a in {"d"}'),
    ('a in {"a", "b"}', 'a in {"a", "b"}'),
    ('a in {"d", "a", "b"}', 'a in {"a", "b", "d"}'),
    ('a in {"z", "x", "y", "a"}', 'a in {"a", "x", "y", "z"}'),
    ('a in {"z", "z", "x", "y", "x", "a"}', 'a in {"a", "x", "y", "z"}'),
]

# Sets the grammar still refuses: a comma needs a value before it.
SET_ERRORS: list[str] = ["a in {,}", "a in {'x',,}", "a not in { , }", "a in {'x' 'y',}"]

# Vectors gingham decides differently, on purpose: Calico's tokenizer takes any run of
# key characters up to 512; gingham takes only keys a label can have (Kubernetes'
# qualified names, the rule metadata.labels follows), so a selector cannot silently
# never match. (input, what the error says)
DIFFERENCES: list[tuple[str, str]] = [
    ("a" * 512 + ' == "value"', "name part must be 1-63"),
    ("has(calico/k8s_ns/role)", "at most one '/'"),
    ("has(calico/k8s_NS-.1/role)", "at most one '/'"),
]


@pytest.mark.parametrize(("expr", "matches", "misses"), MATCHES)
def test_calico_match_vectors(expr: str, matches: list[Labels], misses: list[Labels]) -> None:
    sel = parse(expr)
    again = parse(sel.canonical)
    for labels in matches:
        assert sel.evaluate(labels) and again.evaluate(labels), (expr, labels)
    for labels in misses:
        assert not sel.evaluate(labels) and not again.evaluate(labels), (expr, labels)


@pytest.mark.parametrize("expr", BAD + SET_ERRORS)
def test_calico_bad_selectors(expr: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse(expr)
    assert 0 <= info.value.position <= len(expr)


@pytest.mark.parametrize(("expr", "calico_form"), SPELLINGS)
def test_calico_spellings(expr: str, calico_form: str) -> None:
    sel = parse(expr)
    assert sel == parse(calico_form)
    assert parse(sel.canonical) == sel


@pytest.mark.parametrize(("expr", "fragment"), DIFFERENCES)
def test_deliberate_differences(expr: str, fragment: str) -> None:
    with pytest.raises(SelectorError, match=fragment):
        parse(expr)
