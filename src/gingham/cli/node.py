"""``gingham node``: run the agent on this host, and show its BGP sessions."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import click

from gingham.cli.common import handle_errors


@click.group("node")
def node_group() -> None:
    """The per-host agent."""


@node_group.command("run")
@click.option("--name", "hostname", required=True, help="This host's name in the datastore.")
@click.option("--health-host", default="127.0.0.1", show_default=True)
@click.option("--health-port", default=9099, show_default=True, type=int)
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--interface",
    default=None,
    help="Underlay interface (default: the one with the default route).",
)
@click.pass_context
def run_cmd(
    ctx: click.Context,
    hostname: str,
    health_host: str,
    health_port: int,
    log_level: str,
    interface: str | None,
) -> None:
    """Watch the datastore and program this host's dataplane until stopped."""
    from gingham.agent.wiring import build_agent
    from gingham.cli.common import resolve_datastore_url

    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("pyroute2", "asyncio", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    url = resolve_datastore_url(ctx.obj.get("datastore") if ctx.obj else None)
    running = build_agent(hostname, url, health_host, health_port, interface)
    try:
        running.agent.run(lambda: stopping)
    finally:
        running.close()


@node_group.command("status")
@click.option(
    "--name", "hostname", default=None, help="Host whose BIRD to ask (default: this one)."
)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def status_cmd(hostname: str | None, output: str) -> None:
    """BGP sessions of this host's BIRD, like calicoctl node status."""
    import dataclasses
    import json
    import socket

    from gingham.cli.common import print_table
    from gingham.routing.bird import BirdProcess

    host = hostname or socket.gethostname()
    bird = BirdProcess(host, run_dir=_run_dir_for(host))
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
    """Where the host's agent keeps BIRD: GINGHAM_RUN_DIR, else the current lab's, else /run/gingham."""

    if os.environ.get("GINGHAM_RUN_DIR"):
        return Path(os.environ["GINGHAM_RUN_DIR"])
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
    return Path("/run/gingham")
