"""Selector benchmark: evaluation speed and SelectorIndex update cost.

    .venv/bin/python bench/selector.py [--selectors 2000] [--items 100000]

Prints one JSON object. The workload imitates a cluster: label sets with an
app, tier, env, team and namespace label plus a per-pod hash; selectors mostly
``app == … && …`` with some sets, ``||`` and a few that no posting can index.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections.abc import Callable

from gingham.selector import NAMESPACE_LABEL, Selector, SelectorIndex, parse
from gingham.selector.core import Selector as _Selector
from gingham.selector.parser import parse_node

APPS = 1000
NAMESPACES = 50


def make_labels(rng: random.Random) -> dict[str, str]:
    labels = {
        "app": f"app{rng.randrange(APPS)}",
        "tier": rng.choice(["web", "api", "db", "cache"]),
        "env": rng.choice(["prod", "staging", "dev"]),
        "pod-template-hash": f"{rng.getrandbits(32):08x}",
        NAMESPACE_LABEL: f"ns{rng.randrange(NAMESPACES)}",
    }
    if rng.random() < 0.5:
        labels["team"] = f"team{rng.randrange(40)}"
    if rng.random() < 0.02:
        labels["quarantine"] = "true"
    return labels


def make_selector(rng: random.Random, n: int) -> str:
    app = f"app{rng.randrange(APPS)}"
    kind = rng.random()
    if kind < 0.55:
        return f"app == '{app}' && tier == '{rng.choice(['web', 'api', 'db'])}' && n{n} != 'x'"
    if kind < 0.70:
        apps = ", ".join(f"'app{rng.randrange(APPS)}'" for _ in range(3))
        return f"app in {{{apps}}} && env != 'dev'"
    if kind < 0.85:
        return f"app == '{app}' || team == 'team{rng.randrange(40)}'"
    if kind < 0.99:
        return f"{NAMESPACE_LABEL} == 'ns{rng.randrange(NAMESPACES)}' && has(team) && s{n} != 'x'"
    # Unindexable: checked on every label change.
    return f"!has(quarantine) && env not in {{'dev'}} && tag{n} != 'x'"


def timed(fn: Callable[[], object]) -> float:
    # CPU time of this process: the machine is shared, and wall time would
    # mostly measure the other processes.
    start = time.process_time()
    fn()
    return time.process_time() - start


def best_of(n: int, fn: Callable[[], object]) -> float:
    return min(timed(fn) for _ in range(n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--selectors", type=int, default=2000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    labels = [make_labels(rng) for _ in range(args.items)]
    exprs = [make_selector(rng, n) for n in range(args.selectors)]
    out: dict[str, object] = {
        "python": platform.python_version(),
        "selectors": args.selectors,
        "items": args.items,
        "timing": "process CPU time",
        "load_average_1m": round(os.getloadavg()[0], 2),
    }

    # Parsing, uncached: the cost paid once per distinct selector text.
    t = best_of(3, lambda: [_Selector(parse_node(e)) for e in exprs])
    out["parse_uncached_us"] = round(t / len(exprs) * 1e6, 2)
    selectors = [parse(e) for e in exprs]

    # Evaluation: every selector against a slice of the label sets.
    sample = labels[:2000]

    def evaluate_all(sels: list[Selector]) -> None:
        for s in sels:
            ev = s.evaluate
            for lab in sample:
                ev(lab)

    t = best_of(3, lambda: evaluate_all(selectors[:200]))
    out["evaluations_per_s"] = round(200 * len(sample) / t)
    complex_sel = parse(
        "(app in {'app1', 'app2', 'app3'} || team starts with 'team1') && "
        "!has(quarantine) && env != 'dev' && !global()"
    )
    t = best_of(3, lambda: evaluate_all([complex_sel] * 50))
    out["evaluations_per_s_complex"] = round(50 * len(sample) / t)

    # Index: selectors first, then every label set arrives.
    idx: SelectorIndex[int, int] = SelectorIndex()
    changes = 0

    def load_selectors() -> None:
        nonlocal changes
        for n, s in enumerate(selectors):
            changes += len(idx.update_selector(n, s))

    def load_items() -> None:
        nonlocal changes
        for n, lab in enumerate(labels):
            changes += len(idx.update_labels(n, lab))

    out["index_load_selectors_s"] = round(timed(load_selectors), 3)
    t = timed(load_items)
    out["index_add_item_us"] = round(t / len(labels) * 1e6, 2)
    out["index_scan_always_selectors"] = idx.scan_always_count
    out["matches"] = len(idx.matches())

    # Label changes on existing items (a pod relabelled).
    updates = [(rng.randrange(args.items), make_labels(rng)) for _ in range(20_000)]

    def relabel() -> None:
        for iid, lab in updates:
            idx.update_labels(iid, lab)

    out["index_update_item_us"] = round(timed(relabel) / len(updates) * 1e6, 2)

    # Selector churn with all items present: replace 200 selectors.
    fresh = [parse(make_selector(rng, args.selectors + n)) for n in range(200)]

    def churn() -> None:
        for n, s in enumerate(fresh):
            idx.update_selector(n, s)

    out["index_update_selector_ms"] = round(timed(churn) / len(fresh) * 1e3, 3)
    unindexable = parse("!has(quarantine) && env != 'dev'")
    t = timed(lambda: idx.update_selector(-1, unindexable))
    out["index_add_unindexable_selector_ms"] = round(t * 1e3, 1)
    idx.remove_selector(-1)

    # What a scan of every selector per label change would cost instead.
    lab = labels[0]
    t = best_of(3, lambda: [s.evaluate(lab) for s in selectors for _ in range(10)])
    out["brute_force_item_update_us"] = round(t / 10 * 1e6, 1)

    t = timed(lambda: [idx.remove_labels(n) for n in range(args.items)])
    out["index_remove_item_us"] = round(t / args.items * 1e6, 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
