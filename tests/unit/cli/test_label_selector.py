"""``-l``: kubectl's label-selector syntax, with Calico's selectors as the fallback."""

from __future__ import annotations

import pytest

from gingham.cli.label_selector import parse_label_selector, parse_selector
from gingham.errors import SelectorError

WEB = {"app": "web", "tier": "front"}
DB = {"app": "db"}
BARE: dict[str, str] = {}


@pytest.mark.parametrize(
    ("expr", "web", "db", "bare"),
    [
        ("app=web", True, False, False),
        ("app==web", True, False, False),
        ("app = web", True, False, False),
        ("app!=web", False, True, True),  # as in Kubernetes: no label is "not web"
        ("app in (web,db)", True, True, False),
        ("app in (web, x)", True, False, False),
        ("app notin (web)", False, True, True),
        ("tier", True, False, False),
        ("!tier", False, True, True),
        ("app=web,tier", True, False, False),
        ("app,!tier", False, True, False),
        ("example.com/owner", False, False, False),
        ("", True, True, True),
    ],
)
def test_kubectl_forms(expr: str, web: bool, db: bool, bare: bool) -> None:
    match = parse_label_selector(expr)
    assert (match(WEB), match(DB), match(BARE)) == (web, db, bare)
    assert parse_selector(expr)(WEB) == web


@pytest.mark.parametrize(
    ("expr", "web", "db"),
    [
        ("app == 'web' && has(tier)", True, False),
        ("app in {'db'}", False, True),
        ("all()", True, True),
        ("!has(tier)", False, True),
    ],
)
def test_calico_selectors_are_the_fallback(expr: str, web: bool, db: bool) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(expr)
    match = parse_selector(expr)
    assert (match(WEB), match(DB)) == (web, db)


@pytest.mark.parametrize(
    ("expr", "position", "text"),
    [
        ("app in (", 8, "expected a value (as a label selector)"),
        ("app in (web", 11, "expected ')'"),
        ("app web", 4, "expected '=', '==', '!=', 'in', 'notin'"),
        ("app=web,", 8, "expected a label key"),
        ("app=w$b", 5, "unexpected character '$'"),
        ("-bad=x", 0, "invalid label key '-bad'"),
        ("app=" + "v" * 64, 4, "invalid label value"),
        ("has(app", 7, "(as a Calico selector)"),  # only Calico has has()
        ("app == 'web' &&", 15, "(as a Calico selector)"),
    ],
)
def test_a_bad_selector_names_the_position(expr: str, position: int, text: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector(expr)
    assert info.value.position == position
    assert text in str(info.value) and f"at position {position}" in str(info.value)
