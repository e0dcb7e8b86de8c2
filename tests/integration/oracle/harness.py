"""The lab side of the oracle test: workloads, scenario writes, measurement, convergence.

Convergence is decided by a *sentinel*, not by the matrix alone: three extra
workloads (one per host, namespace ``os``) sit behind a policy in a tier of
their own, evaluated first, that opens exactly one TCP port, 80 or 81,
alternating with every scenario. That policy is written after everything
else of a scenario; agents apply datastore events in revision order, so once
every host opens the new port to its sentinel, every host has the whole
scenario in its kernel, and the next measurement is the real verdict. Waiting
only for "matrix equals oracle" would accept an old state that happens to
match (for example the all-open state between scenarios).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gingham.datastore.resources import ResourceStore
from gingham.errors import NotFound
from gingham.lab import workloads
from gingham.lab.netns import netns_path
from gingham.lab.state import WorkloadState
from gingham.model import parse_resource
from gingham.policy.explain import matrix
from gingham.policy.world import World, load_world
from tests.integration.oracle.scenarios import PROBES, REFS, WORKLOADS, Scenario, render, serve_for
from tests.integration.oracle.selectors import WORKLOAD_VOCAB

PROBER = Path(__file__).with_name("prober.py")
SENTINELS: tuple[tuple[str, str], ...] = (("os/s1", "h1"), ("os/s2", "h2"), ("os/s3", "h3"))
SENTINEL_TIER = "oracle-sentinel"
SENTINEL_POLICY = "oracle-sentinel-gate"
PROBE_TIMEOUT = 0.8
# UDP probes leave from these source ports in turn (below the ephemeral range,
# covered by no generated source-port rule), so no tuple repeats while an
# earlier probe's conntrack entry (30-180 s) could still let it through.
UDP_SOURCE_PORTS = range(20000, 30000)
# Every verdict is one of these matrices: (protocol, port) -> source -> destination -> open.
Matrices = dict[tuple[str, int], dict[str, dict[str, bool]]]


@dataclass
class Rig:
    lab: str
    ds: Any  # an open datastore backend
    wls: dict[str, WorkloadState]
    generation: int = 0
    udp_cursor: int = 0

    def next_udp_port(self) -> int:
        port = UDP_SOURCE_PORTS[self.udp_cursor % len(UDP_SOURCE_PORTS)]
        self.udp_cursor += 1
        return port

    def __repr__(self) -> str:  # hypothesis prints it with every failing example
        return f"Rig(lab={self.lab!r}, generation={self.generation})"

    @property
    def ips(self) -> dict[str, str]:
        return {ref: wl.ips[0] for ref, wl in self.wls.items()}

    @property
    def store(self) -> ResourceStore:
        return ResourceStore(self.ds)


def add_workloads(lab: str) -> dict[str, WorkloadState]:
    out = {}
    for ref, host in WORKLOADS:
        out[ref] = workloads.add(lab, ref, host, {}, serve_for(ref))
    for ref, host in SENTINELS:
        out[ref] = workloads.add(lab, ref, host, {"sentinel": "yes"},
                                 [(80, "tcp", ""), (81, "tcp", "")])  # fmt: skip
    return out


# ----------------------------------------------------------------- measuring


def _probe_from(src: WorkloadState, targets: list[tuple[str, str, int, int]],
                timeout: float) -> list[bool]:  # fmt: skip
    argv = ["nsenter", f"--net={netns_path(src.netns)}", "--", sys.executable, "-I", "-S",
            str(PROBER), str(timeout),
            *(f"{p}:{a}:{port}:{sport}" for p, a, port, sport in targets)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * 3 + 10,
                          check=True)  # fmt: skip
    result = json.loads(proc.stdout)
    assert isinstance(result, list) and len(result) == len(targets), proc.stdout
    return [bool(x) for x in result]


def probe_many(rig: Rig, plan: Mapping[str, list[tuple[str, str, int]]],
               timeout: float = PROBE_TIMEOUT) -> dict[str, list[bool]]:  # fmt: skip
    """``plan``: source ref -> [(protocol, destination ref, port)]; one process per source."""

    targets = {
        src: [(p, rig.ips[dst], port, rig.next_udp_port() if p == "udp" else 0)
              for p, dst, port in probes]
        for src, probes in plan.items()
    }  # fmt: skip

    def run(src: str) -> list[bool]:
        return _probe_from(rig.wls[src], targets[src], timeout)

    with ThreadPoolExecutor(max_workers=max(1, len(plan))) as pool:
        results = list(pool.map(run, plan))
    return dict(zip(plan, results, strict=True))


def measure(rig: Rig, refs: Iterable[str] = REFS) -> Matrices:
    refs = list(refs)
    plan = {a: [(p, b, port) for p, port in PROBES for b in refs] for a in refs}
    got = probe_many(rig, plan)
    out: Matrices = {(p, port): {a: {} for a in refs} for p, port in PROBES}
    for a, results in got.items():
        for (p, b, port), ok in zip(plan[a], results, strict=True):
            out[(p, port)][a][b] = ok
    return out


def oracle(world: World, refs: Iterable[str] = REFS) -> Matrices:
    names = list(refs)
    return {(p, port): matrix(world, names, port, p) for p, port in PROBES}


def differences(measured: Matrices, expected: Matrices) -> list[str]:
    return [
        f"{p}/{port} {a} -> {b}: kernel {'open' if ok else 'blocked'}, "
        f"oracle {'open' if expected[(p, port)][a][b] else 'blocked'}"
        for (p, port), rows in measured.items()
        for a, row in rows.items()
        for b, ok in row.items()
        if expected[(p, port)][a][b] != ok
    ]


def render_matrices(m: Matrices) -> str:
    refs = list(next(iter(m.values())))
    width = max(len(r) for r in refs)
    lines = []
    for (p, port), rows in m.items():
        lines.append(f"{p}/{port} (rows from, columns to; . open, X blocked)")
        lines.append(" " * (width + 1) + " ".join(r.rjust(width) for r in refs))
        for a in refs:
            lines.append(a.ljust(width) + " " + " ".join(
                ("." if rows[a][b] else "X").rjust(width) for b in refs))
    return "\n".join(lines)


# ----------------------------------------------------------------- the sentinel


def sentinel_manifests(port: int) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "projectcalico.org/v3", "kind": "Tier",
         "metadata": {"name": SENTINEL_TIER}, "spec": {"order": 1}},
        {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
         "metadata": {"name": SENTINEL_POLICY},
         "spec": {"tier": SENTINEL_TIER, "selector": "has(sentinel)",
                  "types": ["Ingress", "Egress"],
                  "ingress": [{"action": "Allow", "protocol": "TCP",
                               "destination": {"ports": [port]}},
                              {"action": "Deny"}],
                  "egress": [{"action": "Allow"}]}},
    ]  # fmt: skip


def sentinel_port(generation: int) -> int:
    return 80 + generation % 2


def bump_sentinel(rig: Rig) -> None:
    rig.generation += 1
    for doc in sentinel_manifests(sentinel_port(rig.generation)):
        rig.store.apply(parse_resource(doc))


def wait_sentinel(rig: Rig, timeout: float = 10.0) -> None:
    """Until every host opens this generation's port to its sentinel (s1->s2->s3->s1)."""
    port = sentinel_port(rig.generation)
    refs = [r for r, _ in SENTINELS]
    plan = {a: [("tcp", refs[(i + 1) % len(refs)], port)] for i, a in enumerate(refs)}
    deadline = time.monotonic() + timeout
    while True:
        got = probe_many(rig, plan, timeout=0.3)
        if all(ok for results in got.values() for ok in results):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"sentinel generation {rig.generation} (tcp/{port}) not "
                                 f"programmed on every host after {timeout:.0f} s: {got}")
        time.sleep(0.05)


# ----------------------------------------------------------------- scenarios


def apply_scenario(rig: Rig, scenario: Scenario) -> None:
    for ref, labels in scenario.labels.items():
        removes = [k for k in WORKLOAD_VOCAB if k not in labels]
        workloads.set_labels(rig.ds, ref, dict(labels), removes)
    store = rig.store
    for doc in render(scenario.manifests(), rig.ips):
        store.apply(parse_resource(doc))
    bump_sentinel(rig)


def remove_scenario(rig: Rig, scenario: Scenario) -> None:
    """Policies first, then the tier they were in."""
    store = rig.store
    docs = [parse_resource(d) for d in render(scenario.manifests(), rig.ips)
            if d["kind"] != "Namespace"]
    for res in reversed(docs):
        with contextlib.suppress(NotFound):
            store.delete_resource(res)


def converge(rig: Rig, scenario: Scenario, deadline_s: float = 5.0
             ) -> tuple[Matrices, Matrices, World]:  # fmt: skip
    """Measure after the sentinel says the scenario is programmed; re-measure a
    mismatch until ``deadline_s`` to rule out a lost datagram or a slow reply."""
    wait_sentinel(rig)
    world = load_world(rig.ds)
    check_world(world, scenario)
    expected = oracle(world)
    deadline = time.monotonic() + deadline_s
    while True:
        measured = measure(rig)
        if measured == expected or time.monotonic() > deadline:
            return measured, expected, world
        time.sleep(0.1)


def check_world(world: World, scenario: Scenario) -> None:
    """The oracle sees the labels this scenario set (else the comparison proves nothing)."""
    for ref, labels in scenario.labels.items():
        item = world.workload(ref)
        assert item is not None, f"the oracle's world has no workload {ref}"
        seen = {k: v for k, v in item.labels.items() if k in WORKLOAD_VOCAB}
        assert seen == dict(labels), f"{ref}: world labels {seen}, scenario {dict(labels)}"
