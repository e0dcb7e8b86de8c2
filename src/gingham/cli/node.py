"""``gingham node``: run the agent on this host, and show its status and BGP sessions."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click

from gingham.cli.common import handle_errors
from gingham.cli.logopts import log_format_option, start_logging
from gingham.names import FANOUT_ENV


@click.group("node")
def node_group() -> None:
    """The per-host agent."""


@node_group.command("run")
@click.option("--name", "hostname", required=True, help="This host's name in the datastore.")
@click.option("--health-host", default=None,
              help="Health server address; when given, wins over FelixConfiguration healthHost "
                   "[default: 127.0.0.1, or healthHost].")
@click.option("--health-port", default=None, type=int,
              help="Health server port; when given, wins over FelixConfiguration healthPort "
                   "[default: 9099, or healthPort].")
@click.option("--log-level", default=None,
              type=click.Choice(["debug", "info", "warning", "error", "critical"],
                                case_sensitive=False),
              help="When given, wins over FelixConfiguration logSeverityScreen "
                   "[default: info, or logSeverityScreen].")
@log_format_option
@click.option(
    "--interface",
    default=None,
    help="Underlay interface (default: the one with the default route).",
)
@click.option(
    "--fanout",
    envvar=FANOUT_ENV,
    default=None,
    metavar="PATH|tls://HOST:PORT?ca=..&cert=..&key=..",
    help="Read the datastore through a fan-out server (`gingham fanout serve`): its unix socket, "
    "or its TCP address with mutual TLS (plain TCP is refused); writes still go to the "
    f"datastore [env {FANOUT_ENV}].",
)
@click.pass_context
def run_cmd(
    ctx: click.Context,
    hostname: str,
    health_host: str | None,
    health_port: int | None,
    log_level: str | None,
    log_format: str | None,
    interface: str | None,
    fanout: str | None,
) -> None:
    """Watch the datastore and program this host's dataplane until stopped."""
    from gingham.agent.wiring import LocalOverrides, build_agent
    from gingham.cli.common import resolve_datastore_url
    from gingham.errors import ValidationError
    from gingham.fanout.address import parse

    if fanout:
        try:
            parse(fanout, "")
        except ValidationError as exc:
            raise click.BadParameter(str(exc), param_hint="--fanout") from None

    start_logging(ctx, log_level or "info", log_format,
                  quiet=("pyroute2", "asyncio", "httpx", "httpcore"))
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    url = resolve_datastore_url(ctx.obj.get("datastore") if ctx.obj else None)
    overrides = LocalOverrides(log_level, health_host, health_port)
    running = build_agent(hostname, url, overrides, interface, fanout=fanout or None)
    try:
        running.agent.run(lambda: stopping)
    finally:
        running.close()


@node_group.command("status")
@click.option(
    "--name", "hostname", default=None, help="Host whose agent and BIRD to ask (default: this one)."
)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@click.option(
    "--agent",
    "agent_only",
    is_flag=True,
    help="Only the agent's status (ready, invalid resources, refused endpoints, host "
    "capabilities); -o json gives its status document.",
)
@handle_errors
def status_cmd(hostname: str | None, output: str, agent_only: bool) -> None:
    """The agent's status and this host's BGP sessions, like calicoctl node status.

    ``-o json`` without ``--agent`` prints the BGP sessions only, as it always has.
    """
    import socket

    host = hostname or socket.gethostname()
    run_dir = _run_dir_for(host)
    agent = _agent_status(run_dir, host)
    if agent_only:
        if agent is None:
            click.echo(f"no status from the agent of {host} (it has not run here)", err=True)
            sys.exit(1)
        if output == "json":
            click.echo(json.dumps(agent, indent=2))
        else:
            _print_agent(host, agent)
        return
    if output == "table" and agent is not None:
        _print_agent(host, agent)
        click.echo()
    _print_bgp(host, run_dir, output)


def _agent_status(run_dir: Path, host: str) -> dict[str, Any] | None:
    from gingham.agent.wiring import STATUS_FILE

    try:
        doc = json.loads((run_dir / host / STATUS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _print_agent(host: str, agent: dict[str, Any]) -> None:
    from gingham.cli.common import print_table

    state = "ready" if agent.get("ready") else "NOT READY"
    click.echo(f"Agent on {host}: {state} (as of {agent.get('updated', '?')})")
    if agent.get("blocked"):
        click.echo(f"  {agent['blocked']}")
    invalid = agent.get("invalidResources") or []
    if invalid:
        click.echo(f"Invalid resources ({len(invalid)}): the agent enforces what OUTCOME says")
        print_table(
            ["KEY", "OUTCOME", "REASON"],
            [[r.get("key", ""), r.get("outcome", ""), r.get("reason", "")] for r in invalid],
        )
    for notice in agent.get("notices") or []:
        click.echo(f"  {notice}")
    caps = agent.get("capabilities") or []
    if caps:
        click.echo("Host capabilities:")
        print_table(
            ["CAPABILITY", "PRESENT", "DETAIL"],
            [[c.get("name", ""), "yes" if c.get("present") else "NO", c.get("detail", "")]
             for c in caps],
        )


def _print_bgp(host: str, run_dir: Path, output: str) -> None:
    import dataclasses

    from gingham.cli.common import print_table
    from gingham.routing.bird import BirdProcess

    bird = BirdProcess(host, run_dir=run_dir)
    if not bird.running():
        click.echo(f"BIRD is not running for {host} (BGP is off, or the agent is not up)")
        sys.exit(1)
    peers = bird.status()
    if output == "json":
        click.echo(
            json.dumps(
                [{k: str(v) for k, v in dataclasses.asdict(p).items()} for p in peers], indent=2
            )
        )
        return
    click.echo(f"BGP sessions of {host}")
    print_table(
        ["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"],
        [[str(p.peer), p.type, p.state, p.since, p.info] for p in peers],
    )


def _run_dir_for(host: str) -> Path:
    """Where the host's agent keeps BIRD: $GINGHAM_RUN_DIR, else the current lab's, else the
    default run directory."""

    from gingham.hostfiles import DEFAULT_RUN_DIR, RUN_DIR_ENV

    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV])
    from gingham.errors import LabError
    from gingham.lab import state as labstate

    name = labstate.current_name()
    if name:
        try:
            lab = labstate.load(name)
            lab.host(host)
            return Path(lab.run_dir)
        except LabError:
            pass
    return DEFAULT_RUN_DIR
