"""Rule ids, counters and kernel log lines read back (pure parts)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gingham.dataplane.layout import short_comment
from gingham.dataplane.policy import log_prefix
from gingham.model import load_manifests
from gingham.policy import flows
from gingham.policy.ruleids import known_rule_ids, parse_rule_id, resolver
from gingham.policy.stats import rule_stats
from gingham.policy.world import World

WORLD = World.build(load_manifests("""
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: h1-cni-a-eth0, namespace: x, labels: {pod: a}}
spec: {workload: a, node: h1, interfaceName: gh00000000aa, ipNetworks: [198.18.0.1/32],
       profiles: [kns.x]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: h2-cni-b-eth0, namespace: x, labels: {pod: b}}
spec: {workload: b, node: h2, interfaceName: gh00000000bb, ipNetworks: [198.18.0.2/32],
       profiles: [kns.x]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: log-deny, namespace: x}
spec:
  selector: pod == 'a'
  ingress:
  - action: Log
  - action: Deny
    source: {selector: pod == 'b'}
  - action: Allow
"""))


def test_parse_rule_ids() -> None:
    r = parse_rule_id("policy:default/x/knp.default.web:i3")
    assert (r.kind, r.owner, r.tier, r.direction, r.index) == (
        "policy", "default/x/knp.default.web", "default", "ingress", 3)
    g = parse_rule_id("policy:security/block:e0")
    assert (g.owner, g.tier, g.direction) == ("security/block", "security", "egress")
    p = parse_rule_id("profile:kns.x:e0")
    assert (p.kind, p.owner, p.index) == ("profile", "kns.x", 0)
    t = parse_rule_id("tier-end:security")
    assert (t.kind, t.tier, t.is_drop) == ("tier-end", "security", True)
    assert parse_rule_id("no-profile-allowed").is_drop
    assert parse_rule_id("missing-policy:default/x/y").kind == "missing-policy"
    assert not parse_rule_id("failsafe-in").is_drop
    assert parse_rule_id("whatever").kind == "other"


def test_shortened_comments_resolve_to_the_full_rule_id() -> None:
    long_id = "policy:default/x/" + "n" * 150 + ":i0"
    resolve = resolver([long_id, "policy:default/x/short:i0"])
    assert resolve(short_comment(long_id)) == long_id
    prefix = log_prefix(long_id)
    assert resolve(prefix[len("gingham "):-2]) == long_id
    assert resolve("policy:default/x/short:i0") == "policy:default/x/short:i0"
    assert "policy:default/x/log-deny:i2" in known_rule_ids(WORLD)
    assert "profile:kns.x:e0" in known_rule_ids(WORLD)


def _rule(chain: str, comment: str | None, packets: int, nbytes: int = 0) -> dict[str, Any]:
    rule: dict[str, Any] = {"family": "inet", "table": "gingham", "chain": chain, "handle": 1,
                            "expr": [{"match": {}}, {"counter": {"packets": packets,
                                                                 "bytes": nbytes}}]}
    if comment is not None:
        rule["comment"] = comment
    return {"rule": rule}


def test_rule_stats_sum_renderings_and_split_drops_per_endpoint() -> None:
    pol = "pol-0123456789ab-i"
    doc = {"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        _rule(pol, "v:abc", 99),                                  # chain marker: skipped
        _rule(pol, "policy:default/x/log-deny:i0", 3, 180),       # IPv4 rendering
        _rule(pol, "policy:default/x/log-deny:i0", 1, 80),        # IPv6 rendering
        _rule(pol, "policy:default/x/log-deny:i1", 2, 120),
        _rule("tw-gh00000000aa", "tier-end:default", 5, 300),
        _rule("fw-gh00000000bb", "tier-end:default", 7, 420),
        _rule("fw-gh00000000bb", "no-profile-allowed", 0),
        _rule("fwd-from-wl", None, 1000),                         # no comment: skipped
    ]}  # fmt: skip
    rows = {(r.rule_id, r.endpoint): r for r in rule_stats("h1", doc, WORLD)}
    log = rows[("policy:default/x/log-deny:i0", None)]
    assert (log.packets, log.bytes, log.action, log.direction, log.index) == (
        4, 260, "Log", "ingress", 0)
    assert rows[("policy:default/x/log-deny:i1", None)].action == "Deny"
    to_a = rows[("tier-end:default", "x/a")]
    assert (to_a.packets, to_a.direction, to_a.action, to_a.owner) == (
        5, "ingress", "Deny", "default")
    from_b = rows[("tier-end:default", "x/b")]
    assert (from_b.packets, from_b.direction) == (7, "egress")
    assert rows[("no-profile-allowed", "x/b")].packets == 0
    assert len(rows) == 5


LINE = ("gingham policy:default/x/log-deny:i0: IN=gh00000000bb OUT=gh00000000aa "
        "MAC=ee:ee:ee:ee:ee:ee:aa:bb:cc:dd:ee:ff:08:00 SRC=198.18.0.2 DST=198.18.0.1 LEN=60 "
        "TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x00 "
        "SYN URGP=0")


def test_parse_kmsg_and_log_line() -> None:
    assert flows.parse_kmsg_record(f"4,1234,5000000,-;{LINE}\n SUBSYSTEM=net") == (
        1234, 5000000, LINE)
    assert flows.parse_kmsg_record("garbage") is None
    f = flows.parse_log_line(LINE, 7, 100.0)
    assert f is not None
    assert (f.rule_id, f.owner, f.direction, f.index, f.action) == (
        "policy:default/x/log-deny:i0", "default/x/log-deny", "ingress", 0, "Log")
    assert (f.src, f.dst, f.protocol, f.src_port, f.dst_port) == (
        "198.18.0.2", "198.18.0.1", "tcp", 40000, 80)
    assert (f.in_iface, f.out_iface, f.seq, f.time) == ("gh00000000bb", "gh00000000aa", 7, 100.0)
    assert flows.parse_log_line("eth0: link up") is None


def test_annotate_names_workloads_and_attaches_the_model_verdict() -> None:
    f = flows.parse_log_line(LINE)
    assert f is not None
    a = flows.annotate(f, WORLD)
    assert (a.src_name, a.dst_name, a.verdict) == ("x/b", "x/a", "denied")
    assert "ingress rule 1 of policy default/x/log-deny" in (a.reason or "")


def test_drop_markers_with_direction() -> None:
    line = LINE.replace("policy:default/x/log-deny:i0", "tier-end:security:i")
    f = flows.parse_log_line(line)
    assert f is not None
    assert (f.kind, f.owner, f.direction, f.verdict, f.action) == (
        "tier-end", "security", "ingress", "denied", "Deny")


def test_read_flows_and_select() -> None:
    other = LINE.replace("SRC=198.18.0.2", "SRC=203.0.113.9").replace("DPT=80", "DPT=81")
    records = [(1, 1_000_000, LINE), (2, 2_000_000, "unrelated line"), (3, 3_000_000, other)]
    got = flows.read_flows(WORLD, records)
    assert [f.seq for f in got] == [1, 3]
    assert got[1].src_name is None and got[1].dst_name == "x/a"
    assert [f.seq for f in flows.select(got, workload="x/b")] == [1]
    assert [f.seq for f in flows.select(got, policy="log-deny", last=1)] == [3]
    assert [f.seq for f in flows.select(got, policy="default/x/log-deny")] == [1, 3]
    assert flows.select(got, policy="other") == []


def test_shared_endpoint_chains_are_named_after_every_endpoint_using_them() -> None:
    shared = "tw-558c283bedc32aea"
    doc = {"nftables": [
        {"map": {"family": "inet", "name": "to-wl", "table": "gingham", "type": "ifname",
                 "map": "verdict", "elem": [
                     ["gh00000000bb", {"jump": {"target": shared}}],
                     ["gh00000000aa", {"jump": {"target": shared}}],
                     ["ghunknown0001", {"jump": {"target": "tw-other"}}]]}},
        _rule(shared, "tier-end:default", 4),
        _rule("tw-other", "no-profile-allowed", 1),
    ]}  # fmt: skip
    rows = {r.rule_id: r for r in rule_stats("h1", doc, WORLD)}
    assert (rows["tier-end:default"].endpoint, rows["tier-end:default"].direction) == (
        "x/a,x/b", "ingress")
    assert rows["no-profile-allowed"].endpoint == "ghunknown0001"


def test_recorded_flows_round_trip_and_merge(tmp_path: Any) -> None:
    f = flows.annotate(flows.parse_log_line(LINE, 1, 20.0) or _never(), WORLD)
    path = tmp_path / "lab" / "flows.jsonl"
    flows.record(path, f, "h1")
    with path.open("a") as out:
        out.write("{broken\n")
    back = flows.read_recorded(path)
    assert back == [replace(f, host="h1")]
    assert path.read_text().startswith('{"seq": 1, "time": "1970-01-01T00:00:20.000Z", "host": "h1"')
    early = flows.parse_log_line(LINE, 2, 10.0) or _never()
    assert [x.seq for x in flows.merge(back, [early])] == [2, 1]
    assert flows.read_recorded(tmp_path / "absent.jsonl") == []


def _never() -> flows.Flow:
    raise AssertionError("line did not parse")


def test_a_drop_marker_gets_its_direction_from_the_model() -> None:
    line = LINE.replace("policy:default/x/log-deny:i0", "tier-end:default")
    f = flows.parse_log_line(line)
    assert f is not None and f.direction is None and f.verdict == "denied"
    a = flows.annotate(f, WORLD)
    assert (a.direction, a.verdict) == ("ingress", "denied")


# ----------------------------------------------------------------- only gingham's lines, of our hosts


def test_only_the_kernels_records_count() -> None:
    """/dev/kmsg takes lines from any root process (facility user): never a flow."""
    kernel = f"4,10,5000000,-;{LINE}"
    forged = f"12,11,5000001,-;{LINE}"
    assert flows.kmsg_facility(kernel) == 0 and flows.kmsg_facility(forged) == 1
    assert flows.parse_kernel_record(kernel) == (10, 5000000, LINE)
    assert flows.parse_kernel_record(forged) is None


@pytest.mark.parametrize("line", [
    LINE.replace("gingham ", "[UFW BLOCK] ", 1),  # another firewall's prefix
    LINE.replace("gingham ", "ginghamx ", 1),
    LINE.replace("gingham ", "", 1),
    LINE.replace(": IN=", ":IN=", 1),  # not the prefix the renderer writes
    LINE.replace(": IN=", ": hello IN=", 1),  # not the packet logger's layout
    "gingham policy:default/x/log-deny:i0: started",
    "gingham: IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8",
])  # fmt: skip
def test_lines_not_in_the_renderers_form_are_not_flows(line: str) -> None:
    assert flows.parse_log_line(line) is None


def test_the_renderers_own_prefix_parses() -> None:
    line = log_prefix("policy:default/x/log-deny:i0") + LINE.split(": ", 1)[1]
    assert flows.parse_log_line(line) is not None


def test_a_scope_keeps_lines_through_its_hosts_interfaces_and_names_the_host() -> None:
    foreign = LINE.replace("IN=gh00000000bb OUT=gh00000000aa", "IN=eth0 OUT=ghforeign0001")
    records = [(1, 1_000_000, LINE), (2, 2_000_000, foreign)]
    everywhere = flows.read_flows(WORLD, records)
    assert [f.seq for f in everywhere] == [1, 2] and everywhere[0].host is None
    # h1 holds x/a (gh00000000aa, the OUT side), h2 x/b (the IN side): the first wins
    got = flows.read_flows(WORLD, records, flows.Scope.of_hosts(WORLD, {"h1", "h2"}))
    assert [(f.seq, f.host) for f in got] == [(1, "h2")]
    got = flows.read_flows(WORLD, records, flows.Scope.of_hosts(WORLD, {"h1"}))
    assert [(f.seq, f.host) for f in got] == [(1, "h1")]
    assert flows.read_flows(WORLD, records, flows.Scope.of_hosts(WORLD, {"h3"})) == []
    # the machine's scope: the model's interfaces that exist here
    here = flows.Scope.of_machine(WORLD, {"gh00000000aa", "eth0", "lo"})
    assert [(f.seq, f.host) for f in flows.read_flows(WORLD, records, here)] == [(1, "h1")]
    assert flows.read_flows(WORLD, records, flows.Scope.of_machine(WORLD, {"eth0"})) == []


def test_a_scope_since_drops_older_lines() -> None:
    records = [(1, 1_000_000, LINE), (2, 9_000_000, LINE)]
    first = flows.read_flows(WORLD, records[:1])[0].time or 0.0
    scope = flows.Scope.of_hosts(WORLD, {"h1", "h2"}, since=first + 4)
    assert [f.seq for f in flows.read_flows(WORLD, records, scope)] == [2]


def test_select_by_namespace_and_host() -> None:
    other = LINE.replace("SRC=198.18.0.2", "SRC=203.0.113.9")
    got = flows.read_flows(WORLD, [(1, 1, LINE), (2, 2, other)])
    got = [replace(got[0], host="h2"), replace(got[1], host="h1")]
    assert [f.seq for f in flows.select(got, namespaces=["x"])] == [1, 2]
    assert flows.select(got, namespaces=["y"]) == []
    assert [f.seq for f in flows.select(got, hosts=["h1"])] == [2]
    assert [f.seq for f in flows.select(got, namespaces=["x"], hosts=["h2", "h3"])] == [1]


def test_times_are_rfc3339_in_json_and_old_records_still_read() -> None:
    f = flows.parse_log_line(LINE, 1, 1764684185.25) or _never()
    assert f.to_json()["time"] == "2025-12-02T14:03:05.250Z"
    assert flows.Flow.from_json(f.to_json()).time == 1764684185.25
    assert flows.Flow.from_json({**f.to_json(), "time": 1764684185.25}).time == 1764684185.25
