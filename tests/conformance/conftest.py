"""One lab for the whole conformance suite: 3 hosts, sqlite, namespaces x, y, z,
pods a, b, c in each, spread over the hosts, serving TCP and UDP on 80 and 81.

The pods are attached through both CNI paths, so every case checks what each
one made: every other pod through its host's agent, the rest by the plugin on
its own (GINGHAM_CONFORMANCE_CNI=agent or =direct puts them all on one).

Each case applies its resources, waits until the measured matrix equals the
hand-written expectation (convergence takes milliseconds; the deadline is
10 s), checks that ``policy explain`` agrees, deletes what it applied and
checks that the all-open baseline is back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from gingham.lab.prober import Target, measure
from gingham.model import load_manifests
from tests.conformance.reach import NAMESPACES, REFS, Reach, diff

SERVE = "80/tcp:serve-80-tcp,81/tcp:serve-81-tcp,80/udp:serve-80-udp,81/udp:serve-81-udp"
DEADLINE = 10.0
# Extra labels some pods carry, so that matchExpressions have something to tell apart.
EXTRA_LABELS = {"a": {"app": "web"}, "b": {"app": "web"}, "c": {}}

Expect = dict[tuple[int, str], Reach]


@dataclass
class Cluster:
    lab: str
    datastore: Any
    store: Any
    targets: list[Target]
    ips: dict[str, str]
    applied: list[Any] = field(default_factory=list)

    # -- resources -----------------------------------------------------------

    def apply(self, text: str) -> list[Any]:
        out = []
        for res in load_manifests(text):
            self.store.apply(res)
            self.applied.append(res)
            out.append(res)
        return out

    def delete_applied(self) -> None:
        from gingham.errors import NotFound

        while self.applied:
            res = self.applied.pop()
            if res.kind == "Namespace":
                continue  # namespaces are restored by restore_namespaces
            info = self.store.info_of(res)
            with contextlib.suppress(NotFound):
                self.store.delete(info, res.metadata.name, res.metadata.namespace)

    def set_namespace_labels(self, ns: str, labels: dict[str, str]) -> None:
        self.store.apply(load_manifests(
            f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {labels!r}}}\n")[0])

    def restore_namespaces(self) -> None:
        for ns in NAMESPACES:
            self.set_namespace_labels(ns, {"ns": ns})

    def set_pod_labels(self, ref: str, labels: dict[str, str]) -> None:
        """Replace a pod's labels (all of them)."""
        from gingham.lab.workloads import set_labels

        kv = self._endpoint(ref)
        current = dict((kv.value.get("metadata") or {}).get("labels") or {})
        set_labels(self.datastore, ref, labels, [k for k in current if k not in labels])

    def restore_pods(self) -> None:
        for ref in REFS:
            pod = ref.split("/")[1]
            wanted = {"pod": pod, **EXTRA_LABELS[pod]}
            kv = self._endpoint(ref)
            if (kv.value.get("metadata") or {}).get("labels") != wanted:
                self.set_pod_labels(ref, wanted)
            if (kv.value.get("spec") or {}).get("serviceAccountName"):
                self.set_service_account(ref, None)

    def _endpoint(self, ref: str) -> Any:
        from gingham.datastore import keys

        ns, name = ref.split("/")
        items, _ = self.datastore.list(keys.resource_prefix("WorkloadEndpoint", ns))
        for kv in items:
            if (kv.value.get("spec") or {}).get("workload") == name:
                return kv
        raise AssertionError(f"no endpoint for {ref}")

    def set_service_account(self, ref: str, account: str | None) -> None:
        import copy

        kv = self._endpoint(ref)
        doc = copy.deepcopy(kv.value)
        if account is None:
            doc["spec"].pop("serviceAccountName", None)
        else:
            doc["spec"]["serviceAccountName"] = account
        self.datastore.update(kv.key, doc, revision=kv.mod_revision)

    # -- measuring -----------------------------------------------------------

    def measure(self, port: int, protocol: str) -> dict[str, dict[str, bool]]:
        return measure(self.targets, port, protocol)

    def explain(self, port: int, protocol: str) -> dict[str, dict[str, bool]]:
        from gingham.policy.explain import explain_matrix

        return explain_matrix(self.datastore, list(REFS), port, protocol)

    def converge(self, expected: Reach, port: int, protocol: str) -> None:
        """Poll until the measured matrix equals ``expected``; fail with the difference."""
        want = expected.as_dict()
        deadline = time.monotonic() + DEADLINE
        while True:
            got = self.measure(port, protocol)
            if got == want:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{protocol}/{port} did not converge in {DEADLINE:.0f}s:\n"
                                     + diff(want, got))
            time.sleep(0.05)

    def check(self, expect: Expect) -> None:
        """Measured == expected, and ``policy explain`` == expected, for every (port, protocol)."""
        for (port, protocol), reach in expect.items():
            self.converge(reach, port, protocol)
            explained = self.explain(port, protocol)
            want = reach.as_dict()
            assert explained == want, (f"policy explain disagrees on {protocol}/{port}:\n"
                                       + diff(want, explained))

    def baseline(self) -> None:
        self.check({(80, "tcp"): Reach(), (81, "udp"): Reach()})

    def case(self, text: str, expect: Expect) -> None:
        """Apply, check, delete, check the baseline."""
        try:
            self.apply(text)
            self.check(expect)
        finally:
            self.delete_applied()
        self.baseline()


def _lab_available() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("nft", "ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    reason = _lab_available()
    if reason:
        pytest.skip(reason)
    from gingham.datastore import open_datastore
    from gingham.datastore.resources import ResourceStore
    from gingham.lab import lab as labmod
    from gingham.lab import state as labstate
    from gingham.lab import workloads

    name = f"conf{os.getpid() % 100000}"
    ds = None
    try:
        # sqlite by default; GINGHAM_CONFORMANCE_DATASTORE=etcd runs the suite on etcd
        datastore = os.environ.get("GINGHAM_CONFORMANCE_DATASTORE", "sqlite")
        labmod.up(name, hosts=3, datastore=datastore, make_current=False)
        st = labstate.load(name)
        ds = open_datastore(st.datastore)
        store = ResourceStore(ds)
        cl = Cluster(name, ds, store, [], {})
        cl.restore_namespaces()
        serve = workloads.parse_serve(SERVE)
        hosts = [h.name for h in st.hosts]
        paths = os.environ.get("GINGHAM_CONFORMANCE_CNI", "mixed")
        for i, ref in enumerate(REFS):
            pod = ref.split("/")[1]
            via_agent = paths == "agent" or (paths == "mixed" and i % 2 == 0)
            workloads.add(name, ref, hosts[i % len(hosts)], {"pod": pod, **EXTRA_LABELS[pod]},
                          serve, via_agent=via_agent)
        answered = sum(labstate.agent_log_path(name, h).read_text(errors="replace")
                       .count("CNI ADD ") for h in hosts)  # fmt: skip
        assert answered == {"agent": len(REFS), "direct": 0}.get(paths, (len(REFS) + 1) // 2)
        st = labstate.load(name)
        wls = [st.workload(ref) for ref in REFS]
        cl.targets = [Target(w.ref, w.netns, w.ips[0]) for w in wls]
        cl.ips = {w.ref: w.ips[0] for w in wls}
        cl.baseline()
        yield cl
    finally:
        if ds is not None:
            ds.close()
        labmod.down(name)


@pytest.fixture
def k8s(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, with labels, namespaces and applied resources restored after the test."""
    try:
        yield cluster
    finally:
        cluster.delete_applied()
        cluster.restore_namespaces()
        cluster.restore_pods()
