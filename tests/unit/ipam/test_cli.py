"""``gingham ipam`` against an sqlite store, through click's test runner."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from click.testing import CliRunner

from gingham.cli.main import cli
from gingham.datastore import open_datastore
from gingham.datastore.keys import resource_key
from gingham.ipam import IPAM, check
from gingham.ipam import keys as ikeys
from tests.unit.ipam.helpers import put_node, put_pool


def run(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--datastore", url, "ipam", *args])
    return result.exit_code, result.output


def test_show_check_release(sqlite_url: str, tmp_path: Path) -> None:
    ds = open_datastore(sqlite_url, create=True)
    try:
        put_pool(ds, "p", "198.18.0.0/28", 30)
        put_node(ds, "h1")
        a = IPAM(ds, "h1", rng=random.Random(1), cache_ttl=0)
        got = a.allocate("net.c1", {"namespace": "ns", "workload": "w1"}, num_v4=3)
        a.allocate("net.c2", {"namespace": "ns", "workload": "w2"})
        check(ds, now=0.0)  # first sighting long ago
    finally:
        ds.close()

    code, out = run(sqlite_url, "show", "-o", "json")
    assert code == 0, out
    assert json.loads(out)["pools"][0] | {"reserved": 0} == \
        {"cidr": "198.18.0.0/28", "total": 16, "inUse": 4, "free": 12, "reserved": 0,
         "blocks": 1, "unreadableBlocks": 0, "unknown": 0}
    code, out = run(sqlite_url, "show", "--show-blocks")
    assert code == 0 and "198.18.0.0/28" in out and "h1" in out

    code, out = run(sqlite_url, "show", "--ip", str(got[0].ip), "-o", "json")
    holder = json.loads(out)
    assert (holder["handle"], holder["namespace"], holder["workload"], holder["host"]) == \
        ("net.c1", "ns", "w1", "h1")
    code, out = run(sqlite_url, "show", "--ip", "198.18.0.15")
    assert code == 0 and "not allocated" in out

    report = tmp_path / "leaks.json"
    code, out = run(sqlite_url, "check", "--report", str(report))
    assert code == 0, out
    assert "4 leak(s) reported" in out  # no WorkloadEndpoints exist
    saved = json.loads(report.read_text())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", saved["checkedAt"])
    assert {leak["firstSeen"] for leak in saved["leaks"]} == {"1970-01-01T00:00:00.000Z"}
    code, out = run(sqlite_url, "release", "--handle", "net.c2")
    assert code == 0 and "released" in out
    code, out = run(sqlite_url, "release", "--from-report", str(report), "-o", "json")
    outcome = json.loads(out)
    assert len(outcome["released"]) == 3 and len(outcome["skipped"]) == 1
    code, out = run(sqlite_url, "show", "-o", "json")
    assert json.loads(out)["pools"][0]["inUse"] == 0


def test_release_errors(sqlite_url: str) -> None:
    open_datastore(sqlite_url, create=True).close()
    code, out = run(sqlite_url, "release")
    assert code == 1 and "exactly one of" in out
    code, out = run(sqlite_url, "release", "--ip", "198.18.0.1", "--sequence", "3",
                    "--ip", "198.18.0.2")
    assert code == 1 and "--sequence" in out
    code, out = run(sqlite_url, "release", "--ip", "nonsense")
    assert code == 2 and "nonsense" in out


def test_configure(sqlite_url: str) -> None:
    open_datastore(sqlite_url, create=True).close()  # ipam never makes a datastore
    code, out = run(sqlite_url, "configure", "--strict-affinity", "--max-blocks-per-host", "3")
    assert code == 0 and json.loads(out) == {"strictAffinity": True, "maxBlocksPerHost": 3}
    code, out = run(sqlite_url, "configure", "--host", "h9", "--max-blocks-per-host", "1")
    ds = open_datastore(sqlite_url)
    try:
        cfg = IPAM(ds, "h9").config()
    finally:
        ds.close()
    assert (cfg.strict_affinity, cfg.max_blocks_per_host) == (True, 1)


def test_check_release_in_one_go(sqlite_url: str) -> None:
    ds = open_datastore(sqlite_url, create=True)
    try:
        put_pool(ds, "p", "198.18.0.0/28", 30)
        IPAM(ds, "gone", cache_ttl=0).allocate("g", {"namespace": "ns", "workload": "w"})
    finally:
        ds.close()
    code, out = run(sqlite_url, "check", "--grace", "0", "--release")
    assert code == 0 and "0 leak(s)" in out  # first sighting
    code, out = run(sqlite_url, "check", "--grace", "0", "--release", "-o", "json")
    doc = json.loads(out)
    assert len(doc["release"]["released"]) == 1  # the address; its block empties
    code, out = run(sqlite_url, "check", "--grace", "0", "--release")
    code, out = run(sqlite_url, "check", "--grace", "0", "--release")
    assert "released 1" in out  # the empty block of the gone host
    code, out = run(sqlite_url, "show", "-o", "json", "--show-blocks")
    assert json.loads(out)["blocks"] == []


def test_assign_a_requested_address(sqlite_url: str) -> None:
    ds = open_datastore(sqlite_url, create=True)
    try:
        put_pool(ds, "p", "198.18.0.0/24")
    finally:
        ds.close()
    code, out = run(sqlite_url, "assign", "--ip", "198.18.0.77", "--handle", "manual",
                    "--host", "h1", "-o", "json")
    assert code == 0, out
    assert json.loads(out)["block"] == "198.18.0.64/26"
    code, out = run(sqlite_url, "assign", "--ip", "198.18.0.77", "--handle", "other",
                    "--host", "h2")
    assert code == 1 and "already held by handle manual" in out
    code, out = run(sqlite_url, "show", "--ip", "198.18.0.77", "-o", "json")
    assert json.loads(out)["blockHost"] == "h1"


def test_show_check_and_release_with_unreadable_documents(sqlite_url: str) -> None:
    ds = open_datastore(sqlite_url, create=True)
    try:
        put_pool(ds, "p", "198.18.0.0/28", 30)
        put_node(ds, "h1")
        put_node(ds, "h2")
        [a] = IPAM(ds, "h1", rng=random.Random(1), cache_ttl=0).allocate("a")
        [b] = IPAM(ds, "h2", rng=random.Random(2), cache_ttl=0).allocate("b")
        block_key = ikeys.block_key(b.block)
        ds.put_raw(block_key, b"\x00garbage")
        pool_key = resource_key("IPPool", "bad")
        ds.put_raw(pool_key, b'{"kind": "IPPool", "metadata": {"name": "bad"}, "spec": 5}')
    finally:
        ds.close()

    result = CliRunner().invoke(cli, ["--datastore", sqlite_url, "ipam", "show", "-o", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    [pool] = doc["pools"]
    assert (pool["inUse"], pool["unreadableBlocks"], pool["unknown"], pool["free"]) == \
        (1, 1, 4, 11)
    assert sorted(u["key"] for u in doc["unreadable"]) == sorted([block_key, pool_key])
    assert f"warning: {block_key} is unreadable" in result.stderr
    assert result.stderr.count(block_key) == 1  # said once, not again by the log

    code, out = run(sqlite_url, "show", "--show-blocks")
    assert code == 0 and str(a.block) in out and "warning" in out

    code, out = run(sqlite_url, "show", "--ip", str(b.ip))
    assert code == 1 and block_key in out and "cannot be told" in out

    code, out = run(sqlite_url, "check", "--grace", "0")
    assert code == 0 and f"problem: {block_key} is unreadable (not JSON" in out
    assert f"problem: {pool_key} is unreadable" in out

    code, out = run(sqlite_url, "release", "--handle", "b")
    assert code == 1, out
    assert block_key in out and "released meanwhile: nothing; handle b is kept" in out
    code, out = run(sqlite_url, "release", "--ip", str(a.ip), "--ip", str(b.ip))
    assert code == 1 and block_key in out and f"released meanwhile: {a.ip}" in out


def test_configure_replaces_an_unreadable_configuration_saying_so(sqlite_url: str) -> None:
    ds = open_datastore(sqlite_url, create=True)
    try:
        ds.put_raw(ikeys.CONFIG_GLOBAL, b"[not, json")
    finally:
        ds.close()
    result = CliRunner().invoke(cli, ["--datastore", sqlite_url, "ipam", "configure",
                                      "--max-blocks-per-host", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"maxBlocksPerHost": 2}
    assert "replacing unreadable" in result.stderr


def test_a_report_with_unix_times_still_reads(sqlite_url: str, tmp_path: Path) -> None:
    """Reports written before times were RFC 3339 text: --from-report takes them."""
    from gingham.ipam.leaks import LeakReport

    old = {"checkedAt": 5.5, "grace": 60, "pending": 0, "problems": [],
           "leaks": [{"kind": "block", "reason": "r", "firstSeen": 1.25, "cidr": "198.18.0.0/26"}]}
    back = LeakReport.from_json(old)
    assert (back.checked_at, back.leaks[0].first_seen) == (5.5, 1.25)
    assert LeakReport.from_json(back.to_json()) == back
    bad = {**old, "checkedAt": "yesterday"}
    report = tmp_path / "bad.json"
    report.write_text(json.dumps(bad))
    open_datastore(sqlite_url, create=True).close()
    code, out = run(sqlite_url, "release", "--from-report", str(report))
    assert code == 1 and "report.checkedAt: not a time: 'yesterday'" in out
