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
from gingham.cli.examples import epilog as examples_epilog
from gingham.errors import GinghamError
from gingham.names import CONTEXT_ENV, DATASTORE_ENV, DEFAULT_DATASTORE_URL, LOG_FORMAT_ENV

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
    "completion": "gingham.cli.completion:completion_cmd",
    "config": "gingham.cli.config:config_group",
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
        _decorate(command, cmd_name)
        return command


def _decorate(command: click.Command, path: str) -> None:
    """Examples in the help of ``command`` and of every command under it, and shell
    completion of KIND and NAME for the resource verbs: done here, centrally, so the
    modules that define the commands need not know about either."""
    from gingham.cli import completion, examples

    if getattr(command, "_gingham_decorated", False):
        return
    command._gingham_decorated = True  # type: ignore[attr-defined]
    text = examples.epilog(path)
    if text is not None:
        command.epilog = f"{command.epilog}\n\n{text}" if command.epilog else text
    completion.attach(command, path)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            _decorate(sub, f"{path} {name}")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=examples_epilog(""))
@click.version_option(__version__, "--version", prog_name="gingham",
                      message="%(prog)s %(version)s")
@click.option(
    "--datastore",
    default=None,
    metavar="URL",
    help=f"sqlite:///path or etcd://host:port[,host:port]. Default: ${DATASTORE_ENV}, else "
    f"--context's, else ${CONTEXT_ENV}'s, else the config file's current context, else the "
    f"current lab's, else {DEFAULT_DATASTORE_URL} (gingham config view says which).",
)
@click.option(
    "--context",
    default=None,
    metavar="NAME",
    help="Use this context of the config file (gingham config get-contexts) for this "
    "command.",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No notes on stderr (such as which datastore a command fell back to); warnings and "
    "errors still.",
)
@click.option(
    "--log-format",
    envvar=LOG_FORMAT_ENV,
    type=click.Choice(["text", "json"]),
    default=None,
    help=f"Log lines as text or one JSON object each [default: text; env {LOG_FORMAT_ENV}].",
)
@click.pass_context
def cli(ctx: click.Context, datastore: str | None, context: str | None, quiet: bool,
        log_format: str | None) -> None:
    """gingham: L3 container networking with a micro-firewall per workload."""
    from gingham.logs import setup_cli_logging

    ctx.ensure_object(dict)
    ctx.obj["datastore"] = datastore
    ctx.obj["context"] = context
    ctx.obj["quiet"] = quiet
    ctx.obj["log_format"] = log_format
    setup_cli_logging(log_format)


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="gingham", standalone_mode=True)
    except GinghamError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
