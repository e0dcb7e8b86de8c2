"""The ``gingham`` command.

Sub-commands live in their own modules and are imported only when used, so
``gingham --help`` stays fast and a broken optional part cannot take the
whole command down. Register a command by adding it to ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from gingham import __version__
from gingham.errors import GinghamError
from gingham.names import DATASTORE_ENV, DEFAULT_DATASTORE_URL

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "apply": "gingham.cli.resources:apply_cmd",
    "create": "gingham.cli.resources:create_cmd",
    "replace": "gingham.cli.resources:replace_cmd",
    "delete": "gingham.cli.resources:delete_cmd",
    "get": "gingham.cli.resources:get_cmd",
    "validate": "gingham.cli.resources:validate_cmd",
    "datastore": "gingham.cli.datastore:datastore_group",
    "selector": "gingham.cli.selector:selector_cmd",
    "ipam": "gingham.cli.ipam:ipam_group",
    "node": "gingham.cli.node:node_group",
    "cni": "gingham.cli.cni:cni_group",
    "workload": "gingham.cli.workload:workload_group",
    "lab": "gingham.cli.lab:lab_group",
    "policy": "gingham.cli.policy:policy_group",
    "fanout": "gingham.cli.fanout:fanout_group",
    "docker": "gingham.cli.docker:docker_group",
    "flows": "gingham.cli.policy:flows_cmd",
    "version": "gingham.cli.version:version_cmd",
    "patch": "gingham.cli.patch:patch_cmd",
    "label": "gingham.cli.label:label_cmd",
    "diff": "gingham.cli.diff:diff_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("gingham"):
                return None  # that part is not built yet
            raise
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="gingham",
                      message="%(prog)s %(version)s")
@click.option(
    "--datastore",
    envvar=DATASTORE_ENV,
    default=None,
    help="sqlite:///path or etcd://host:port[,host:port]; default: the current lab's, "
    f"else {DEFAULT_DATASTORE_URL}",
)
@click.pass_context
def cli(ctx: click.Context, datastore: str | None) -> None:
    """gingham: L3 container networking with a micro-firewall per workload."""
    ctx.ensure_object(dict)
    ctx.obj["datastore"] = datastore


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="gingham", standalone_mode=True)
    except GinghamError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
