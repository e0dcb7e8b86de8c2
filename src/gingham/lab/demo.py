"""``gingham lab demo`` (``make demo``): the shortest tour of what gingham does."""

from __future__ import annotations

import time

from rich.console import Console

from gingham.lab import lab as labmod
from gingham.lab import matrix, workloads
from gingham.lab import state as labstate

DEMO_LAB = "demo"
POLICY = """\
# Namespace "shop": deny all ingress, then allow only the frontend to reach
# the backend on port 80.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: frontend-to-backend, namespace: shop}
spec:
  podSelector: {matchLabels: {app: backend}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {matchLabels: {app: frontend}}
    ports:
    - {protocol: TCP, port: 80}
"""
WORKLOADS = [
    ("shop/frontend", "h1", {"app": "frontend"}),
    ("shop/backend", "h2", {"app": "backend"}),
    ("shop/db", "h3", {"app": "db"}),
    ("tools/debug", "h3", {"app": "debug"}),
]


def _wait_for(
    lab: labstate.LabState, expected: dict[tuple[str, str], bool], timeout: float = 10.0
) -> matrix.Matrix:
    deadline = time.monotonic() + timeout
    while True:
        m = matrix.measure(lab)
        if (
            all(m.cells[a][b] == ok for (a, b), ok in expected.items())
            or time.monotonic() > deadline
        ):
            return m


def run_demo() -> None:
    from gingham.datastore.resources import apply_manifests

    console = Console()
    if (labstate.lab_dir(DEMO_LAB) / "state.json").exists():
        console.print("removing the previous demo lab")
        labmod.down(DEMO_LAB)
    with console.status("starting a 3-host lab…") as status:
        lab = labmod.up(DEMO_LAB, hosts=3, progress=lambda m: status.update(m))
        for ref, host, labels in WORKLOADS:
            status.update(f"adding workload {ref} on {host}")
            workloads.add(DEMO_LAB, ref, host, labels, [(80, "tcp", "http")])
    lab = labstate.load(DEMO_LAB)
    console.print(f"[bold]Lab up[/]: hosts h1-h3 in network namespaces, datastore {lab.datastore}")
    for wl in sorted(lab.workloads.values(), key=lambda w: w.ref):
        console.print(f"  {wl.ref:16} on {wl.host}  {' '.join(wl.ips)}")
    console.print("\n[bold]1. No policy[/]: every workload reaches every other on tcp/80")
    console.print(matrix.measure(lab).render())
    console.print("\n[bold]2. Applying policy[/]:\n" + POLICY)
    apply_manifests(lab.datastore, POLICY)
    m = _wait_for(
        lab, {("shop/frontend", "shop/backend"): True, ("shop/db", "shop/backend"): False}
    )
    console.print(m.render())
    console.print(
        "\nOnly shop/frontend reaches shop/backend now; shop/db and shop/frontend take no\n"
        "connections at all (default deny in namespace shop); tools/debug is not selected\n"
        "by any policy and still accepts everything.\n"
    )
    console.print(
        "Explore:  gingham lab status | gingham workload list | gingham get networkpolicy -A"
    )
    console.print("          gingham lab matrix | gingham lab exec shop/frontend -- ip addr")
    console.print(f"Finish:   gingham lab down --name {DEMO_LAB}")
