"""``gingham config``: where am I (which datastore, and why), and kubectl-style contexts.

The resolution rules and the file's format are :mod:`gingham.cli.contexts`.
Everything printed shows datastore URLs without their password.
"""

from __future__ import annotations

from typing import Any

import click

from gingham.cli.common import context_resolution, dump_json, handle_errors, print_table


def _config() -> Any:
    from gingham.cli.contexts import config_path, load_config

    return load_config(config_path())


def _shown(url: str) -> str:
    from gingham.datastore import redact_url

    return redact_url(url)


@click.group("config")
def config_group() -> None:
    """Which datastore commands use and why; contexts that name datastores.

    \b
    Resolution, first match wins: --datastore, $GINGHAM_DATASTORE, --context,
    $GINGHAM_CONTEXT, the config file's current context, the current lab, the
    built-in default. The config file is $GINGHAM_CONFIG, else
    $XDG_CONFIG_HOME/gingham/config.yaml, else ~/.config/gingham/config.yaml.
    """


@config_group.command("view")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def view_cmd(output: str) -> None:
    """The datastore this command line would use, where that came from, and the contexts.
    """
    resolved = context_resolution()
    config = _config()
    data = {
        "datastore": _shown(resolved.url),
        "source": resolved.source,
        "from": resolved.describe(),
        "context": resolved.context,
        "lab": resolved.lab,
        "configFile": None if config.path is None else str(config.path),
        "configFileExists": config.path is not None and config.path.exists(),
        "currentContext": config.current,
        "contexts": [{"name": n, "datastore": _shown(u)}
                     for n, u in sorted(config.contexts.items())],
    }  # fmt: skip
    if output == "json":
        click.echo(dump_json(data))
        return
    file_text = data["configFile"] or "none (no HOME)"
    if config.path is not None and not data["configFileExists"]:
        file_text += " (does not exist)"
    click.echo(f"datastore:        {data['datastore']}")
    click.echo(f"from:             {data['from']}")
    click.echo(f"config file:      {file_text}")
    click.echo(f"current context:  {config.current or '-'}")
    click.echo(f"contexts:         {config.known()}")


@config_group.command("set-context")
@click.argument("name")
@click.option("--datastore", "url", required=True, metavar="URL",
              help="The datastore URL this context names.")
@handle_errors
def set_context_cmd(name: str, url: str) -> None:
    """Create context NAME, or point it at another datastore.
    """
    from gingham.cli.contexts import save_config
    from gingham.datastore.url import parse_url
    from gingham.errors import ValidationError

    if not name.strip() or name != name.strip():
        raise ValidationError("a context name must be non-empty, without surrounding spaces",
                              "NAME")
    parse_url(url)  # a malformed URL is refused now, not at the next command
    config = _config()
    existed = name in config.contexts
    config.contexts[name] = url
    save_config(config)
    click.echo(f'Context "{name}" {"modified" if existed else "created"}.')


@config_group.command("use-context")
@click.argument("name")
@handle_errors
def use_context_cmd(name: str) -> None:
    """Make NAME the current context: commands then use its datastore by default."""
    from gingham.cli.contexts import save_config

    config = _config()
    config.get(name, "use-context")
    config.current = name
    save_config(config)
    click.echo(f'Switched to context "{name}".')


@config_group.command("get-contexts")
@click.argument("names", nargs=-1)
@click.option("-o", "--output", type=click.Choice(["table", "json", "name"]), default="table")
@handle_errors
def get_contexts_cmd(names: tuple[str, ...], output: str) -> None:
    """The contexts of the config file (or just NAMES); * marks the current one."""
    config = _config()
    for name in names:
        config.get(name, "get-contexts")
    chosen = sorted(names or config.contexts)
    if output == "name":
        for name in chosen:
            click.echo(name)
    elif output == "json":
        click.echo(dump_json([{"name": n, "datastore": _shown(config.contexts[n]),
                               "current": n == config.current} for n in chosen]))
    else:
        print_table(["CURRENT", "NAME", "DATASTORE"],
                    [["*" if n == config.current else "", n, _shown(config.contexts[n])]
                     for n in chosen])  # fmt: skip


@config_group.command("current-context")
@handle_errors
def current_context_cmd() -> None:
    """Print the current context's name (exit status 1 when none is set)."""
    from gingham.cli.common import fail

    config = _config()
    if config.current is None:
        raise fail("current-context is not set")
    click.echo(config.current)


@config_group.command("delete-context")
@click.argument("name")
@handle_errors
def delete_context_cmd(name: str) -> None:
    """Remove context NAME from the config file (if current, no context is current after)."""
    from gingham.cli.contexts import save_config

    config = _config()
    config.get(name, "delete-context")
    del config.contexts[name]
    if config.current == name:
        config.current = None
        click.echo(f"warning: {name!r} was the current context; none is current now "
                   "(gingham config use-context NAME)", err=True)
    save_config(config)
    click.echo(f"deleted context {name} from {config.path}")


@config_group.command("unset")
@click.argument("field", type=click.Choice(["current-context"]))
@handle_errors
def unset_cmd(field: str) -> None:
    """Unset the current context: commands fall back to the current lab or the default."""
    from gingham.cli.contexts import save_config

    config = _config()
    if config.current is not None:
        config.current = None
        save_config(config)
    click.echo(f"Property \"{field}\" unset.")
