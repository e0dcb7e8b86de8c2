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


@node_group.command("install")
@click.option("--datastore", "datastore", default=None, metavar="URL",
              help="The cluster's datastore, written to /etc/gingham/gingham.env [default: "
                   "gingham's --datastore or $GINGHAM_DATASTORE; one of them is required].")
@click.option("--node", "node", default=None, metavar="NAME",
              help="This host's Node name, for the agent, the Docker plugin and the CNI "
                   "configuration [default: the host name].")
@click.option("--prefix", default="/", show_default=True, metavar="DIR",
              help="Write under DIR instead of / (an image being built); systemd is not told.")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.pass_context
@handle_errors
def install_cmd(ctx: click.Context, datastore: str | None, node: str | None, prefix: str,
                dry_run: bool) -> None:
    """Install this host's systemd units, their environment file and the CNI plugin.

    Writes gingham-node.service (the agent), gingham-fanout.service and
    gingham-docker.service into /etc/systemd/system, running this installation's
    `gingham` by its absolute path; /etc/gingham/gingham.env (0600) with the datastore
    URL; the CNI plugins and configuration as `gingham cni install` does. Running it
    again changes only what differs. Enables and starts nothing: see docs/INSTALL.md.
    """
    import socket

    from gingham import node_install as ni
    from gingham.cni.netconf import check_name
    from gingham.cni.protocol import PluginError
    from gingham.datastore.url import parse_url
    from gingham.model.meta import check_resource_name

    root = check_prefix_or_fail(prefix)
    obj = ctx.find_root().obj
    url = datastore or (obj.get("datastore") if isinstance(obj, dict) else None)
    if not url:
        raise click.UsageError(
            "give the cluster's datastore: --datastore URL (or gingham --datastore URL, or "
            "GINGHAM_DATASTORE); the current lab's or the default one is never assumed here")
    parse_url(url)  # a malformed URL is refused by name, before anything is written
    name = node or socket.gethostname()
    try:
        check_resource_name(name)  # the Node's, and the CNI configuration's, rules
        check_name(name, "node name")
    except ValueError as exc:
        raise click.BadParameter(f"{exc} (the host name, unless --node is given)",
                                 param_hint="--node") from None
    except PluginError as exc:
        raise click.BadParameter(exc.msg, param_hint="--node") from None
    changes = ni.install(root, ni.plan(url, name), dry_run)
    _print_changes(changes, dry_run)
    units_changed = any(c.action != "unchanged" for c in changes if c.path in ni.unit_paths(changes))
    if dry_run:
        return
    if root != Path("/"):
        click.echo(f"systemd not told (--prefix {root}): on that root, run "
                   "`systemctl daemon-reload` before enabling the units")
    elif not ni.systemd_running():
        click.echo("systemd is not running here: no daemon-reload")
    elif units_changed:
        problem = ni.systemctl("daemon-reload")
        if problem:
            raise click.ClickException(f"systemctl daemon-reload failed: {problem}")
        click.echo("systemctl daemon-reload: done")
    click.echo("next: systemctl enable --now gingham-node "
               "(and gingham-docker for Docker, gingham-fanout for a fan-out server)")


@node_group.command("uninstall")
@click.option("--prefix", default="/", show_default=True, metavar="DIR",
              help="Remove what `node install --prefix DIR` wrote.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@handle_errors
def uninstall_cmd(prefix: str, dry_run: bool) -> None:
    """Remove what `gingham node install` wrote (units stopped and disabled first).

    A file changed since the install wrote it is kept, and named. Running
    processes other than the units' (BIRD, left running by the agent on purpose)
    are not touched.
    """
    from gingham import node_install as ni

    root = check_prefix_or_fail(prefix)
    if not ni.read_manifest(root):
        click.echo(f"nothing to remove: no {ni.MANIFEST} under {root}")
        return
    live = root == Path("/") and ni.systemd_running() and not dry_run
    if live:
        for unit in ni.UNIT_NAMES:
            problem = ni.systemctl("disable", "--now", unit)
            if problem and "not loaded" not in problem and "does not exist" not in problem:
                click.echo(f"systemctl disable --now {unit}: {problem}", err=True)
    changes = ni.uninstall(root, dry_run)
    _print_changes(changes, dry_run)
    if live:
        problem = ni.systemctl("daemon-reload")
        if problem:
            raise click.ClickException(f"systemctl daemon-reload failed: {problem}")


def check_prefix_or_fail(prefix: str) -> Path:
    path = Path(prefix)
    if not path.is_absolute():
        raise click.BadParameter("must be an absolute path", param_hint="--prefix")
    return path.resolve()


_VERBS = {"create": ("created", "would create"), "update": ("updated", "would update"),
          "unchanged": ("unchanged", "unchanged"), "remove": ("removed", "would remove"),
          "absent": ("already gone", "already gone"),
          "keep": ("kept (changed since it was installed; remove it yourself)",
                   "would keep (changed since it was installed)")}  # fmt: skip


def _print_changes(changes: list[Any], dry_run: bool) -> None:
    for change in changes:
        click.echo(f"{_VERBS[change.action][1 if dry_run else 0]}: {change.path}")
