"""Chaos (issue 12): a fuzzer corrupts what the agents read while a prober watches the firewall.

A 3-host lab (real agents, h3 on a second subnet so VXLAN is in play) runs
the scenario of ``chaos.py``: allowed and denied pairs on the same host and
across hosts, denied by a Kubernetes allow-list, a Calico Deny rule on a
NetworkSet, a tiered GlobalNetworkPolicy on a GlobalNetworkSet and a
default-tier GlobalNetworkPolicy. A thread probes every ordered pair (TCP)
over and over while, for CHAOS_SECONDS (default 60), a seeded fuzzer writes
through the datastore API: garbage bytes, non-JSON, JSON that is not an
object, truncated documents, wrong types, unknown and missing fields, values
of a few MiB, deep nesting, valid documents of another kind under a key,
hostile edits (a WorkloadEndpoint on eth0, a Node with ``spec: "oops"``, a
block with ``affinity: 5``, a Kubernetes selector with 20,000 values...),
keys of its own created, deleted and created again, and the cluster key
broken and restored. Then, in two steps:

1. its own keys deleted, the cluster key restored, the scenario's keys left
   corrupted: every allowed pair is open again within CHAOS_CONVERGENCE
   seconds (default 5) and the dataplane is exactly what it was (each
   corrupted key keeps its last valid version);
2. every key put back byte for byte: the dataplane is again exactly what it
   was, the agents report nothing invalid, the datastore holds what it held.

Throughout: no denied pair ever connects, no agent exits (same pids, no
supervisor restart). The seed is printed (``CHAOS_SEED`` replays it; the
operations then repeat, their timing relative to the agents does not).
``test_chaos_in_steps`` is the same without a clock: a fixed number of
operations in batches, each batch followed by waiting until the agents report
what the fuzzer knows to be invalid, then a probe of the denied pairs.

Narrower tests pin down what the fuzzing and its neighbourhood found: agents
restarted while documents are corrupted, a policy under a key no policy can
have, restarts with a Node from a newer version or an unreadable one, a CNI
ADD while the host's block is unreadable, and wrong types that a lenient
reader could take with another meaning. One lab per backend serves the whole
module (torn down after it, also on failure); each test starts by checking
the lab is back at its baseline and puts back what it changed.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gingham.datastore import keys
from gingham.datastore.base import Undecodable, encode_value
from gingham.errors import GinghamError
from gingham.lab import lab as labmod
from gingham.lab import state as labstate
from gingham.lab import workloads
from gingham.lab.state import LabState
from tests.integration.faults import chaos, tools
from tests.integration.faults.chaos import PORT

pytestmark = pytest.mark.integration

SECONDS = float(os.environ.get("CHAOS_SECONDS", "60"))
CONVERGENCE = float(os.environ.get("CHAOS_CONVERGENCE", "5"))
RATE = float(os.environ.get("CHAOS_RATE", "25"))  # operations per second, at most
STEP_OPS = int(os.environ.get("CHAOS_OPS", "300"))
BACKENDS = ["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)]


@dataclass
class Scenario:
    name: str
    backend: str
    st: LabState
    dataplane: dict[str, Any]  # as first programmed: every test must leave it so
    stored: dict[str, Any]  # the datastore without the agents' chatter


@pytest.fixture(scope="module", params=BACKENDS)
def scenario(request: pytest.FixtureRequest) -> Iterator[Scenario]:
    backend: str = request.param
    with chaos.chaos_lab(71 if backend == "sqlite" else 72, backend) as name:
        st = chaos.setup_scenario(name)
        ds = tools.datastore(st)
        try:
            stored = chaos.stored(ds)
        finally:
            ds.close()
        yield Scenario(name, backend, st, chaos.dataplane(st), stored)


def _at_baseline(sc: Scenario) -> None:
    """Fail at once when an earlier test left the lab changed (its own failure says why)."""
    same, got, _ = _wait_dataplane(sc.st, sc.dataplane, 10)
    if not same:
        pytest.fail("the lab is not at its baseline (an earlier test failed?):\n"
                    + chaos.diff(sc.dataplane, got))


def _seed(default: int | None = None) -> int:
    if "CHAOS_SEED" in os.environ:
        return int(os.environ["CHAOS_SEED"])
    return default if default is not None else random.SystemRandom().randrange(2**32)


def _status(st: LabState, host: str) -> dict[str, Any]:
    path = Path(st.run_dir) / host / "status.json"
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc


def _reported(st: LabState) -> dict[str, set[str]]:
    """Per host, the keys its agent reports invalid (status file, as node status shows it)."""
    return {h.name: {r["key"] for r in _status(st, h.name).get("invalidResources", [])}
            for h in st.hosts}  # fmt: skip


def _wait_dataplane(st: LabState, want: dict[str, Any], timeout: float) -> tuple[bool, Any, float]:
    start = time.monotonic()
    got: Any = None
    while True:
        got = chaos.dataplane(st)
        if got == want:
            return True, got, time.monotonic() - start
        if time.monotonic() - start > timeout:
            return False, got, time.monotonic() - start
        time.sleep(0.1)


def _wait_allowed_open(st: LabState, timeout: float) -> tuple[float | None, set[tuple[str, str]]]:
    """Seconds until every allowed pair connects (None: not within ``timeout``), still closed."""
    start = time.monotonic()
    closed: set[tuple[str, str]] = set(chaos.ALLOWED)
    while time.monotonic() - start <= timeout:
        cells = chaos.probe_pairs(st, chaos.ALLOWED, timeout=0.5)
        closed = {p for p, ok in cells.items() if not ok}
        if not closed:
            return time.monotonic() - start, closed
    return None, closed


def _wait_for(predicate: Any, timeout: float) -> bool:
    try:
        tools.wait_until(predicate, timeout, "condition")
    except AssertionError:
        return False
    return True


def _agents_unchanged(name: str, before: dict[str, chaos.AgentInfo]) -> list[str]:
    now = chaos.agents(name)
    return [f"agent of {h}: {before[h]} -> {now[h]}" for h in before
            if now[h].pid != before[h].pid or now[h].restarts != before[h].restarts]  # fmt: skip


def _check_after(sc: Scenario, fuzzer: chaos.Fuzzer, figures: dict[str, Any]) -> list[str]:
    """Steps 1 and 2 of the module docstring; every problem found, as text."""
    st, original, stored_before = sc.st, sc.dataplane, sc.stored
    failures: list[str] = []
    # Step 1: only the scenario's own keys are still corrupted.
    fuzzer.release()
    corrupted = fuzzer.corrupted()
    figures["corrupted_left"] = len(corrupted)
    took, closed = _wait_allowed_open(st, CONVERGENCE)
    figures["allowed_open_after_s"] = None if took is None else round(took, 2)
    if took is None:
        failures.append(f"allowed pairs still closed {CONVERGENCE}s after the last write"
                        f" (corrupted keys left in place: {sorted(corrupted)}): {sorted(closed)}")
    same, got, took = _wait_dataplane(st, original, CONVERGENCE)
    figures["dataplane_same_with_corrupted_keys"] = same
    if not same:
        failures.append("with only corrupted scenario keys left, the dataplane differs from the"
                        f" original (last valid versions not kept?):\n{chaos.diff(original, got)}")
    invalid = fuzzer.invalid_now()
    # Deleting a key that changes no rule (an own Profile, say) shows only in the reports.
    _wait_for(lambda: all(v == invalid for v in _reported(st).values()), CONVERGENCE)
    reported = _reported(st)
    figures["reported_invalid"] = {h: len(v) for h, v in reported.items()}
    for host, keys_ in reported.items():
        if keys_ != invalid:
            failures.append(f"{host} reports invalid keys that are not {sorted(keys_ - invalid)}"
                            f" and misses invalid keys {sorted(invalid - keys_)}")
    # Step 2: everything as it was.
    problems = fuzzer.restore()
    failures += [f"restore: {p}" for p in problems]
    same, got, took = _wait_dataplane(st, original, CONVERGENCE)
    figures["restored_dataplane_s"] = round(took, 2) if same else None
    if not same:
        failures.append(f"after restoring every key the dataplane differs:\n{chaos.diff(original, got)}")
    cells = chaos.probe_pairs(st, chaos.PAIRS, timeout=1.0)
    wrong = sorted(p for p, ok in cells.items() if ok != (p in chaos.ALLOWED))
    if wrong:
        failures.append(f"after restore, cells differ from the scenario: {wrong}")
    ds = tools.datastore(st)
    try:
        stored_after = chaos.stored(ds)
    finally:
        ds.close()
    if stored_after != stored_before:
        failures.append(f"the datastore differs after restore:\n{chaos.diff(stored_before, stored_after)}")
    _wait_for(lambda: not any(_reported(st).values()), CONVERGENCE)
    leftover = {h: sorted(v) for h, v in _reported(st).items() if v}
    if leftover:
        failures.append(f"agents still report invalid keys after restore: {leftover}")
    not_ready = [h.name for h in st.hosts if tools.readyz(st, h.name) != 200]
    if not_ready:
        failures.append(f"agents not ready after restore: {not_ready}")
    return failures


def _finish(
    name: str, fuzzer: chaos.Fuzzer, prober: chaos.Prober, agents_before: dict[str, chaos.AgentInfo],
    offsets: dict[str, int], failures: list[str], figures: dict[str, Any],
) -> None:  # fmt: skip
    figures.update(fuzzer.summary())
    figures["probe_rounds"] = prober.rounds
    figures["log_findings"] = {h: dict(c.most_common(8))
                               for h, c in chaos.agent_log_findings(name, offsets).items()}  # fmt: skip
    if prober.violations:
        first = prober.violations[0]
        failures.insert(0, f"{len(prober.violations)} probes of denied pairs connected; first"
                           f" {first.src} -> {first.dst} in round {first.round}; pairs:"
                           f" {sorted({(v.src, v.dst) for v in prober.violations})}")  # fmt: skip
    failures += [f"prober: {e}" for e in prober.errors[:3]]
    failures += _agents_unchanged(name, agents_before)
    failures += [f"someone else wrote a fuzzed key: {w}" for w in fuzzer.foreign_writes[:5]]
    failures += [f"the model accepts a hostile edit: {h}" for h in fuzzer.accepted_hostile[:5]]
    chaos.Report(figures).print()
    if failures:
        tail = "\n".join(str(op) for op in fuzzer.ops[-25:])
        pytest.fail(f"chaos seed {fuzzer.seed} ({len(fuzzer.ops)} operations):\n- "
                    + "\n- ".join(failures) + f"\nlast operations:\n{tail}")  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 240)
def test_chaos(scenario: Scenario) -> None:
    sc, seed = scenario, _seed()
    print(f"\nchaos seed {seed} ({sc.backend}, {SECONDS:.0f} s; CHAOS_SEED={seed} replays it)",
          flush=True)  # fmt: skip
    _at_baseline(sc)
    figures: dict[str, Any] = {"test": "chaos", "datastore": sc.backend, "seconds": SECONDS}
    agents_before = chaos.agents(sc.name)
    offsets = chaos.log_offsets(sc.name)
    ds = tools.datastore(sc.st)
    failures: list[str] = []
    try:
        fuzzer = chaos.Fuzzer(ds, seed)
        with chaos.prober_running(sc.st) as prober:
            start = time.monotonic()
            deadline = start + SECONDS
            next_at = start
            try:
                while time.monotonic() < deadline:
                    fuzzer.step()
                    next_at += 1 / RATE
                    time.sleep(max(0.0, next_at - time.monotonic()))
                figures["fuzz_s"] = round(time.monotonic() - start, 1)
                failures += _check_after(sc, fuzzer, figures)
                time.sleep(1.0)  # a last round of probes after everything settled
            finally:
                fuzzer.restore()  # also when something above raised: leave the lab as found
    finally:
        ds.close()
    _finish(sc.name, fuzzer, prober, agents_before, offsets, failures, figures)


@pytest.mark.timeout(300)
def test_chaos_in_steps(scenario: Scenario) -> None:
    """Same operations for the same seed and CHAOS_OPS, checked batch by batch, no clock."""
    sc, seed, batch = scenario, _seed(default=12), 25
    print(f"\nchaos seed {seed} ({sc.backend}, {STEP_OPS} operations in batches of {batch})",
          flush=True)  # fmt: skip
    _at_baseline(sc)
    figures: dict[str, Any] = {"test": "chaos-in-steps", "datastore": sc.backend}
    agents_before = chaos.agents(sc.name)
    offsets = chaos.log_offsets(sc.name)
    ds = tools.datastore(sc.st)
    failures: list[str] = []
    try:
        fuzzer = chaos.Fuzzer(ds, seed)
        with chaos.prober_running(sc.st) as prober:
            try:
                while len(fuzzer.ops) < STEP_OPS and not failures:
                    for _ in range(batch):
                        fuzzer.step()
                    failures += _batch_checks(sc.st, fuzzer)
                if not failures:
                    failures += _check_after(sc, fuzzer, figures)
            finally:
                fuzzer.restore()
    finally:
        ds.close()
    _finish(sc.name, fuzzer, prober, agents_before, offsets, failures, figures)


def _batch_checks(st: LabState, fuzzer: chaos.Fuzzer) -> list[str]:
    """Wait until every agent has seen the batch (its reports and block match the datastore),
    then probe the denied pairs once."""
    ds = fuzzer.ds
    kv = ds.get(keys.CLUSTER)
    cluster_ok = kv is not None and kv.value == fuzzer.original[keys.CLUSTER].value
    invalid = fuzzer.invalid_now()

    def caught_up() -> bool:
        for h in st.hosts:
            status = _status(st, h.name)
            if bool(status.get("blocked")) == cluster_ok:
                return False
            if {r["key"] for r in status.get("invalidResources", [])} != invalid:
                return False
        return True

    try:
        tools.wait_until(caught_up, 30, f"agents caught up after operation {len(fuzzer.ops)}")
    except AssertionError as exc:
        return [str(exc)]
    cells = chaos.probe_pairs(st, chaos.DENIED, timeout=0.5)
    opened = sorted(p for p, ok in cells.items() if ok)
    return [f"denied pairs open after operation {len(fuzzer.ops)}: {opened}"] if opened else []


def _endpoint_key(ds: Any, ref: str) -> str:
    namespace, name = ref.split("/")
    items, _ = ds.list(keys.resource_prefix("WorkloadEndpoint", namespace))
    found: list[str] = [kv.key for kv in items
                        if (kv.value.get("spec") or {}).get("workload") == name]  # fmt: skip
    assert len(found) == 1, found
    return found[0]


def _new_agents(name: str, before: dict[str, chaos.AgentInfo]) -> bool:
    now = chaos.agents(name)
    return all(now[h].pid not in (0, before[h].pid) and now[h].state == "running" for h in before)


@pytest.mark.timeout(300)
def test_agents_restarted_while_documents_are_corrupted(scenario: Scenario) -> None:
    """The documents the Deny rules of the scenario name (a NetworkSet, a GlobalNetworkSet, a
    WorkloadEndpoint) are corrupted; the agents of h1 and h3 are killed and restarted by
    their supervisors (h2's keeps c2's endpoint: its own workload stays programmed).

    The new agents never saw those documents valid. Treating them as absent empties the
    sets the Deny rules match, and the Allow or Pass after each rule opens the pair: invalid
    would then be wider than valid, as soon as an agent restarts (a crash, an upgrade).
    """
    sc = scenario
    _at_baseline(sc)
    ds = tools.datastore(sc.st)
    bad = [
        keys.resource_key("NetworkSet", "admin-nets", "client"),
        keys.resource_key("GlobalNetworkSet", "blocked-sources"),
        _endpoint_key(ds, "client/c2"),
    ]
    originals = {k: ds.get(k) for k in bad}
    figures: dict[str, Any] = {"test": "restart-with-corrupted", "datastore": sc.backend}
    try:
        with chaos.prober_running(sc.st) as prober:
            for key in bad:
                ds.put_raw(key, b'{"spec": {"nets": [')  # truncated: not JSON
            tools.wait_until(lambda: all(set(bad) <= v for v in _reported(sc.st).values()), 15,
                             "agents report the corrupted documents")  # fmt: skip
            before = {h: a for h, a in chaos.agents(sc.name).items() if h in ("h1", "h3")}
            for host in before:
                labmod.kill_agent(sc.name, host)
            tools.wait_until(lambda: _new_agents(sc.name, before), 30, "agents restarted")
            labmod.wait_ready(labstate.load(sc.name))
            tools.wait_until(lambda: all(set(bad) <= v for v in _reported(sc.st).values()), 15,
                             "restarted agents report the corrupted documents")  # fmt: skip
            settled = prober.rounds
            tools.wait_until(lambda: prober.rounds >= settled + 4, 30, "four rounds of probes")
        figures["probe_rounds"] = prober.rounds
        figures["opened"] = sorted({f"{v.src} -> {v.dst}" for v in prober.violations})
    finally:
        for key, kv in originals.items():
            assert kv is not None
            ds.put_raw(key, encode_value(kv.value).encode())
        ds.close()
    chaos.Report(figures).print()
    restored, got, _ = _wait_dataplane(sc.st, sc.dataplane, 15)
    assert not prober.violations, (
        "denied pairs connected after the agents restarted with corrupted documents:"
        f" {figures['opened']}"
    )
    assert restored, f"dataplane not restored:\n{chaos.diff(sc.dataplane, got)}"


@pytest.mark.timeout(120)
def test_policy_under_a_key_no_policy_can_have(scenario: Scenario) -> None:
    """Garbage under ``KubernetesNetworkPolicy/client/UPPER`` (no Kubernetes name has upper
    case, so no valid policy can ever be there) costs that key only: no exception reaches the
    agent's per-update guard, the key is reported, and what the report says is enforced is
    (a quarantine isolates namespace client: c1 and c2 no longer reach each other)."""
    sc = scenario
    _at_baseline(sc)
    key = keys.resource_key("KubernetesNetworkPolicy", "UPPER", "client")
    offsets = chaos.log_offsets(sc.name)
    ds = tools.datastore(sc.st)
    problems: list[str] = []
    try:
        ds.put_raw(key, b"not json")
        tools.wait_until(lambda: all(key in v for v in _reported(sc.st).values()), 15,
                         "agents report the key")  # fmt: skip
        time.sleep(1.0)  # what follows the report in the same turn of the loop
        outcomes = {r["outcome"] for h in sc.st.hosts
                    for r in _status(sc.st, h.name).get("invalidResources", []) if r["key"] == key}
        cells = chaos.probe_pairs(sc.st, (("client/c1", "client/c2"), ("client/c2", "client/c1")))
        findings = chaos.agent_log_findings(sc.name, offsets)
        guarded = {h: list(c) for h, c in findings.items() if c}
        if guarded:
            problems.append(f"exceptions reached the per-update guard: {guarded}")
        if "quarantined" in outcomes and any(cells.values()):
            problems.append(f"reported {outcomes} but namespace client is not isolated: {cells}")
    finally:
        ds.delete(key)
        ds.close()
    restored, got, _ = _wait_dataplane(sc.st, sc.dataplane, 15)
    assert not problems, "\n".join(problems)
    assert restored, f"dataplane not restored:\n{chaos.diff(sc.dataplane, got)}"


def _snapshot(ds: Any, prefix: str) -> dict[str, bytes]:
    items, _ = ds.list(prefix)
    return {kv.key: encode_value(kv.value).encode() for kv in items}


def _put_back(ds: Any, prefix: str, saved: dict[str, bytes]) -> None:
    """Every key under ``prefix`` exactly as ``saved`` (keys made since deleted)."""
    items, _ = ds.list(prefix)
    for kv in items:
        if kv.key not in saved:
            ds.delete(kv.key)
    for key, data in saved.items():
        ds.put_raw(key, data)


def _restart_agent(sc: Scenario, host: str) -> None:
    before = {host: chaos.agents(sc.name)[host]}
    labmod.kill_agent(sc.name, host)
    tools.wait_until(lambda: _new_agents(sc.name, before), 30, f"agent of {host} restarted")
    labmod.wait_ready(labstate.load(sc.name))


@pytest.mark.timeout(120)
def test_restart_keeps_routes_to_a_node_written_by_a_newer_version(scenario: Scenario) -> None:
    """h1's Node gains a field this version does not know (as a newer agent would write it);
    then h2's agent restarts. Routing refuses the whole Node, and the new agent, which never
    saw it valid, has no address for h1: its route to h1's block goes and every workload
    pair between h1 and h2 breaks. A restart must not change the dataplane (fail static)."""
    sc = scenario
    _at_baseline(sc)
    ds = tools.datastore(sc.st)
    key = keys.resource_key("Node", "h1")
    original = ds.get(key)
    assert original is not None
    try:
        doc = json.loads(json.dumps(original.value))
        doc["spec"]["newerField"] = {"since": "v2"}
        ds.update(key, doc, revision=original.mod_revision)
        _restart_agent(sc, "h2")  # it reads the Node as it is now, whatever h2 made of it
        same, got, _ = _wait_dataplane(sc.st, sc.dataplane, 5)
        closed = sorted(p for p, ok in chaos.probe_pairs(sc.st, chaos.ALLOWED).items() if not ok)
    finally:
        ds.put_raw(key, encode_value(original.value).encode())
        ds.close()
    restored, now, _ = _wait_dataplane(sc.st, sc.dataplane, 15)
    problems = [] if same else [
        f"h2's restart changed the dataplane (allowed pairs now closed: {closed}):\n"
        + chaos.diff(sc.dataplane["h2"], got["h2"])
    ]  # fmt: skip
    if not restored:
        problems.append(f"not restored:\n{chaos.diff(sc.dataplane, now)}")
    assert not problems, "\n".join(problems)


@pytest.mark.timeout(120)
def test_restart_with_an_unreadable_node_keeps_the_tunnel_address(scenario: Scenario) -> None:
    """h1's Node does not decode when h1's agent starts. The agent writes a fresh Node (its
    own fields only) and, finding no VXLAN tunnel address there, takes a second address from
    IPAM under the same handle: the first stays allocated for ever (a tunnel address leaks
    only with its host) and the host's tunnel address changes. One handle, one address."""
    sc = scenario
    _at_baseline(sc)
    ds = tools.datastore(sc.st)
    key = keys.resource_key("Node", "h1")
    handle = "vxlan-tunnel-addr-h1"
    original = ds.get(key)
    assert original is not None
    ipam = _snapshot(ds, keys.IPAM)
    before = sorted(a[0] for a in tools.ipam_allocations(sc.st) if a[1] == handle)
    try:
        ds.put_raw(key, b'{"apiVersion": "projectcalico.org/v3", "kind": "No')
        tools.wait_until(lambda: all(key in v for v in _reported(sc.st).values()), 15,
                         "agents report the Node")  # fmt: skip
        _restart_agent(sc, "h1")
        time.sleep(1.0)  # the first turns of the new agent: registration, tunnel address
        after = sorted(a[0] for a in tools.ipam_allocations(sc.st) if a[1] == handle)
        node_now = ds.get(key)
    finally:
        ds.put_raw(key, encode_value(original.value).encode())
        _put_back(ds, keys.IPAM, ipam)
        ds.close()
    restored, got, _ = _wait_dataplane(sc.st, sc.dataplane, 15)
    tunnel = original.value["spec"].get("ipv4VXLANTunnelAddr")
    now = node_now.value.get("spec", {}).get("ipv4VXLANTunnelAddr") if node_now else None
    problems = []
    if after != before:
        problems.append(f"handle {handle}: {before} before the restart, {after} after")
    if now != tunnel:
        problems.append(f"h1's tunnel address changed from {tunnel} to {now}")
    if not restored:
        problems.append(f"not restored:\n{chaos.diff(sc.dataplane, got)}")
    assert not problems, "\n".join(problems)


@pytest.mark.timeout(120)
def test_cni_add_while_the_hosts_block_is_unreadable(scenario: Scenario) -> None:
    """h1's IPAM block does not decode; a workload is added on h1 through the CNI plugin.
    Lose nothing: the block is left as it is (not replaced by an empty one, which would
    hand its addresses out again), the workload gets an address no one else has, and once
    the block is readable again every allocation is still there."""
    sc = scenario
    _at_baseline(sc)
    ds = tools.datastore(sc.st)
    ipam = _snapshot(ds, keys.IPAM)
    blocks = tools.ipam_blocks(sc.st)
    (cidr,) = [c for c, affinity in blocks.items() if affinity == "host:h1"]
    key = chaos.BLOCKS + cidr.replace("/", "-")
    garbage = b'{"cidr": "' + cidr.encode() + b'", "allocations": [0, 1'
    before = tools.ipam_allocations(sc.st)
    problems: list[str] = []
    try:
        ds.put_raw(key, garbage)
        try:
            wl = workloads.add(sc.name, "web/late", "h1", {"role": "late"}, [(PORT, "tcp", "")])
        except GinghamError as exc:  # refusing is fine too; the checks below still apply
            problems_if_added: list[str] = []
            added = f"refused: {exc}"
        else:
            added = ",".join(wl.ips)
            problems_if_added = [f"web/late got {ip}, which {a[1]} holds"
                                 for ip in wl.ips for a in before if a[0] == ip]  # fmt: skip
        stored = ds.get(key)
        untouched = (stored is not None and isinstance(stored.value, Undecodable)
                     and stored.value.raw.encode() == garbage)  # fmt: skip
        if not untouched:
            problems.append(f"the unreadable block was rewritten: {stored.value if stored else None!r:.200}")
        problems += problems_if_added
        ds.put_raw(key, ipam[key])
        after = tools.ipam_allocations(sc.st)
        lost = [a for a in before if a not in after]
        if lost:
            problems.append(f"allocations lost: {lost}")
        addresses = [a[0] for a in after]
        twice = sorted({ip for ip in addresses if addresses.count(ip) > 1})
        if twice:
            problems.append(f"addresses allocated twice: {twice}")
        print(f"\nweb/late: {added}")
    finally:
        if "web/late" in labstate.load(sc.name).workloads:
            workloads.delete(sc.name, "web/late")
        _put_back(ds, keys.IPAM, ipam)
        ds.close()
    restored, got, _ = _wait_dataplane(sc.st, sc.dataplane, 15)
    if not restored:
        problems.append(f"not restored:\n{chaos.diff(sc.dataplane, got)}")
    assert not problems, "\n".join(problems)


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(doc))
    node = out
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return out


@pytest.mark.timeout(180)
def test_wrong_types_in_routing_documents_change_nothing(scenario: Scenario) -> None:
    """Documents the model refuses (a wrong type) but routing's lenient reader could take:
    an integer where an address goes (Python's ipaddress reads 7 as 0.0.0.7), a string
    where a boolean goes (bool("no") is True), a block stored under another block's key.
    Each is invalid, so the dataplane must not move; each is written in place, watched for
    3 s, and put back."""
    sc = scenario
    _at_baseline(sc)
    ds = tools.datastore(sc.st)
    node_key = keys.resource_key("Node", "h1")
    pool_key = keys.resource_key("IPPool", "default-ipv4-ippool")
    (cidr,) = [c for c, a in tools.ipam_blocks(sc.st).items() if a == "host:h1"]
    block_key = chaos.BLOCKS + cidr.replace("/", "-")
    spare_key = chaos.BLOCKS + "198.18.254.0-26"  # a key no block of this lab has
    node, pool, block = (ds.get(k) for k in (node_key, pool_key, block_key))
    assert node is not None and pool is not None and block is not None
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("Node bgp.ipv4Address: 7", node_key, _set(node.value, ("spec", "bgp", "ipv4Address"), 7)),
        ("Node ipv4VXLANTunnelAddr: 7", node_key,
         _set(node.value, ("spec", "ipv4VXLANTunnelAddr"), 7)),
        ("IPPool disabled: 'no'", pool_key, _set(pool.value, ("spec", "disabled"), "no")),
        ("IPPool natOutgoing: 'false'", pool_key,
         _set(pool.value, ("spec", "natOutgoing"), "false")),
        ("block cidr: 7", block_key, _set(block.value, ("cidr",), 7)),
        ("h1's block copied under another key, affine to h3", spare_key,
         _set(block.value, ("affinity",), "host:h3")),
    ]  # fmt: skip
    problems: list[str] = []
    try:
        for what, key, doc in cases:
            assert chaos.invalid(key, doc), f"{what}: the model takes it; not a test of leniency"
            current = ds.get(key)
            if current is None:
                ds.create(key, doc)
            else:
                ds.update(key, doc, revision=current.mod_revision)
            changed, _, _ = _wait_dataplane_changes(sc.st, sc.dataplane, 3.0)
            if changed is not None:
                problems.append(f"{what}:\n{chaos.diff(sc.dataplane, changed, limit=30)}")
            if key == spare_key:
                ds.delete(key)
            else:
                original = {node_key: node, pool_key: pool, block_key: block}[key]
                ds.put_raw(key, encode_value(original.value).encode())
            same, got, _ = _wait_dataplane(sc.st, sc.dataplane, 15)
            if not same:
                problems.append(f"{what}: not restored:\n{chaos.diff(sc.dataplane, got, limit=30)}")
                break
    finally:
        for kv in (node, pool, block):
            ds.put_raw(kv.key, encode_value(kv.value).encode())
        if ds.get(spare_key) is not None:
            ds.delete(spare_key)
        ds.close()
    assert not problems, "\n".join(problems)


def _wait_dataplane_changes(
    st: LabState, want: dict[str, Any], seconds: float
) -> tuple[dict[str, Any] | None, float, int]:
    """The first dataplane that differs from ``want`` within ``seconds`` (None if none)."""
    start, looks = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        got = chaos.dataplane(st)
        looks += 1
        if got != want:
            return got, time.monotonic() - start, looks
        time.sleep(0.2)
    return None, seconds, looks
