"""Fuzz the selector parser: any text parses or is refused with a SelectorError.

Inputs are token soups (pieces of the language in random order, so the
parser gets deep into its grammar before failing) and plain random text. A
selector that parses must print a canonical form that parses back to itself
and must evaluate any label set to a bool.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gingham.errors import GinghamError, SelectorError
from gingham.selector import parse

PIECES = [
    "a", "b", "app", "x.y/z", "has", "in", "not", "all", "global", "contains", "starts",
    "ends", "with", "==", "!=", "!", "&&", "||", "(", ")", "{", "}", ",", "'v'", '"w"',
    "'", '"', " ", "\t", "\n", "all()", "global()", "has(a)", "-", "_", "/", "\\", "\x00",
    "é", "🙂", "$(", "`", ";", "|", "&",
]  # fmt: skip

soups = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
labels = st.dictionaries(
    st.sampled_from(["a", "b", "app", "x.y/z", "in"]), st.sampled_from(["", "v", "w", "vw"])
)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(text: str, label_set: dict[str, str]) -> None:
    try:
        sel = parse(text)
    except SelectorError as exc:
        assert 0 <= exc.position <= len(text), (text, exc.position)
        assert str(exc), text
        return
    again = parse(sel.canonical)
    assert again.canonical == sel.canonical, (text, sel.canonical)
    result = sel.evaluate(label_set)
    assert isinstance(result, bool)
    assert again.evaluate(label_set) == result


@FUZZ
@given(soups, labels)
def test_token_soup_parses_or_is_refused(text: str, label_set: dict[str, str]) -> None:
    _check(text, label_set)


@FUZZ
@given(st.text(max_size=80), labels)
def test_random_text_parses_or_is_refused(text: str, label_set: dict[str, str]) -> None:
    _check(text, label_set)


def test_deep_nesting_works_or_is_refused_never_a_recursion_error() -> None:
    # "!" chains fold (!!x is x), so they may parse; brackets have a depth limit.
    for text in (
        "(" * 5000 + "a == 'x'" + ")" * 5000,
        "!" * 5000 + "has(a)",
        "!(" * 3000 + "has(a)" + ")" * 3000,
    ):
        _check(text, {"a": "x"})


def test_huge_selector_is_refused() -> None:
    text = " || ".join(f"k{i} == 'v'" for i in range(20000))
    try:
        parse(text)
    except GinghamError:
        return
    raise AssertionError("a 300 KB selector was accepted")
