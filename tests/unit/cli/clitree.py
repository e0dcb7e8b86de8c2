"""Does a ``gingham ...`` command line name a real command, with flags it has?

Walks the click tree as click would parse the line: options of ``gingham``
itself, then sub-command names down to a command, then that command's
options. Positional arguments are not checked (they are the operator's
data); everything after ``--`` is another program's.
"""

from __future__ import annotations

import re

import click

from gingham.cli.main import cli


def _root_context() -> click.Context:
    return click.Context(cli, info_name="gingham", **cli.context_settings)


def _options(ctx: click.Context) -> dict[str, click.Option]:
    out: dict[str, click.Option] = {}
    for param in ctx.command.get_params(ctx):
        if isinstance(param, click.Option):
            for name in (*param.opts, *param.secondary_opts):
                out[name] = param
    return out


def _takes_value(option: click.Option) -> bool:
    return not (option.is_flag or option.count)


def resolve(argv: list[str]) -> tuple[str, list[str]]:
    """(the command path reached, problems) for ``argv`` (``argv[0]`` is ``gingham``)."""
    ctx = _root_context()
    path: list[str] = []
    problems: list[str] = []
    i = 1
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            break
        if token.startswith("-") and token != "-":
            options = _options(ctx)
            if token.startswith("--"):
                name, attached = token.partition("=")[0], "=" in token
            else:
                name, attached = token[:2], len(token) > 2
            option = options.get(name)
            if option is None:
                if not ctx.command.ignore_unknown_options:
                    where = " ".join(["gingham", *path])
                    problems.append(f"{where}: no option {name}")
                continue
            if _takes_value(option) and not attached:
                i += 1  # its value
            elif not _takes_value(option) and attached and not token.startswith("--"):
                # -Ao: a cluster of short flags (the last may take a value)
                for letter in token[2:]:
                    if f"-{letter}" not in options:
                        problems.append(f"gingham {' '.join(path)}: no option -{letter}")
            continue
        if isinstance(ctx.command, click.Group):
            if re.fullmatch(r"[A-Z][A-Z0-9_]*", token):
                return " ".join(path), problems  # a placeholder: "gingham COMMAND -h"
            sub = ctx.command.get_command(ctx, token)
            if sub is None:
                where = " ".join(["gingham", *path])
                problems.append(f"{where}: no command {token!r}")
                return " ".join(path), problems
            path.append(token)
            ctx = click.Context(sub, parent=ctx, info_name=token)
    return " ".join(path), problems


def all_paths() -> set[str]:
    from gingham.cli.docgen import walk

    return {path for path, _, _ in walk()}
