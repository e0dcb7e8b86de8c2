"""Why was this packet dropped: explain, per-rule counters, the flow log and
``lab matrix --explain``, against the real dataplane of the conformance lab."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from gingham.cli.main import cli
from gingham.policy import flows, stats
from gingham.policy.world import load_world
from tests.conformance.conftest import Cluster
from tests.conformance.reach import Reach

pytestmark = pytest.mark.integration

LOG_DENY = """apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: log-deny, namespace: x}
spec:
  selector: pod == 'a'
  ingress:
  - action: Log
    protocol: TCP
  - action: Deny
    source: {selector: pod == 'b'}
  - action: Allow
"""
LOG_ID = "policy:default/x/log-deny:i0"
DENY_ID = "policy:default/x/log-deny:i1"


@pytest.fixture
def netns_logging() -> Iterator[None]:
    path = flows.NF_LOG_ALL_NETNS
    before = path.read_text()
    flows.enable_netns_logging()
    try:
        yield
    finally:
        path.write_text(before)


@pytest.fixture
def log_deny(k8s: Cluster) -> Iterator[Cluster]:
    k8s.apply(LOG_DENY)
    k8s.check({(80, "tcp"): Reach().block(frm="x/b", to="x/a")})
    yield k8s


def _cli(k8s: Cluster, *args: str) -> tuple[int, str]:
    from gingham.lab import state as labstate

    url = labstate.load(k8s.lab).datastore
    result = CliRunner().invoke(cli, ["--datastore", url, *args])
    # stdout alone holds JSON; a failure (status 2 and up) is easier to read with stderr
    return result.exit_code, result.stdout if result.exit_code in (0, 1) else result.output


def _hosts(k8s: Cluster) -> list[tuple[str, str | None]]:
    from gingham.lab import state as labstate

    return [(h.name, h.netns) for h in labstate.load(k8s.lab).hosts]


def _host_of(k8s: Cluster, ref: str) -> str:
    from gingham.lab import state as labstate

    return labstate.load(k8s.lab).workload(ref).host


def test_explain_names_tier_policy_and_rule(log_deny: Cluster) -> None:
    code, out = _cli(log_deny, "policy", "explain", "x/b", "x/a", "--port", "80")
    assert code == 1, out
    assert "DENIED" in out
    assert "ingress rule 1 of policy default/x/log-deny in tier default: Deny" in out
    assert f"logged by {LOG_ID}" in out
    code, out = _cli(log_deny, "policy", "explain", "y/b", "y/a", "--port", "80", "-o", "json")
    assert code == 0, out
    data = json.loads(out)
    assert data["allowed"] is True
    assert data["ingress"]["reason"] == "no policy selects y/a: profile kns.y allows (ingress rule 0)"


def test_counters_name_the_rule_that_dropped(log_deny: Cluster) -> None:
    world = load_world(log_deny.datastore)
    host = _host_of(log_deny, "x/a")

    def deny_count() -> int:
        return sum(r.packets for r in stats.collect(_hosts(log_deny), world)
                   if r.rule_id == DENY_ID and r.host == host)

    before = deny_count()
    assert not log_deny.measure(80, "tcp")["x/b"]["x/a"]
    rows = stats.collect(_hosts(log_deny), world)
    mine = {r.rule_id: r for r in rows if r.host == host and r.owner == "default/x/log-deny"}
    assert mine[DENY_ID].packets > before  # SYN and its retransmissions, if any
    assert mine[DENY_ID].action == "Deny" and mine[DENY_ID].direction == "ingress"
    assert mine[LOG_ID].packets >= mine[DENY_ID].packets
    assert mine[LOG_ID].action == "Log"
    # no other host runs the policy: x/a lives on one host only
    assert not [r for r in rows if r.host != host and r.owner == "default/x/log-deny"]
    code, out = _cli(log_deny, "policy", "stats", "--lab", log_deny.lab, "-o", "json")
    assert code == 0, out
    assert any(r["ruleId"] == DENY_ID and r["packets"] > 0 for r in json.loads(out))


def test_default_deny_is_counted_per_endpoint(k8s: Cluster) -> None:
    k8s.apply("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
              "metadata: {name: deny, namespace: y}\nspec: {podSelector: {matchLabels: {pod: c}},"
              " policyTypes: [Ingress]}\n")
    k8s.check({(80, "tcp"): Reach().block(to="y/c")})
    rows = stats.collect(_hosts(k8s), load_world(k8s.datastore))
    ends = [r for r in rows if r.rule_id == "tier-end:default" and r.endpoint == "y/c"]
    assert ends and ends[0].direction == "ingress" and ends[0].action == "Deny"
    assert ends[0].packets > 0
    assert ends[0].host == _host_of(k8s, "y/c")


def test_flow_log_names_workloads_and_rule(log_deny: Cluster, netns_logging: None) -> None:
    last = max((seq for seq, _, _ in flows.read_kmsg()), default=-1)
    world = load_world(log_deny.datastore)
    deadline = time.monotonic() + 5
    while True:
        assert not log_deny.measure(80, "tcp")["x/b"]["x/a"]
        assert log_deny.measure(80, "tcp")["x/c"]["x/a"]
        recent = [f for f in flows.read_flows(world) if f.seq > last]
        denied = [f for f in recent if f.rule_id == LOG_ID and f.src_name == "x/b"]
        allowed = [g for g in recent if g.rule_id == LOG_ID and g.src_name == "x/c"]
        if (denied and allowed) or time.monotonic() > deadline:
            break
    assert denied, f"no log line for x/b -> x/a; recent: {recent[-5:]}"
    f = denied[-1]
    assert (f.dst_name, f.dst_port, f.protocol) == ("x/a", 80, "tcp")
    assert (f.owner, f.direction, f.index, f.action) == ("default/x/log-deny", "ingress", 0, "Log")
    assert f.verdict == "denied" and "rule 1 of policy default/x/log-deny" in (f.reason or "")
    assert allowed and allowed[-1].verdict == "allowed", recent[-5:]
    code, out = _cli(log_deny, "flows", "--lab", log_deny.lab, "--tail", "50", "--workload", "x/b",
                     "--policy", "log-deny", "-o", "json")
    assert code == 0, out
    rows = json.loads(out)
    assert rows and all("x/b" in (r["sourceName"], r["destinationName"]) for r in rows)


def test_lab_matrix_explain_agrees(log_deny: Cluster) -> None:
    code, out = _cli(log_deny, "lab", "matrix", "--name", log_deny.lab, "--port", "80",
                     "--explain", "-o", "json")
    assert code == 0, out
    data = json.loads(out)
    assert data["disagreements"] == []
    assert data["matrix"]["x/b"]["x/a"] is False
    # the suite's in-process prober measures what the lab's probes measure
    assert data["matrix"] == log_deny.measure(80, "tcp")


def test_follow_shows_default_deny_drops_with_names(k8s: Cluster) -> None:
    from gingham.policy.trace import TRACE_TABLE, TraceSession

    k8s.apply("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
              "metadata: {name: deny, namespace: y}\nspec: {podSelector: {matchLabels: {pod: c}},"
              " policyTypes: [Ingress]}\n---\n"
              "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
              "metadata: {name: no-out, namespace: z}\nspec: {podSelector: {matchLabels: {pod: a}},"
              " policyTypes: [Egress]}\n")
    k8s.check({(80, "tcp"): Reach().block(to="y/c").block(frm="z/a")})
    world = load_world(k8s.datastore)
    seen = []
    with TraceSession(_hosts(k8s)) as session:
        k8s.measure(81, "tcp")
        for host, flow in session.flows(timeout=3):
            seen.append((host, flows.annotate(flow, world)))
            pairs = {(f.src_name, f.dst_name) for _, f in seen}
            if ("x/a", "y/c") in pairs and ("z/a", "x/b") in pairs:
                break
    by_pair = {(f.src_name, f.dst_name): (h, f) for h, f in seen}
    host, into = by_pair[("x/a", "y/c")]
    assert (into.rule_id, into.direction, into.dst_port, into.verdict) == (
        "tier-end:default", "ingress", 81, "denied")
    assert host == _host_of(k8s, "y/c")
    assert "no ingress rule of tier default matched" in (into.reason or "")
    host, out = by_pair[("z/a", "x/b")]
    assert (out.rule_id, out.direction) == ("tier-end:default", "egress")
    assert host == _host_of(k8s, "z/a")
    # nothing that was allowed shows up, and the trace table is gone again
    assert ("x/a", "y/b") not in by_pair
    for _host, netns in _hosts(k8s):
        import subprocess

        listed = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "nft", "list",
                                 "tables"], capture_output=True, text=True, check=True).stdout
        assert TRACE_TABLE not in listed


def test_follow_command_records_drops_for_plain_flows(k8s: Cluster) -> None:
    import threading

    k8s.apply("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
              "metadata: {name: deny, namespace: x}\nspec: {podSelector: {matchLabels: {pod: b}},"
              " policyTypes: [Ingress]}\n")
    k8s.check({(80, "tcp"): Reach().block(to="x/b")})
    traffic = threading.Timer(1.0, lambda: k8s.measure(80, "tcp"))
    traffic.start()
    try:
        code, out = _cli(k8s, "flows", "--follow", "--duration", "3", "--lab", k8s.lab,
                         "--workload", "x/b", "-o", "json")
    finally:
        traffic.join()
    assert code == 0, out
    live = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert live and all(f["destinationName"] == "x/b" for f in live)
    assert {f["ruleId"] for f in live} == {"tier-end:default"}
    code, out = _cli(k8s, "flows", "--lab", k8s.lab, "--tail", "100", "--workload", "x/b",
                     "-o", "json")
    assert code == 0, out
    assert any(f["ruleId"] == "tier-end:default" and f["sourceName"] == "y/a"
               for f in json.loads(out))


def test_default_deny_drops_are_in_the_kernel_log(k8s: Cluster, netns_logging: None) -> None:
    k8s.apply("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
              "metadata: {name: deny, namespace: y}\nspec: {podSelector: {matchLabels: {pod: c}},"
              " policyTypes: [Ingress]}\n")
    k8s.check({(80, "tcp"): Reach().block(to="y/c")})
    last = max((seq for seq, _, _ in flows.read_kmsg()), default=-1)
    world = load_world(k8s.datastore)
    deadline = time.monotonic() + 5
    while True:
        k8s.measure(80, "tcp")
        drops = [f for f in flows.read_flows(world)
                 if f.seq > last and f.rule_id == "tier-end:default" and f.dst_name == "y/c"]
        if drops or time.monotonic() > deadline:
            break
    assert drops, "no kernel log line for the default deny in front of y/c"
    f = drops[-1]
    assert (f.kind, f.owner, f.direction, f.verdict, f.dst_port) == (
        "tier-end", "default", "ingress", "denied", 80)
    assert "knp.default.deny" in (f.reason or "")
