"""`gingham selector` exit codes and output, through click's CliRunner."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from gingham.cli.main import cli
from gingham.cli.selector import caret_lines, parse_labels, selector_cmd
from gingham.selector import parse


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["selector", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_valid_without_labels_prints_canonical() -> None:
    code, out, err = run("tier in {'b','a'}  &&app=='web'")
    assert code == 0
    assert out == 'app == "web" && tier in {"a", "b"}\n'
    assert err == ""


def test_match_and_no_match() -> None:
    code, out, _ = run("app == 'web' && tier in {'a','b'}", "--labels", "app=web,tier=b")
    assert (code, out.splitlines()) == (0, ['app == "web" && tier in {"a", "b"}', "matches"])
    code, out, _ = run("app == 'web'", "--labels", "app=db")
    assert (code, out.splitlines()[-1]) == (1, "does not match")


def test_labels_repeatable_empty_and_with_equals_in_value() -> None:
    assert run("has(a) && b == 'x=y'", "-L", "a=", "-L", "b=x=y")[0] == 0
    assert run("!has(a)", "--labels", "")[0] == 0  # the empty label set
    assert run("all()", "--labels", "")[0] == 0
    assert run("global()", "-L", "projectcalico.org/namespace=default")[0] == 1


def test_old_dash_l_still_means_labels_with_a_note() -> None:
    """-l is a label selector in get/delete (kubectl); here it was --labels: still read."""
    code, out, err = run("has(a) && b == 'x'", "-l", "a=", "-L", "b=x")
    assert (code, out.splitlines()[-1]) == (0, "matches")
    assert err == ("note: selector -l is deprecated: -l means a label selector in get and "
                   "delete; use -L or --labels\n")
    code, _, err = run("has(a)", "-L", "a=")
    assert (code, err) == (0, "")
    help_text = CliRunner().invoke(cli, ["selector", "--help"]).output
    assert "-L, --labels" in help_text and not re.search(r"(^|\s)-l\b", help_text)


def test_show_id() -> None:
    code, out, _ = run("has(a)", "--show-id")
    assert code == 0
    assert out.splitlines() == ["has(a)", f"id: {parse('has(a)').id}"]


@pytest.mark.parametrize(
    ("expr", "position"),
    [("a ==", 4), ("app == 'web' && tier in {'a' 'b'}", 29), ("(has(x)", 7), ("a & b", 2)],
)
def test_invalid_exits_2_with_caret(expr: str, position: int) -> None:
    code, out, err = run(expr, "--labels", "a=b")
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith("error: invalid selector: ")
    assert f"position {position}" in lines[0]
    assert lines[1] == f"  {expr}"
    assert lines[2] == "  " + " " * position + "^"


def test_bad_labels_are_a_usage_error() -> None:
    code, _, err = run("has(a)", "--labels", "a=b,oops")
    assert code == 2
    assert "oops" in err and "KEY=VALUE" in err


def test_command_directly() -> None:
    result = CliRunner().invoke(selector_cmd, ["a == 'b'", "-L", "a=b"])
    assert result.exit_code == 0


def test_helpers() -> None:
    assert parse_labels(("a=1, b = 2,", "a=3")) == {"a": "3", "b": " 2"}
    assert caret_lines("a\t==", 2) == "  a ==\n    ^"
