"""One vocabulary: every name more than one part of gingham uses is spelled in one module.

Walked with ``ast`` over src/gingham: a string constant (not a docstring, not a
comment) equal to one of the shared names below may only appear in the module
that defines it; everybody else imports it. Text that merely mentions a name
(an error message, help text) is not an exact match and is not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

NAMES = "gingham/names.py"
HOSTFILES = "gingham/hostfiles.py"
# literal -> the one module that may spell it
OWNERS: dict[str, str] = {
    "projectcalico.org/namespace": NAMES,
    "projectcalico.org/orchestrator": NAMES,
    "projectcalico.org/serviceaccount": NAMES,
    "projectcalico.org/name": NAMES,
    "pcsa.projectcalico.org/name": NAMES,
    "pcns.": NAMES,
    "pcsa.": NAMES,
    "kubernetes.io/metadata.name": NAMES,
    "knp.default.": NAMES,
    "kns.": NAMES,
    "gh": NAMES,
    "GINGHAM_DATASTORE": NAMES,
    "GINGHAM_NODENAME": NAMES,
    "GINGHAM_LOG_FORMAT": NAMES,
    "GINGHAM_CONFIG": NAMES,
    "GINGHAM_CONTEXT": NAMES,
    "gingham/config.yaml": NAMES,
    "sqlite:///var/lib/gingham/gingham.db": NAMES,
    "/run/gingham": HOSTFILES,
    "GINGHAM_RUN_DIR": HOSTFILES,
    "GINGHAM_LAB_RUN_DIR": HOSTFILES,
    "cni.sock": HOSTFILES,
    "/gingham/v1/": "gingham/datastore/keys.py",
    "ipam/": "gingham/datastore/keys.py",
    "blocks/": "gingham/ipam/keys.py",
    "affinity/": "gingham/ipam/keys.py",
    "handles/": "gingham/ipam/keys.py",
    "169.254.1.1": "gingham/cni/plumbing.py",
    "vxlan.gingham": "gingham/calc/routing_types.py",
}
# Built from other names where they are defined, so spelled nowhere whole.
DERIVED = {"pcsa.projectcalico.org/name"}
# The route protocol number: an int anywhere else is a second definition.
ROUTE_PROTOCOL = 201

# Spellings allowed outside their owner, (module, value): none left.
KNOWN: set[tuple[str, str]] = set()


def _docstrings(tree: ast.Module) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def spellings(root: Path = SRC) -> Iterator[tuple[str, int, str | int]]:
    """(module path under src, line, value) of every watched literal."""
    for path in sorted((root / "gingham").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        docs = _docstrings(tree)
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or id(node) in docs:
                continue
            value = node.value
            shared = value in OWNERS if isinstance(value, str) else (
                type(value) is int and value == ROUTE_PROTOCOL)
            if shared:
                yield rel, node.lineno, value


def test_every_shared_name_is_spelled_once() -> None:
    stray = [f"{rel}:{line}: {value!r}" for rel, line, value in spellings()
             if (OWNERS.get(value) if isinstance(value, str) else NAMES) != rel
             and (rel, value) not in KNOWN]  # fmt: skip
    assert not stray, "import these from their module instead:\n" + "\n".join(stray)


def test_every_owner_spells_its_names() -> None:
    """The table is not stale: each owner still defines what it is said to own."""
    found = {(rel, value) for rel, _, value in spellings()}
    missing = [(owner, value) for value, owner in OWNERS.items()
               if (owner, value) not in found and value not in DERIVED]
    assert not missing
    assert (NAMES, ROUTE_PROTOCOL) in found
    from gingham import names

    assert names.SERVICE_ACCOUNT_NAME_LABEL in DERIVED


def test_known_leftovers_are_still_there() -> None:
    """An entry of KNOWN whose spelling is gone must go too (else it hides a new one)."""
    found = {(rel, value) for rel, _, value in spellings()}
    assert not sorted(KNOWN - found)


def test_the_walker_finds_a_planted_spelling(tmp_path: Path) -> None:
    pkg = tmp_path / "gingham"
    pkg.mkdir()
    (pkg / "m.py").write_text('"""Docstring /run/gingham is not counted."""\n'
                              'RUN = "/run/gingham"  # a second definition\n'
                              'PROTO = 201\n'
                              'HELP = "see /run/gingham"\n')  # fmt: skip
    assert sorted(spellings(tmp_path)) == [("gingham/m.py", 2, "/run/gingham"),
                                           ("gingham/m.py", 3, 201)]


@pytest.mark.parametrize("module", ["gingham.names", "gingham.hostfiles"])
def test_the_vocabulary_modules_import_no_third_party(module: str) -> None:
    """The CNI plugin's fast path and the selector language import them."""
    tree = ast.parse((SRC / (module.replace(".", "/") + ".py")).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "os", "pathlib", "typing"}, imported
