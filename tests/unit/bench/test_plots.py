"""bench/run_all.py's plots render with the ``bench`` extra (matplotlib) the lock installs: each
plotter, fed a small result of its benchmark's shape, writes a PNG."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"


def _run_all() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    return run_all


def _update(cpu: float) -> dict[str, float]:
    return {"cpu_ms_mean": cpu, "nft_commands_mean": cpu * 3}


KINDS = ("remote_label", "local_label", "policy_edit", "local_add")
SAMPLES: dict[str, dict[str, Any]] = {
    "ttfr": {"ttfr_ms_all": [4.0, 6.5, 9.0, 12.0, 48.0]},
    "propagation": {"results": [{"hosts": 2, "open_ms_all": [30.0, 42.0, 35.0]},
                                {"hosts": 4, "open_ms_all": [55.0, 61.0, 70.0]}]},
    "agent_scale": {"sweeps": {
        "cluster": [{"remote_endpoints": n, "updates": {k: _update(n / 100) for k in KINDS}}
                    for n in (100, 1000)],
        "local": [{"local_endpoints": n, "updates": {k: _update(n / 10) for k in KINDS}}
                  for n in (10, 50)]}},
    "many_hosts": {"results": [
        {"mode": m, "hosts": 6, "idle": {"agent_datastore_polls_per_second": q},
         "changes": [{"all_ms": 80.0}, {"all_ms": None}]}
        for m, q in (("direct", 12.0), ("fanout", 0.4))]},
    "cni": {"results": {name: {"add": {"p50_ms": 9.0, "p99_ms": 20.0},
                               "del": {"p50_ms": 6.0, "p99_ms": 11.0}}
                        for name in ("gingham (agent)", "bridge+host-local")}},
    "dataplane_cost": {"results": {"0": {"throughput_ratio": 1.0, "connection_rate_ratio": 1.0},
                                   "1000": {"throughput_ratio": 0.97,
                                            "connection_rate_ratio": 0.9}}},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_plot_writes_a_png(name: str, tmp_path: Path) -> None:
    run_all = _run_all()
    path = tmp_path / f"{name}.png"
    assert run_all.PLOTTERS[name](SAMPLES[name], path) is True
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_every_plotter_is_covered() -> None:
    plotters = _run_all().PLOTTERS
    assert {p.__name__ for p in plotters.values()} == {
        plotters[name].__name__ for name in SAMPLES}


def test_nothing_to_plot_writes_nothing(tmp_path: Path) -> None:
    for name, plot in _run_all().PLOTTERS.items():
        path = tmp_path / f"{name}.png"
        assert plot({}, path) is False
        assert not path.exists()
