"""``gingham cni``: a network configuration for any CNI runtime, and its installation."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import click

from gingham.cli.common import context_datastore_url, handle_errors


def conflist(name: str, datastore: str, host: str) -> dict[str, object]:
    # 1.0.0, not 1.1.0: podman 4.3 refuses results of a version it does not know.
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "gingham",
                "datastore": datastore,
                "nodename": host,
                "mtu": 0,
                "ipam": {"type": "gingham-ipam"},
            }
        ],
    }


@click.group("cni")
def cni_group() -> None:
    """CNI network configuration and plugin installation."""


@cni_group.command("config")
@click.option("--name", "net_name", required=True, help="Network name.")
@click.option("--host", default=None, help="Node name (default: this host's name).")
@click.pass_context
@handle_errors
def config_cmd(ctx: click.Context, net_name: str, host: str | None) -> None:
    """Print a network configuration list for the current datastore and host."""
    click.echo(
        json.dumps(
            conflist(net_name, context_datastore_url(ctx), host or socket.gethostname()), indent=2
        )
    )


@cni_group.command("install")
@click.option("--name", "net_name", default="gingham", show_default=True)
@click.option("--host", default=None)
@click.option(
    "--bin-dir", default="/opt/cni/bin", show_default=True, type=click.Path(file_okay=False)
)
@click.option(
    "--conf-dir", default="/etc/cni/net.d", show_default=True, type=click.Path(file_okay=False)
)
@click.pass_context
@handle_errors
def install_cmd(
    ctx: click.Context, net_name: str, host: str | None, bin_dir: str, conf_dir: str
) -> None:
    """Link the plugins into BIN_DIR and write the configuration into CONF_DIR."""
    here = Path(sys.executable).parent
    bins = Path(bin_dir)
    bins.mkdir(parents=True, exist_ok=True)
    for plugin, script in (("gingham", "gingham-cni"), ("gingham-ipam", "gingham-ipam")):
        target = bins / plugin
        if target.is_symlink() or target.exists():
            target.unlink()
        os.symlink(here / script, target)
    confs = Path(conf_dir)
    confs.mkdir(parents=True, exist_ok=True)
    path = confs / f"10-{net_name}.conflist"
    data = conflist(net_name, context_datastore_url(ctx), host or socket.gethostname())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    click.echo(f"installed gingham and gingham-ipam in {bins}; configuration {path}")
