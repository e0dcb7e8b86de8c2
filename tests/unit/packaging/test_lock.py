"""pyproject.toml says what gingham works with (ranges); requirements/lock.txt says exactly what
CI and `make venv` install (pinned, hashed). These tests keep the two honest with each other,
and with the environment the tests run in."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = ROOT / "requirements" / "lock.txt"
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"
BUILD_IN = ROOT / "requirements" / "build.in"


def lock_entries(lock: Path = LOCK) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every package in ``lock``."""
    text = lock.read_text().replace("\\\n", " ")
    out: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})*)", line)
        assert m, f"not a pinned, hashed requirement: {line[:120]}"
        name = canonicalize_name(m.group(1).split("[")[0])
        out[name] = (m.group(2), re.findall(r"sha256:([0-9a-f]{64})", m.group(3)))
    return out


def declared() -> dict[str, list[Requirement]]:
    project = PYPROJECT["project"]
    groups = {"runtime": project["dependencies"], **project["optional-dependencies"]}
    groups["build"] = PYPROJECT["build-system"]["requires"]
    return {k: [Requirement(r) for r in v] for k, v in groups.items()}


def test_project_dependencies_are_ranges_with_a_ceiling() -> None:
    for group, reqs in declared().items():
        if group == "build":
            continue
        for req in reqs:
            ops = {s.operator for s in req.specifier}
            assert "==" not in ops and "===" not in ops, f"{group}: {req} pins; the lock pins"
            assert ops & {">=", "~=", ">"}, f"{group}: {req} has no floor"
            assert ops & {"<", "~="}, f"{group}: {req} has no ceiling"


def test_matplotlib_is_for_bench_only() -> None:
    names = {g: {canonicalize_name(r.name) for r in reqs} for g, reqs in declared().items()}
    assert "matplotlib" not in names["dev"] and "matplotlib" not in names["runtime"]
    assert "matplotlib" in names["bench"]


def test_everything_declared_is_locked_within_its_range_with_hashes() -> None:
    lock = lock_entries()
    for group, reqs in declared().items():
        for req in reqs:
            name = canonicalize_name(req.name)
            assert name in lock, f"{group}: {req.name} is not in {LOCK.name}: run `make lock`"
            version, hashes = lock[name]
            assert Version(version) in req.specifier, f"{name}=={version} is outside {req}"
            assert hashes, f"{name} has no hash"
    for name, (_version, hashes) in lock.items():
        assert hashes, f"{name} has no hash"


def test_build_in_covers_the_build_system() -> None:
    build = {canonicalize_name(Requirement(line).name) for line in BUILD_IN.read_text().splitlines()
             if line.strip() and not line.startswith("#")}  # fmt: skip
    for req in declared()["build"]:
        assert canonicalize_name(req.name) in build


def test_this_environment_was_installed_from_the_lock() -> None:
    """`make venv` installs the lock with --require-hashes: what runs the tests is what is
    locked, version for version (a stray `pip install -U`, or a venv made before the lock,
    shows here: `make clean venv`)."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("not a virtual environment: not made by `make venv`")
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in md.distributions()
                 if d.metadata["Name"]}  # fmt: skip
    lock = lock_entries()
    wrong = {n: (installed[n], v) for n, (v, _h) in lock.items()
             if n in installed and Version(installed[n]) != Version(v)}  # fmt: skip
    assert not wrong, f"installed vs locked: {wrong}"
    missing = sorted(set(lock) - set(installed))
    assert not missing, f"locked but not installed: {missing}"
    # A package installed beside the lock by hand (a profiler) is the developer's business.


def test_bench_imports_are_covered_by_the_bench_extra() -> None:
    """Every third-party module bench/ imports comes from a runtime dependency or the bench
    extra (numpy: through matplotlib)."""
    provided = {canonicalize_name(r.name) for g in ("runtime", "bench") for r in declared()[g]}
    lock = lock_entries()
    # what matplotlib itself needs is installed with the extra too
    provided |= {canonicalize_name(Requirement(r).name) for r in (md.requires("matplotlib") or [])
                 if "extra ==" not in r}  # fmt: skip
    local = {p.stem for p in (ROOT / "bench").glob("*.py")}
    packages = md.packages_distributions()
    for path in (ROOT / "bench").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in local or top == "gingham":
                    continue
                dists = {canonicalize_name(d) for d in packages.get(top, [top])}
                assert dists & provided, f"{path.name} imports {module}: not in the bench extra"
                assert dists & set(lock), f"{path.name} imports {module}: not locked"


def test_the_runtime_lock_is_the_lock_less_dev_and_bench() -> None:
    """requirements/runtime.txt, for hosts: the runtime dependencies, at the lock's versions
    and with its hashes, and nothing of dev or bench."""
    full = lock_entries()
    runtime = lock_entries(RUNTIME_LOCK)
    for name, (version, hashes) in runtime.items():
        assert name in full, f"{name} is in {RUNTIME_LOCK.name} only"
        assert version == full[name][0], f"{name}: {version} vs {full[name][0]} in the lock"
        assert set(hashes) <= set(full[name][1]), name
    for req in declared()["runtime"]:
        assert canonicalize_name(req.name) in runtime, req
    for tool in ("pytest", "mypy", "ruff", "matplotlib", "hatchling"):
        assert tool not in runtime
