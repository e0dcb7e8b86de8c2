"""Reachability between workloads, measured with real connections.

Sockets are opened inside the source workload's network namespace
(``gingham.lab.prober``); a matrix probes every pair at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from gingham.lab.state import LabState, WorkloadState

MAX_TIMEOUT = 2.0


def probe(
    src: WorkloadState, dst: WorkloadState, port: int, protocol: str = "tcp", timeout: float = 1.0
) -> bool:
    """One connection attempt from ``src`` to ``dst`` (at most 2 s)."""
    from gingham.lab.prober import Target
    from gingham.lab.prober import measure as probe_all

    if not dst.ips:
        return False
    source = Target(src.ref, src.netns, src.ips[0] if src.ips else "")
    target = Target(dst.ref, dst.netns, dst.ips[0])
    cells = probe_all([target], port, protocol, min(timeout, MAX_TIMEOUT), sources=[source])
    return cells[src.ref][dst.ref]


@dataclass(frozen=True)
class Matrix:
    port: int
    protocol: str
    names: tuple[str, ...]
    cells: dict[str, dict[str, bool]]

    def to_json(self) -> dict[str, object]:
        return {"port": self.port, "protocol": self.protocol, "matrix": self.cells}

    def render(self, marks: dict[tuple[str, str], str] | None = None) -> str:
        """The grid Kubernetes' policy tests print: rows from, columns to; '.' open, 'X' blocked."""
        marks = marks or {}
        width = max((len(n) for n in self.names), default=4)
        head = " " * (width + 1) + " ".join(n.rjust(width) for n in self.names)
        lines = [
            f"{self.protocol}/{self.port}  (rows: from, columns: to; . reachable, X blocked)",
            head,
        ]
        for a in self.names:
            row = []
            for b in self.names:
                cell = "." if self.cells[a][b] else "X"
                row.append((cell + marks.get((a, b), "")).rjust(width))
            lines.append(a.ljust(width) + " " + " ".join(row))
        if marks:
            lines.append(
                "! marks a cell where the measurement disagrees with `gingham policy explain`"
            )
        return "\n".join(lines)


def measure(lab: LabState, port: int = 80, protocol: str = "tcp", timeout: float = 1.0) -> Matrix:
    """Every ordered pair of the lab's workloads, probed at once from one process."""
    from gingham.lab.prober import Target
    from gingham.lab.prober import measure as probe_all

    wls = sorted(lab.workloads.values(), key=lambda w: w.ref)
    targets = [Target(w.ref, w.netns, w.ips[0]) for w in wls if w.ips]
    cells = probe_all(targets, port, protocol, min(timeout, MAX_TIMEOUT))
    return Matrix(port, protocol, tuple(t.ref for t in targets), cells)
