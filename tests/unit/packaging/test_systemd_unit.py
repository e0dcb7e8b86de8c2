"""packaging/systemd/gingham-node.service: the restart policy, no secret on a command
line, and a unit that systemd itself accepts (``systemd-analyze verify``)."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "packaging" / "systemd" / "gingham-node.service"
ENV_EXAMPLE = ROOT / "packaging" / "systemd" / "gingham.env.example"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value given (systemd allows a key more than once)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, {})
            continue
        key, sep, value = line.partition("=")
        assert sep and section, f"line {n} is neither a section nor key=value: {raw!r}"
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


def test_restart_policy_and_start_limit() -> None:
    unit = parse_unit(UNIT.read_text())
    assert one(unit, "Service", "Restart") == "always"
    assert one(unit, "Service", "RestartSec") == "2s"
    # A crash loop (10 starts in 5 min) ends in a failed unit that monitoring sees;
    # an agent that crashes now and then is restarted for ever.
    assert one(unit, "Unit", "StartLimitIntervalSec") == "5min"
    assert one(unit, "Unit", "StartLimitBurst") == "10"
    # BIRD must survive agent restarts (BGP sessions, learned routes).
    assert one(unit, "Service", "KillMode") == "process"
    assert int(one(unit, "Service", "LimitNOFILE")) >= 65536
    assert "network-online.target" in one(unit, "Unit", "After").split()
    assert "network-online.target" in one(unit, "Unit", "Wants").split()
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_datastore_comes_from_a_required_root_only_file() -> None:
    unit = parse_unit(UNIT.read_text())
    assert one(unit, "Service", "ExecStart") == "gingham node run --name %H"
    # No "-" prefix: a host without the file fails to start rather than use a default store.
    assert one(unit, "Service", "EnvironmentFile") == "/etc/gingham/gingham.env"
    service = unit["Service"]
    assert "Environment" not in service, "settings belong in the 0600 environment file"
    assert not any(
        "--datastore" in v or "GINGHAM_DATASTORE" in v for vs in service.values() for v in vs
    )
    text = ENV_EXAMPLE.read_text()
    assert "install -m 0600" in text
    assert [
        line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")
    ] == ["GINGHAM_DATASTORE"]


def _verify(unit_text: str, tmp_path: Path) -> str:
    """``systemd-analyze verify`` in a throwaway root holding the system's units, the unit,
    and a stand-in ``gingham`` (verify checks the program exists)."""
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "usr/bin").mkdir(parents=True)
    fake = root / "usr/bin/gingham"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system" / UNIT.name).write_text(unit_text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", UNIT.name],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}".strip()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.skipif(not SYSTEM_UNITS.is_dir(), reason=f"no {SYSTEM_UNITS}")
def test_systemd_analyze_verify_accepts_the_unit_without_a_word(tmp_path: Path) -> None:
    # verify exits 0 on unknown keys and bad values too: any output counts as a failure.
    broken = UNIT.read_text().replace("Restart=always", "Restart=sometimes")
    assert "Restart=sometimes" in broken and "restart specifier" in _verify(broken, tmp_path / "a")
    assert _verify(UNIT.read_text(), tmp_path / "b") == "exit 0"
