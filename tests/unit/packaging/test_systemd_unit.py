"""packaging/systemd/: the three units (agent, fan-out server, Docker plugin) and the example
environment file. Their settings, no secret on a command line, command lines the CLI
accepts, the shipped files equal to what ``gingham node install`` renders, and units that
systemd itself accepts (``systemd-analyze verify``)."""

from __future__ import annotations

import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import click
import pytest

from gingham.cli.main import cli
from gingham.errors import ValidationError
from gingham.systemd_units import (
    AGENT_UNIT,
    DOCKER_UNIT,
    ENV_EXAMPLE,
    FANOUT_UNIT,
    UNIT_NAMES,
    render,
    render_env,
)

ROOT = Path(__file__).resolve().parents[3]
PACKAGING = ROOT / "packaging" / "systemd"
ENV_EXAMPLE_FILE = PACKAGING / "gingham.env.example"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections -> key -> every value given (systemd allows a key more than once)."""
    out: Unit = {}
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


def one(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


def shipped(name: str) -> Unit:
    return parse_unit((PACKAGING / name).read_text())


def test_the_shipped_files_are_what_node_install_renders() -> None:
    # After changing a unit in gingham/systemd_units.py:
    #   python -m gingham.systemd_units packaging/systemd
    for name, text in render("gingham", "%H").items():
        assert (PACKAGING / name).read_text() == text, f"{name} differs from systemd_units.py"
    assert ENV_EXAMPLE_FILE.read_text() == ENV_EXAMPLE
    assert sorted(p.name for p in PACKAGING.iterdir()) == sorted(
        [*UNIT_NAMES, "gingham.env.example"])


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_every_unit_restarts_notifies_and_reads_the_environment_file(name: str) -> None:
    unit = shipped(name)
    assert one(unit, "Service", "Type") == "notify"  # active = ready (gingham.sdnotify)
    assert one(unit, "Service", "Restart") == "always"
    assert one(unit, "Service", "RestartSec") == "2s"
    # A crash loop (10 starts in 5 min) ends in a failed unit that monitoring sees.
    assert one(unit, "Unit", "StartLimitIntervalSec") == "5min"
    assert one(unit, "Unit", "StartLimitBurst") == "10"
    assert {"network-online.target", "etcd.service"} <= set(one(unit, "Unit", "After").split())
    assert "network-online.target" in one(unit, "Unit", "Wants").split()
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    # No "-" prefix: a host without the file fails to start rather than use a default store.
    assert one(unit, "Service", "EnvironmentFile") == "/etc/gingham/gingham.env"
    service = unit["Service"]
    assert "Environment" not in service, "settings belong in the 0600 environment file"
    assert not any(
        "--datastore" in v or "GINGHAM_DATASTORE" in v for vs in service.values() for v in vs
    )
    assert "WatchdogSec" not in service  # a loop waiting on the datastore is no hang


def test_agent_unit() -> None:
    unit = shipped(AGENT_UNIT)
    assert one(unit, "Service", "ExecStart") == "gingham node run --name %H"
    # BIRD must survive agent restarts (BGP sessions, learned routes).
    assert one(unit, "Service", "KillMode") == "process"
    assert int(one(unit, "Service", "LimitNOFILE")) >= 65536
    # An agent that never gets in sync fails its start, visibly, and is started again.
    assert one(unit, "Service", "TimeoutStartSec") == "5min"


def test_fanout_unit_starts_before_the_agent_and_keeps_the_shared_run_directory() -> None:
    unit = shipped(FANOUT_UNIT)
    assert one(unit, "Service", "ExecStart") == \
        "gingham fanout serve --socket /run/gingham/fanout.sock"  # fmt: skip
    assert one(unit, "Unit", "Before") == AGENT_UNIT
    assert one(unit, "Service", "RuntimeDirectory") == "gingham"
    # /run/gingham is the agent's too: it must not go when the server stops.
    assert one(unit, "Service", "RuntimeDirectoryPreserve") == "yes"


def test_docker_unit_starts_after_the_agent_and_before_docker() -> None:
    unit = shipped(DOCKER_UNIT)
    assert one(unit, "Service", "ExecStart") == "gingham docker serve --node %H"
    assert AGENT_UNIT in one(unit, "Unit", "After").split()
    assert one(unit, "Unit", "Before") == "docker.service"
    assert "KillMode" not in unit["Service"]


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_every_command_line_is_one_the_cli_accepts(name: str) -> None:
    """A unit naming a flag that does not exist would fail at every start, on every host."""
    argv = shlex.split(one(shipped(name), "Service", "ExecStart").replace("%H", "h1"))
    assert argv[0] == "gingham"
    command: click.Command = cli
    ctx = click.Context(cli, info_name="gingham", **cli.context_settings)  # -h as gingham has it
    args = argv[1:]
    while isinstance(command, click.Group):  # units give no option before the command
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"{name}: no command {args[0]!r}"
        ctx = click.Context(sub, info_name=args[0], parent=ctx)
        command, args = sub, args[1:]
    # Parses the leaf's options as a start would: an unknown flag or a missing one raises.
    command.make_context(ctx.info_name, args, parent=ctx.parent)


def test_render_names_the_program_and_node_and_refuses_what_a_unit_cannot_hold() -> None:
    units = render("/opt/gingham/bin/gingham", "edge-7.example")
    assert one(parse_unit(units[AGENT_UNIT]), "Service", "ExecStart") == \
        "/opt/gingham/bin/gingham node run --name edge-7.example"  # fmt: skip
    assert "@" not in "".join(units.values()).replace("@.service", "")
    for bad in ("relative/gingham", "/opt/my venv/bin/gingham", "/opt/%h/gingham",
                "/opt/$X/gingham", '/opt/"q"/gingham'):
        with pytest.raises(ValidationError, match="ExecStart"):
            render(bad, "h1")
    for bad in ("h$1", "h 1", "h%i", ""):
        with pytest.raises(ValidationError, match="node name"):
            render("gingham", bad)


def test_environment_file_holds_the_url_verbatim_in_single_quotes() -> None:
    # systemd reads a single-quoted value as it is: "$", "%", "\", "&", "?" and '"' included.
    url = 'etcd://10.0.0.1:2379?user=g&password=a$b%c\\d"e'
    lines = [line for line in render_env(url).splitlines() if not line.startswith("#")]
    assert lines == [f"GINGHAM_DATASTORE='{url}'"]
    for bad in ("etcd://h:1?password=it's", "etcd://h:1\nEVIL=1"):
        with pytest.raises(ValidationError, match="GINGHAM_DATASTORE"):
            render_env(bad)
    text = ENV_EXAMPLE_FILE.read_text()
    assert "install -D -m 0600" in text
    assert [
        line.split("=", 1)[0] for line in text.splitlines() if line and not line.startswith("#")
    ] == ["GINGHAM_DATASTORE"]


def _verify(units: dict[str, str], program: str, tmp_path: Path) -> str:
    """``systemd-analyze verify`` in a throwaway root holding the system's units, the units,
    and a stand-in ``program`` (verify checks that it exists)."""
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    fake = root / program.lstrip("/")
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    (root / "etc/systemd/system").mkdir(parents=True)
    for name, text in units.items():
        (root / "etc/systemd/system" / name).write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", *units],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}".strip()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.skipif(not SYSTEM_UNITS.is_dir(), reason=f"no {SYSTEM_UNITS}")
def test_systemd_analyze_verify_accepts_the_units_without_a_word(tmp_path: Path) -> None:
    # verify exits 0 on unknown keys and bad values too: any output counts as a failure.
    units = {name: (PACKAGING / name).read_text() for name in UNIT_NAMES}
    broken = {**units, AGENT_UNIT: units[AGENT_UNIT].replace("Restart=always",
                                                             "Restart=sometimes")}
    assert "restart specifier" in _verify(broken, "/usr/bin/gingham", tmp_path / "a")
    assert _verify(units, "/usr/bin/gingham", tmp_path / "b") == "exit 0"
    rendered = render("/opt/gingham/venv/bin/gingham", "h1")
    assert _verify(rendered, "/opt/gingham/venv/bin/gingham", tmp_path / "c") == "exit 0"
