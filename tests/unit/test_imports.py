"""The dependency picture (docs/ARCHITECTURE.md, "Packages"), read from the source.

Every ``import`` of a ``gingham`` module anywhere in a module counts as an arrow
between packages (at the top, inside a function, or under ``TYPE_CHECKING``).
Circles are judged on what runs: an import under ``TYPE_CHECKING`` closes none.
Walked with ``ast`` over src/gingham, so a test can fail without importing anything.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / "gingham").rglob("*.py"))}


def _typing_only(tree: ast.Module) -> set[ast.AST]:
    """Nodes inside ``if TYPE_CHECKING:`` blocks."""
    out: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                out.update(ast.walk(child))
    return out


def _imports(name: str, path: Path, known: set[str], typing: bool) -> Iterator[str]:
    """The gingham modules ``name`` imports (a package's submodule when one is named);
    with ``typing`` False, not those under ``TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skip = set() if typing else _typing_only(tree)
    for node in ast.walk(tree):
        if node in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("gingham"):
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if not mod.startswith("gingham"):
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                yield sub if sub in known else mod


def _graph(typing: bool) -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: {m for m in _imports(name, path, known, typing) if m != name}
            for name, path in modules.items()}


GRAPH = _graph(typing=True)
RUNTIME = _graph(typing=False)


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _arrows(src: str) -> dict[str, set[str]]:
    """Packages each module of package ``src`` imports directly."""
    return {m: {_package(t) for t in targets} for m, targets in GRAPH.items()
            if _package(m) == src}


@pytest.mark.parametrize("src,forbidden", [
    ("gingham.calc", {"gingham.datastore", "gingham.dataplane", "gingham.agent",
                      "gingham.routing", "gingham.cni"}),
    ("gingham.dataplane", {"gingham.routing", "gingham.cni", "gingham.agent",
                           "gingham.datastore"}),
    ("gingham.routing", {"gingham.dataplane", "gingham.agent", "gingham.cni"}),
    ("gingham.cni", {"gingham.agent", "gingham.dataplane", "gingham.calc", "gingham.routing"}),
    ("gingham.fanout", {"gingham.agent"}),
])
def test_forbidden_arrows(src: str, forbidden: set[str]) -> None:
    bad = {m: sorted(t & forbidden) for m, t in _arrows(src).items() if t & forbidden}
    assert not bad, f"{src} must not import {sorted(forbidden)}: {bad}"


def test_only_the_agents_cni_server_imports_the_plugin() -> None:
    """The agent serves the CNI plugin's commands with the plugin's own implementation;
    its CNI server is the one module that reaches into gingham.cni."""
    importers = {m for m, t in _arrows("gingham.agent").items() if "gingham.cni" in t}
    assert importers == {"gingham.agent.cni_server"}


def test_calc_reaches_no_datastore_even_through_others() -> None:
    """calc's whole import closure (model, selector, errors) stays clear of storage and
    of the kernel: a pure core."""
    seen: set[str] = set()
    todo = [m for m in GRAPH if _package(m) == "gingham.calc"]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo.extend(t for t in GRAPH.get(mod, ()) if t in GRAPH)
    reached = {_package(m) for m in seen}
    assert not reached & {"gingham.datastore", "gingham.dataplane", "gingham.ipam",
                          "gingham.agent", "gingham.routing", "gingham.cni"}, sorted(reached)


def _cycles() -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in RUNTIME.get(v, ()):
            if w not in RUNTIME:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(RUNTIME):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles() -> None:
    """No module reaches itself through what runs: a circle makes import order matter
    (a half-initialised module) and hides which part depends on which."""
    assert not [sorted(c) for c in _cycles()], "import circles"


def test_the_cycle_finder_finds_circles() -> None:
    """``_cycles`` is not blind: a two-module and a three-module circle planted in the
    graph are found, an arrow under ``TYPE_CHECKING`` closes none."""
    planted = {"gingham.cni.entry": {"gingham.cni.plugin"},
               "gingham.cni.plugin": {"gingham.cni.netconf"},
               "gingham.cni.netconf": {"gingham.cni.entry"},
               "gingham.model.kinds": {"gingham.model.registry"},
               "gingham.model.registry": {"gingham.model.kinds"}}
    saved = {m: set(RUNTIME[m]) for m in planted}
    try:
        for m, extra in planted.items():
            RUNTIME[m] |= extra
        found = _cycles()
    finally:
        for m, targets in saved.items():
            RUNTIME[m] = targets
    assert frozenset({"gingham.model.kinds", "gingham.model.registry"}) in found
    assert any({"gingham.cni.entry", "gingham.cni.plugin", "gingham.cni.netconf"} <= c
               for c in found)
    assert "gingham.datastore.etcd" not in RUNTIME["gingham.datastore.etcd_watch"]
    assert "gingham.datastore.etcd" in GRAPH["gingham.datastore.etcd_watch"]  # typing only


def test_the_walker_sees_arrows() -> None:
    """The graph is not empty by accident (a test that could not fail)."""
    assert "gingham.model" in {_package(t) for t in GRAPH["gingham.calc.graph"]}
    assert "gingham.calc.messages" in GRAPH["gingham.dataplane.routing"]
