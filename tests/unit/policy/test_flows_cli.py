"""``gingham flows`` flags: -n is the namespace (a number still the old count, noted), --tail,
--host, -f/-w; RFC 3339 times and a HOST column (the kernel log itself: conformance/lab tests)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gingham.cli import policy as policy_cli
from gingham.cli.main import cli
from gingham.policy import flows
from tests.unit.policy.test_stats_flows import LINE, WORLD

OTHER_NS = LINE.replace("SRC=198.18.0.2", "SRC=203.0.113.9")


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Outside a lab, three logged packets (two from x/b on h2, one from outside on h1)."""
    got: dict[str, Any] = {}
    base = [replace(f, host=h) for f, h in zip(
        flows.read_flows(WORLD, [(1, 1, LINE), (2, 2, OTHER_NS), (3, 3, LINE)]),
        ("h2", "h1", "h2"), strict=True)]  # fmt: skip

    def read_flows(world: Any, records: Any = None, scope: Any = None) -> list[flows.Flow]:
        got["scope"] = scope
        return base

    monkeypatch.setattr(flows, "read_flows", read_flows)
    monkeypatch.setattr(flows, "netns_logging_enabled", lambda: True)
    monkeypatch.setattr(policy_cli, "_world", lambda: WORLD)
    monkeypatch.setattr(policy_cli, "_lab_of", lambda name: None)
    monkeypatch.setattr(policy_cli, "_recorded_path", lambda name: None)
    return got


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["flows", *args])


def seqs(result: Result) -> list[int]:
    assert result.exit_code == 0, result.output
    return [f["seq"] for f in json.loads(result.stdout)]


def test_dash_n_is_the_namespace(seen: dict[str, Any]) -> None:
    # 203.0.113.9 -> x/a is in namespace x too (its destination): all three
    assert seqs(run("-n", "x", "-o", "json")) == [1, 2, 3]
    assert seqs(run("-n", "y", "-o", "json")) == []
    assert seqs(run("--namespace", "y", "-n", "x", "-o", "json")) == [1, 2, 3]
    assert isinstance(seen["scope"], flows.Scope)  # only this machine's interfaces


def test_a_number_after_dash_n_is_still_the_count_with_a_note(seen: dict[str, Any]) -> None:
    got = run("-n", "2", "-o", "json")
    assert seqs(got) == [2, 3]
    assert got.stderr == ("note: flows -n 2 as a packet count is deprecated: -n is the "
                          "namespace, as in every other command; use --tail 2\n")
    got = run("--tail", "1", "-o", "json")
    assert seqs(got) == [3] and got.stderr == ""
    assert seqs(run("--namespace=2", "-o", "json")) == []  # a namespace called "2"


def test_host_filter_and_column_and_rfc3339_times(seen: dict[str, Any]) -> None:
    assert seqs(run("--host", "h1", "-o", "json")) == [2]
    got = run("--host", "h2", "-o", "json")
    rows = json.loads(got.stdout)
    assert [r["host"] for r in rows] == ["h2", "h2"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]) for r in rows)
    table = run("--host", "h1").stdout.splitlines()
    assert table[0].split()[:3] == ["TIME", "HOST", "SOURCE"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", table[1].split()[0])
    assert table[1].split()[1] == "h1"


def test_follow_watch_and_their_short_flags(seen: dict[str, Any],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    followed: list[tuple[Any, ...]] = []
    monkeypatch.setattr(policy_cli, "_follow", lambda *a: followed.append(a))
    monkeypatch.setattr(policy_cli, "_hosts", lambda name: [("here", None)])
    for flag in ("-f", "--follow", "-w", "--watch"):
        assert run(flag, "--duration", "1").exit_code == 0
    assert len(followed) == 4 and "scope" not in seen
