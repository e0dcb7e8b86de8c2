"""Only the driver's Neutron-facing modules import Neutron; nothing else imports the driver.

Walked with ``ast`` over src/gingham, so the test needs no Neutron to fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src" / "gingham"
NEUTRON_FACING = {"mech_driver.py", "callbacks.py"}
OPENSTACK_ROOTS = ("neutron", "neutron_lib", "oslo_config", "oslo_log", "eventlet")


def _imported(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


def _roots(mods: set[str]) -> set[str]:
    return {m.split(".")[0] for m in mods}


def test_neutron_is_imported_by_the_facing_modules_only() -> None:
    facing = {p.name for p in (SRC / "openstack").glob("*.py")
              if _roots(_imported(p)) & set(OPENSTACK_ROOTS)}
    assert facing == NEUTRON_FACING
    others = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
              if p.parent.name != "openstack" and _roots(_imported(p)) & set(OPENSTACK_ROOTS)]
    assert others == []


def test_nothing_else_imports_the_driver() -> None:
    users = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if p.parent.name != "openstack"
             and any(m.startswith("gingham.openstack") for m in _imported(p))]
    assert users == []


def test_the_pure_modules_import_without_neutron() -> None:
    import importlib

    for name in ("names", "ports", "secgroups", "subnets", "store", "resync"):
        importlib.import_module(f"gingham.openstack.{name}")
