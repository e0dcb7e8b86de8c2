"""Each benchmark runs in a tiny configuration and prints one JSON object.

Benchmarks are measured by running them, never by timed assertions: these
tests only check that every script still runs end to end and says what it
measured. The ones that need root and a lab take tens of seconds each, so
they run only with ``GINGHAM_BENCH_TESTS=1`` (they are marked integration
and slow as well); the report generator and the simulated cluster run always.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "bench"
LAB_BENCHES = pytest.mark.skipif(
    os.environ.get("GINGHAM_BENCH_TESTS") != "1",
    reason="lab benchmarks take tens of seconds: set GINGHAM_BENCH_TESTS=1",
)


def run_bench(name: str, *args: str, timeout: float = 240) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert isinstance(data, dict)
    return data


def test_report_renders_targets_and_sections() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    runs: dict[str, dict[str, Any]] = {
        "ttfr": {"meta": {"command": "c", "loadavg_before": [1.0], "loadavg_after": [2.0]},
                 "result": {"ttfr": {"n": 3, "p50_ms": 12.5, "p99_ms": 40.0}, "workloads": 3}},
        "cni": {"meta": {"command": "c"}, "result": None},
    }  # fmt: skip
    text = run_all.render(runs, {}, run_all.machine())
    assert "| time to first response p50 (ms) | <= 10 | 12.5 | missed by 25% |" in text
    assert "| time to first response p99 (ms) | <= 50 | 40 | met |" in text
    assert "## ttfr" in text and "## cni" in text and "No result" in text
    assert "## Not run" in text  # the other benchmarks


@pytest.mark.slow
def test_many_hosts_tiny_both_modes() -> None:
    data = run_bench("many_hosts", "--hosts", "6", "--workers", "2", "--changes", "1",
                     "--idle", "0.5", "--policies", "3")  # fmt: skip
    modes = {r["mode"]: r for r in data["results"]}
    assert set(modes) == {"direct", "fanout"}
    for r in modes.values():
        assert r["first_sync"]["agents_synced"] == 6
        assert r["changes"][0]["converged"] == 6
        assert r["changes"][0]["nft_commands_total"] > 0  # every host's dataplane changed
    # idle agents behind the fan-out only read when the server writes to them
    idle = {m: r["idle"]["agent_datastore_polls_per_second"] for m, r in modes.items()}
    assert idle["fanout"] * 10 < idle["direct"]


@pytest.mark.integration
@pytest.mark.slow
@LAB_BENCHES
def test_cni_tiny() -> None:
    data = run_bench("cni", "--n", "3")
    rows = data["results"]
    assert rows["gingham (agent)"]["add"]["n"] == 3 and rows["gingham (direct)"]["add"]["n"] == 3
    assert rows["gingham (agent)"]["agent_side"]["add"]["n"] == 3  # the agent did them


@pytest.mark.integration
@pytest.mark.slow
@LAB_BENCHES
def test_ttfr_tiny() -> None:
    data = run_bench("ttfr", "--workloads", "4", "--rate", "4", "--policies", "10")
    assert data["failed"] == 0 and data["ttfr"]["n"] == 4
    assert data["cni_path"] == "agent" and data["ttfr_from_add_start"]["n"] == 4


@pytest.mark.integration
@pytest.mark.slow
@LAB_BENCHES
def test_propagation_tiny() -> None:
    data = run_bench("propagation", "--hosts", "2", "--trials", "1")
    assert data["results"][0]["open"]["n"] == 1


@pytest.mark.integration
@pytest.mark.slow
@LAB_BENCHES
def test_agent_scale_quick() -> None:
    data = run_bench("agent_scale", "--quick", "--reps", "3")
    assert all("updates" in r for rows in data["sweeps"].values() for r in rows)


@pytest.mark.integration
@pytest.mark.slow
@LAB_BENCHES
def test_dataplane_cost_tiny() -> None:
    data = run_bench("dataplane_cost", "--seconds", "1", "--sizes", "0,100,1000")
    assert set(data["results"]) == {"0", "100", "1000"}
    assert data["order"] == [0, 100, 1000, 1000, 100, 0]
    for row in data["results"].values():
        assert row["connections"] > 0 and row["connect_p99_ms"] >= row["connect_p50_ms"] > 0
        assert len(row["runs"]) == 2
    assert data["results"]["0"]["connect_p99_ratio"] == 1.0
    checks = {(c["key"], c["policies"]): c for c in data["target"]["checks"]}
    assert checks[("connection_rate_ratio", 1000)]["measured"] is not None
    assert checks[("connection_rate_ratio", 5000)]["measured"] is None  # not run


@pytest.mark.integration
@pytest.mark.slow
@LAB_BENCHES
def test_policy_programming_tiny() -> None:
    data = run_bench("policy_programming", "--policies", "30", "--reps", "2", "--edits", "3")
    res = data["result"]
    assert len(res["cold_apply"]["reps"]) == 2 and res["cold_agent_start"]["ms"] > 0
    assert res["edit"]["n"] == 3 and len({e["policy"] for e in res["edit"]["edits"]}) == 3
    assert res["edit"]["agent_apply_latency"]["applies"] >= 3


def test_ports_in_finds_ports_whatever_the_rendering() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import dataplane_cost
    finally:
        sys.path.remove(str(BENCH))
    text = dataplane_cost._COUNTERS.sub("", "\n".join([
        'ip saddr 203.0.113.4 tcp dport 10004 counter packets 10006 bytes 10007 accept',
        'elements = { 10001-10003, 10009 : jump pol-10010abc-i }',
        'comment "policy:default/cost/filler-1234:i0" comment "v:10011" meta mark 0x00010012',
    ]))  # fmt: skip
    assert dataplane_cost.ports_in(text, 10000, 20000) == {10001, 10003, 10004, 10009}


def test_fanout_latency_tiny() -> None:
    data = run_bench("fanout_latency", "--writes", "5", "--gap", "0.01", "--clients", "2")
    res = data["result"]
    assert res["writes"] == 5 and res["clients"] == 2
    assert 0 < res["min_ms"] <= res["p50_ms"] <= res["max_ms"]


@pytest.mark.integration
@pytest.mark.slow
@LAB_BENCHES
def test_openstack_port_tiny() -> None:
    from gingham.lab.openstack_cache import missing

    if missing() is not None:
        pytest.skip(f"no OpenStack here: {missing()}")
    data = run_bench("openstack_port", "--ports", "2")
    assert data["failed"] == 0 and data["port_create_to_first_response"]["n"] == 2
    assert data["nova_plug"]["n"] == 2 and data["lab_up_seconds"] > 0
