"""The oracle test: random policies through the real kernel agree with the reference evaluator.

A 3-host lab (sqlite) with six workloads in two namespaces, each serving
TCP 80 ("http"), TCP 81 ("alt" or "admin") and UDP 80 ("http"). Every
hypothesis example sets random labels on the workloads and their namespaces,
applies 1-4 random policies (Calico NetworkPolicy, GlobalNetworkPolicy,
Kubernetes NetworkPolicy; sometimes in an extra tier) and sometimes network
sets holding workload addresses, waits until every host has programmed them
(see ``harness``), measures tcp/80, tcp/81 and udp/80 between every pair
with real connections and compares with ``gingham.policy.explain`` on the
same datastore contents. Usually a second phase then relabels some
workloads and namespaces and rewrites some policies in place (the agents'
incremental paths) and compares again. Then it deletes what it wrote.

Examples are fixed (derandomized) and few by default, so the module takes
about a minute. To run more or other ones:

    GINGHAM_ORACLE_EXAMPLES=200 GINGHAM_ORACLE_SEED=7 \\
        .venv/bin/python -m pytest tests/integration/oracle -q

``GINGHAM_ORACLE_SEED`` switches to random examples from that seed;
``GINGHAM_ORACLE_SHRINK=1`` lets hypothesis shrink a failing scenario (each
shrink step is a real measurement, so this can take minutes).
``python -m tests.integration.oracle.sensitivity`` prints how often each
feature decides some verdict in the generated scenarios.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, seed, settings
from hypothesis import strategies as st

from gingham.dataplane import layout
from gingham.dataplane.nft import NFT
from gingham.datastore import open_datastore
from gingham.lab import lab as labmod
from gingham.lab.fabric import host_netns
from gingham.policy.explain import explain
from gingham.policy.world import World
from tests.integration.oracle.harness import (
    Matrices,
    Rig,
    add_workloads,
    apply_scenario,
    bump_sentinel,
    converge,
    differences,
    measure,
    oracle,
    remove_scenario,
    render_matrices,
    wait_sentinel,
)
from tests.integration.oracle.scenarios import (
    K8S_POD_PEER,
    NETSET_WITH_OTHER_NAMESPACE_POD,
    PROBES,
    REFS,
    Scenario,
    cases,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

EXAMPLES = int(os.environ.get("GINGHAM_ORACLE_EXAMPLES", "25"))
SEED = os.environ.get("GINGHAM_ORACLE_SEED")
SHRINK = os.environ.get("GINGHAM_ORACLE_SHRINK") == "1"


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    name = f"or{os.getpid() % 100000}"
    labmod.down(name)  # left over by a crashed run with the same pid
    try:
        state = labmod.up(name, hosts=3)
        wls = add_workloads(name)
        ds = open_datastore(state.datastore)
        try:
            r = Rig(name, ds, wls)
            bump_sentinel(r)
            wait_sentinel(r, timeout=30)
            yield r
        finally:
            ds.close()
    finally:
        labmod.down(name)


def _explain_cells(world: World, measured: Matrices, expected: Matrices) -> list[str]:
    out = []
    for (p, port), rows in measured.items():
        for a, row in rows.items():
            for b, ok in row.items():
                if expected[(p, port)][a][b] != ok:
                    v = explain(world, a, b, port, p)
                    out.append(f"{p}/{port} {a} -> {b}: egress: {v.egress.reason}; "
                               f"ingress: {v.ingress.reason}")  # fmt: skip
    return out


def _report(rig: Rig, scenario: Scenario, measured: Matrices, expected: Matrices,
            world: World) -> str:  # fmt: skip
    ips = rig.ips
    return "\n".join([
        "the kernel disagrees with the oracle",
        *differences(measured, expected),
        "",
        "scenario (YAML):",
        scenario.to_yaml(ips),
        "addresses: " + ", ".join(f"{r}={ips[r]}" for r in REFS),
        "",
        "measured:",
        render_matrices(measured),
        "",
        "oracle:",
        render_matrices(expected),
        "",
        "oracle's reasons for the differing cells:",
        *_explain_cells(world, measured, expected),
    ])  # fmt: skip


def _check(rig: Rig, scenario: Scenario, phase: str, before: Scenario | None = None) -> None:
    measured, expected, world = converge(rig, scenario)
    blocked = sum(not ok for rows in expected.values() for row in rows.values()
                  for ok in row.values())  # fmt: skip
    event(f"{phase}: oracle blocks {'none' if not blocked else 'some' if blocked < 90 else 'all'}"
          " of the 108 cells")
    if measured != expected:
        head = f"phase {phase}"
        if before is not None:
            head += " (written over the first phase, below it)"
        text = _report(rig, scenario, measured, expected, world)
        if before is not None:
            text += "\n\nfirst phase (YAML):\n" + before.to_yaml(rig.ips)
        pytest.fail(f"{head}: {text}", pytrace=False)


def run_case(rig: Rig, first: Scenario, then: Scenario | None,
             during: Callable[[Rig], None] | None = None) -> None:
    try:
        apply_scenario(rig, first)
        _check(rig, first, "first")
        if during is not None:
            during(rig)
        if then is not None:
            apply_scenario(rig, then)
            _check(rig, then, "second", before=first)
    finally:
        if then is not None:
            remove_scenario(rig, then)
        remove_scenario(rig, first)


def _oracle_settings(test: Callable[..., Any]) -> Callable[..., Any]:
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if SHRINK else [])
    wrapped = settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=False,
    )(test)
    return seed(int(SEED))(wrapped) if SEED is not None else wrapped


# ----------------------------------------------------------------- the harness can fail


def test_without_policy_every_workload_reaches_every_other(rig: Rig) -> None:
    measured = measure(rig)
    assert all(ok for rows in measured.values() for row in rows.values() for ok in row.values()), (
        render_matrices(measured)
    )


def test_ingress_deny_all_blocks_every_pair_but_loopback(rig: Rig) -> None:
    """A measured, not oracle-relative, check: the rig sees blocking when there is some."""
    deny = Scenario(
        labels={r: {} for r in REFS},
        namespace_labels={"oa": {}, "ob": {}},
        policies=({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                   "metadata": {"name": "p0"},
                   "spec": {"selector": "!has(sentinel)", "types": ["Ingress"]}},),
    )  # fmt: skip
    try:
        apply_scenario(rig, deny)
        measured, expected, _ = converge(rig, deny)
        for p, port in PROBES:
            for a in REFS:
                for b in REFS:
                    assert measured[(p, port)][a][b] == (a == b), (
                        f"{p}/{port} {a}->{b}\n{render_matrices(measured)}"
                    )
        assert measured == expected
        assert oracle_is_all(expected, lambda a, b: a == b)
    finally:
        remove_scenario(rig, deny)


def oracle_is_all(m: Matrices, want: Callable[[str, str], bool]) -> bool:
    return all(ok == want(a, b) for rows in m.values() for a, row in rows.items()
               for b, ok in row.items())  # fmt: skip


# ----------------------------------------------------------------- random scenarios


@_oracle_settings
@given(case=cases())
def test_kernel_agrees_with_oracle(rig: Rig, case: tuple[Scenario, Scenario | None]) -> None:
    run_case(rig, *case)


def filler(i: int) -> dict[str, Any]:
    """A policy that selects every workload and never decides a probe: its peers are in
    203.0.113.0/24, which nothing in the lab sends from. Its shape varies (a probe's port,
    port ranges, UDP, no protocol, ICMP, Pass), so a compiled tier holds every kind of rule
    next to the scenario's."""
    peer = {"nets": [f"203.0.113.{i % 250 + 1}/32"]}
    ingress: list[dict[str, Any]] = []
    egress: list[dict[str, Any]] = []
    match i % 6:
        case 0:
            ingress.append({"action": "Deny", "protocol": "TCP", "source": peer,
                            "destination": {"ports": [80]}})
        case 1:
            ingress.append({"action": "Allow", "protocol": "TCP", "source": peer,
                            "destination": {"ports": [1000 + i, "79:81"]}})
        case 2:
            ingress.append({"action": "Allow", "protocol": "UDP", "source": peer,
                            "destination": {"ports": ["2000:2100"]}})
        case 3:
            ingress.append({"action": "Pass", "source": peer})
        case 4:
            egress.append({"action": "Deny", "protocol": "TCP", "destination": {**peer,
                                                                               "ports": [81]}})
        case _:
            egress.append({"action": "Allow", "protocol": "ICMP", "destination": peer})
    return {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
            "metadata": {"name": f"filler-{i:03d}"},
            "spec": {"selector": "!has(sentinel)", "order": (i * 7) % 1000 + 0.5,
                     "types": ["Ingress", "Egress"], "ingress": ingress, "egress": egress}}


ALLOW_AFTER = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
               "metadata": {"name": "filler-allow-after"},
               "spec": {"selector": "!has(sentinel)", "order": 5000,
                        "types": ["Ingress", "Egress"], "ingress": [{"action": "Allow"}],
                        "egress": [{"action": "Allow"}]}}  # fmt: skip


def with_fillers(s: Scenario, n: int, allow_after: bool) -> Scenario:
    extra = tuple(filler(i) for i in range(n)) + ((ALLOW_AFTER,) if allow_after else ())
    return dataclasses.replace(s, policies=s.policies + extra)


FILLERS = int(os.environ.get("GINGHAM_ORACLE_FILLERS", "120"))


@settings(max_examples=int(os.environ.get("GINGHAM_ORACLE_FILLED_EXAMPLES", "3")),
          deadline=None, database=None, derandomize=True, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=cases(), allow_after=st.booleans())
def test_kernel_agrees_with_oracle_with_many_policies_per_endpoint(
    rig: Rig, case: tuple[Scenario, Scenario | None], allow_after: bool
) -> None:
    """Every workload has over a hundred policies in the default tier, so every host
    compiles it (gingham.dataplane.compiled) with the random scenario's rules inside."""
    first, then = case
    run_case(rig, with_fillers(first, FILLERS, allow_after),
             None if then is None else with_fillers(then, FILLERS, allow_after),
             during=_compiled_on_every_host)


def _compiled_on_every_host(rig: Rig) -> None:
    for host in ("h1", "h2", "h3"):
        sets = NFT(netns=host_netns(rig.lab, host)).list_sets()
        assert any(layout.is_compiled_map(s.name) for s in sets), f"{host}: no compiled tier"


def test_oracle_of_empty_world_is_all_open(rig: Rig) -> None:
    from gingham.policy.world import load_world

    assert oracle_is_all(oracle(load_world(rig.ds)), lambda a, b: True)


# ----------------------------------------------------------------- found by the oracle's checks

def test_kubernetes_pod_selector_does_not_match_a_network_set(rig: Rig) -> None:
    """See K8S_POD_PEER in ``scenarios``. Random scenarios cannot catch this
    one: the agents and the reference evaluator share the conversion."""
    scenario = Scenario(
        labels={r: {} for r in REFS},
        namespace_labels={"oa": {}, "ob": {}},
        policies=(K8S_POD_PEER,),
        netsets=(NETSET_WITH_OTHER_NAMESPACE_POD,),
    )
    try:
        apply_scenario(rig, scenario)
        measured, _, _ = converge(rig, scenario)
        for p, port in PROBES:
            assert not measured[(p, port)]["ob/w5"]["oa/w1"], (
                f"{p}/{port} ob/w5 -> oa/w1 passes: pod ob/w5 has no labels and is in another "
                "namespace; only network set oa/ns1 (labels app=web) holds its address"
            )
    finally:
        remove_scenario(rig, scenario)
