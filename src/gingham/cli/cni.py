"""``gingham cni``: a network configuration for any CNI runtime, and its installation.

The configuration carries everything the plugin needs, so a runtime sets no
environment variable: the datastore, the node name, and the agent's run
directory (``runDir``), under which the plugin finds its node agent's socket
(``<runDir>/<node>/cni.sock``) and hands it the command; the datastore is for
the direct path, when no agent answers.

Runtimes keep network configurations world-readable, so a datastore user and
password never go into one: they are moved into a JSON file readable by root
only, which the configuration names in ``datastoreCredentials`` (the plugin
refuses a credentials file that others can read).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import click

from gingham.cli.common import context_datastore_url, handle_errors
from gingham.files import write_atomic


def conflist(
    name: str, datastore: str, host: str, credentials: str | None = None,
    run_dir: str | None = None, agent: bool = True,
) -> dict[str, object]:
    from gingham.cni.client import AGENT_KEY, NODENAME_KEY, RUN_DIR_KEY
    from gingham.hostfiles import run_dir_text

    plugin: dict[str, object] = {
        "type": "gingham",
        "datastore": datastore,
        NODENAME_KEY: host,
        RUN_DIR_KEY: run_dir or run_dir_text(),
        "mtu": 0,
        "ipam": {"type": "gingham-ipam"},
    }
    if not agent:
        plugin[AGENT_KEY] = False
    if credentials:
        from gingham.cni.netconf import CREDENTIALS_KEY

        plugin[CREDENTIALS_KEY] = credentials
    # 1.0.0, not 1.1.0: podman 4.3 refuses results of a version it does not know.
    return {"cniVersion": "1.0.0", "name": name, "plugins": [plugin]}


def _check_name(name: str) -> str:
    from gingham.cni.netconf import network_name_problem

    problem = network_name_problem(name)
    if problem:
        raise click.BadParameter(problem, param_hint="--name")
    return name


def _check_host(host: str | None) -> str:
    from gingham.cni.netconf import check_name
    from gingham.cni.protocol import PluginError

    host = host or socket.gethostname()
    try:
        return check_name(host, "node name")
    except PluginError as exc:
        raise click.BadParameter(exc.msg, param_hint="--host") from None


@click.group("cni")
def cni_group() -> None:
    """CNI network configuration and plugin installation."""


def _check_run_dir(run_dir: str | None) -> str | None:
    if run_dir is not None and not os.path.isabs(run_dir):
        raise click.BadParameter("must be an absolute path", param_hint="--run-dir")
    return run_dir


RUN_DIR_HELP = "The node agent's run directory [default: $GINGHAM_RUN_DIR or /run/gingham]."
AGENT_HELP = ("Hand commands to the node agent (the plugin does the work itself when none "
              "answers); --no-agent: always do it in the plugin.")


@cni_group.command("config")
@click.option("--name", "net_name", required=True, help="Network name.")
@click.option("--host", default=None, help="Node name (default: this host's name).")
@click.option("--run-dir", default=None, help=RUN_DIR_HELP)
@click.option("--agent/--no-agent", default=True, show_default=True, help=AGENT_HELP)
@click.option(
    "--credentials-file",
    default=None,
    help="Where the datastore user and password will be (required if the URL has them).",
)
@click.pass_context
@handle_errors
def config_cmd(
    ctx: click.Context, net_name: str, host: str | None, run_dir: str | None, agent: bool,
    credentials_file: str | None,
) -> None:
    """Print a network configuration list for the current datastore and host.

    Credentials in the datastore URL are left out; the configuration names
    --credentials-file instead, which you write yourself (mode 0600, JSON
    {"user": ..., "password": ...}) or let `gingham cni install` write.
    """
    from gingham.datastore.url import split_credentials

    name, node = _check_name(net_name), _check_host(host)
    run_dir = _check_run_dir(run_dir)
    public, creds = split_credentials(context_datastore_url(ctx))
    if creds and not credentials_file:
        raise click.UsageError(
            "the datastore URL carries credentials, which do not belong in a network"
            " configuration: pass --credentials-file PATH (or use `gingham cni install`)"
        )
    if credentials_file and not os.path.isabs(credentials_file):
        raise click.BadParameter("must be an absolute path", param_hint="--credentials-file")
    data = conflist(name, public, node, credentials_file, run_dir, agent)
    click.echo(json.dumps(data, indent=2))


@cni_group.command("install")
@click.option("--name", "net_name", default="gingham", show_default=True)
@click.option("--host", default=None)
@click.option("--run-dir", default=None, help=RUN_DIR_HELP)
@click.option("--agent/--no-agent", default=True, show_default=True, help=AGENT_HELP)
@click.option(
    "--bin-dir", default="/opt/cni/bin", show_default=True, type=click.Path(file_okay=False)
)
@click.option(
    "--conf-dir", default="/etc/cni/net.d", show_default=True, type=click.Path(file_okay=False)
)
@click.pass_context
@handle_errors
def install_cmd(
    ctx: click.Context, net_name: str, host: str | None, run_dir: str | None, agent: bool,
    bin_dir: str, conf_dir: str,
) -> None:
    """Write the plugins into BIN_DIR and the configuration into CONF_DIR.

    The plugins are small launchers of this installation's interpreter
    (``cni/launcher.py``), not links to its console scripts: they start faster,
    and name no path of a source checkout. They need that interpreter: run this
    again after recreating or moving its virtual environment.

    Datastore credentials go into CONF_DIR/10-NAME.credentials (mode 0600),
    never into the configuration itself.
    """
    # Everything is checked before the first file is touched.
    name, node = _check_name(net_name), _check_host(host)
    run_dir = _check_run_dir(run_dir)
    bins, confs = Path(bin_dir), Path(conf_dir).absolute()
    files = cni_files(name, node, run_dir, agent, bins, confs, context_datastore_url(ctx))
    bins.mkdir(parents=True, exist_ok=True)
    confs.mkdir(parents=True, exist_ok=True)
    for f in files:
        # replaces a link an older install made, never writing through it
        write_atomic(f.path, f.text, f.mode)
    secrets = credentials_path(confs, name)
    written = {f.path for f in files}
    if secrets not in written:
        # a credentials file from an earlier install must not outlive its use
        with contextlib.suppress(FileNotFoundError):
            secrets.unlink()
    conf = confs / f"10-{name}.conflist"
    extra = f" (credentials in {secrets}, mode 0600)" if secrets in written else ""
    click.echo(f"installed gingham and gingham-ipam in {bins}; configuration {conf}{extra}")


@dataclass(frozen=True)
class CniFile:
    path: Path
    text: str
    mode: int  # 0o755 a plugin, 0o600 the credentials, 0o644 the configuration


def credentials_path(conf_dir: Path, name: str) -> Path:
    return conf_dir / f"10-{name}.credentials"


def cni_files(name: str, node: str, run_dir: str | None, agent: bool, bin_dir: Path,
              conf_dir: Path, datastore_url: str) -> list[CniFile]:
    """What ``cni install`` writes: the two plugins, the configuration and, when the URL
    carries them, the datastore credentials. Nothing is written here.

    The plugins are launchers of this installation's interpreter
    (``cni/launcher.py``): not links into a virtual environment or a checkout."""
    from gingham.cni.launcher import ENTRIES, launcher, site_dir
    from gingham.datastore.url import split_credentials

    public, creds = split_credentials(datastore_url)
    site = site_dir()
    out = [CniFile(bin_dir / plugin, launcher(entry, site), 0o755)
           for plugin, entry in ENTRIES.items()]
    secrets = credentials_path(conf_dir, name)
    if creds:
        out.append(CniFile(secrets, json.dumps(creds, indent=2) + "\n", 0o600))
    data = conflist(name, public, node, str(secrets) if creds else None, run_dir, agent)
    out.append(CniFile(conf_dir / f"10-{name}.conflist", json.dumps(data, indent=2) + "\n",
                       0o644))  # last: it names the credentials file
    return out
