"""``gingham docker serve``: the libnetwork network and IPAM driver ``gingham`` for one host.

See docs/OPERATIONS.md, "Docker on several hosts".
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from gingham.cli.common import context_datastore_url, handle_errors
from gingham.cli.logopts import log_format_option, start_logging


@click.group("docker")
def docker_group() -> None:
    """Docker: the `gingham` libnetwork network and IPAM driver."""


@docker_group.command("serve")
@click.option("--node", required=True, metavar="NAME",
              help="This host's node name (the one its agent runs as).")
@click.option("--socket", "socket_path", default=None, metavar="PATH",
              help="Plugin socket [default: /run/docker/plugins/gingham.sock].")
@click.option("--docker-host", default=None, metavar="unix:///PATH",
              envvar="DOCKER_HOST",
              help="The daemon's API socket, for network names, container labels and the "
                   "start-up reconcile [default: $DOCKER_HOST, else unix:///run/docker.sock].")
@click.option("--log-level", default="info",
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
@log_format_option
@click.pass_context
@handle_errors
def serve_cmd(ctx: click.Context, node: str, socket_path: str | None,
              docker_host: str | None, log_level: str, log_format: str | None) -> None:
    """Serve Docker until SIGTERM or SIGINT (the socket is removed on the way out)."""
    from gingham.datastore import open_datastore
    from gingham.docker.engine import DEFAULT_HOST, Engine
    from gingham.docker.plugin import DEFAULT_SOCKET, serve
    from gingham.hostfiles import run_dir
    from gingham.model.meta import check_resource_name

    start_logging(ctx, log_level, log_format)
    try:
        check_resource_name(node)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--node") from None
    engine = Engine(docker_host or DEFAULT_HOST)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ds = open_datastore(context_datastore_url(ctx))
    try:
        serve(ds, node, Path(socket_path) if socket_path else DEFAULT_SOCKET, engine,
              run_dir(), stop)
    finally:
        ds.close()
