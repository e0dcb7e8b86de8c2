"""docs/CLI.md, generated from the click definitions: ``python -m gingham.cli.docgen``.

``make docs`` writes it; ``tests/unit/cli/test_docgen.py`` regenerates it and
fails when the file is stale, so the reference always says what the commands
do: every command path, its usage, description, arguments, options (type or
choices, default, environment variable, help), exit codes and examples
(``examples.py``). Nothing here depends on the terminal, the machine or the
environment: the same tree gives the same bytes.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterator
from typing import Any

import click

from gingham.cli.examples import examples_for

# The exit codes of every command unless EXIT_CODES says otherwise.
DEFAULT_EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "success"),
    (1, "failure: the reason is on standard error as `error: ...`"),
    (2, "usage error: unknown command or flag, missing or invalid argument"),
)
# Commands whose exit status carries an answer (a verdict, a match, differences).
EXIT_CODES: dict[str, tuple[tuple[int, str], ...]] = {
    "policy explain": (
        (0, "the connection is allowed"),
        (1, "the connection is denied"),
        (2, "error (unknown workload, unreadable datastore, ...) or usage error"),
    ),
    "lab probe": (
        (0, "SOURCE reached DESTINATION"),
        (1, "blocked: no connection (TCP) or no echo (UDP) within the timeout"),
        (2, "error (no such lab or workload, ...) or usage error"),
    ),
    "diff": (
        (0, "no differences: apply would change nothing"),
        (1, "differences (printed as a unified diff)"),
        (2, "error (invalid manifest, unreadable datastore, ...) or usage error"),
    ),
    "selector": (
        (0, "the selector is valid (and, with --labels, matches)"),
        (1, "the selector does not match the labels"),
        (2, "the selector is invalid (the position is marked), or usage error"),
    ),
    "validate": (
        (0, "every document is valid"),
        (1, "a document is invalid: each problem names file, document and field"),
        (2, "usage error"),
    ),
    "get": (
        (0, "success"),
        (1, "failure, or a named resource does not exist (those that do are still printed)"),
        (2, "usage error"),
    ),
    "lab exec": (
        (0, "COMMAND's own exit status: gingham runs it in place of itself"),
        (1, "no such lab, host or workload"),
        (2, "usage error"),
    ),
    "lab docker": (
        (0, "the Docker CLI's own exit status: gingham runs it in place of itself"),
        (1, "no such lab or host, or the lab has no Docker (lab up --docker)"),
        (2, "usage error"),
    ),
}


def walk(root: click.Command | None = None) -> Iterator[tuple[str, click.Command, click.Context]]:
    """Every command path ("" for gingham itself, "get", "lab vm add") in the order of
    ``gingham -h``, with its command and a context to format it in."""
    if root is None:
        from gingham.cli.main import cli

        root = cli
    yield from _walk(root, "", click.Context(root, info_name="gingham", **root.context_settings))


def _walk(command: click.Command, path: str,
          ctx: click.Context) -> Iterator[tuple[str, click.Command, click.Context]]:  # fmt: skip
    yield path, command, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_path = f"{path} {name}".strip()
            yield from _walk(sub, sub_path, click.Context(sub, parent=ctx, info_name=name))


def exit_codes(path: str) -> tuple[tuple[int, str], ...]:
    return EXIT_CODES.get(path, DEFAULT_EXIT_CODES)


def _cell(text: str) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _description(command: click.Command) -> str:
    """The help text as Markdown paragraphs: click's ``\\b`` markers dropped, RST-style
    ``literals`` as Markdown code."""
    text = inspect.cleandoc(command.help or "")
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line for line in block.splitlines() if line.strip() != "\b"]
        if not lines:
            continue
        if block.lstrip().startswith("\b"):
            paragraphs.append("\n".join(f"    {line}" for line in lines))
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(re.sub(r"``([^`]+)``", r"`\1`", p) for p in paragraphs)


def _value(param: click.Parameter, ctx: click.Context) -> str:
    """What a parameter takes: the choices, or its metavar, with the range if any."""
    if isinstance(param, click.Option) and param.is_flag:
        return "flag"
    ptype = param.type
    if isinstance(ptype, click.Choice):
        text = ", ".join(f"`{c}`" for c in ptype.choices)
        if not ptype.case_sensitive:
            text += " (any case)"
    else:
        metavar = param.metavar or ptype.get_metavar(param, ctx) or ptype.name.upper()
        text = metavar
    if isinstance(param, click.Option):
        extra: dict[str, Any] = dict(param.get_help_extra(ctx))
        if extra.get("range"):
            text += f" ({extra['range']})"
    if param.multiple:
        text += "; repeatable"
    return text


def _unset(value: object) -> bool:
    """click's own marker for "no default" (a private enum member named UNSET)."""
    return type(value).__module__.startswith("click") and getattr(value, "name", "") == "UNSET"


def _default(param: click.Option, ctx: click.Context) -> str:
    if isinstance(param.show_default, str):
        return param.show_default
    value = param.get_default(ctx, call=False)
    if value is None or value == () or callable(value) or _unset(value):
        return ""
    if param.is_bool_flag:
        if param.secondary_opts:
            return f"`{(param.opts if value else param.secondary_opts)[0]}`"
        return "" if not value else "on"
    return f"`{value}`" if str(value) != "" else '`""`'


def _options(command: click.Command, ctx: click.Context) -> list[str]:
    rows = []
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option) or param.hidden:
            continue
        names = ", ".join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
        notes = []
        if param.required:
            notes.append("required")
        if param.envvar:
            envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
            notes.append("environment: " + ", ".join(f"`{e}`" for e in envvars))
        help_text = " ".join([*(param.help or "").split(), *(f"({n})" for n in notes)])
        rows.append(f"| {names} | {_cell(_value(param, ctx))} | {_cell(_default(param, ctx))}"
                    f" | {_cell(help_text)} |")
    if not rows:
        return []
    return ["| option | value | default | description |", "|---|---|---|---|", *rows, ""]


def _arguments(command: click.Command, ctx: click.Context) -> list[str]:
    rows = []
    for param in command.get_params(ctx):
        if not isinstance(param, click.Argument):
            continue
        name = param.make_metavar(ctx).rstrip(".").strip("[]").rstrip(".")
        if param.nargs == -1:
            count = "one or more" if param.required else "any number"
        else:
            count = "required" if param.required else "optional"
        value = "" if isinstance(param.type, click.types.StringParamType) else _value(param, ctx)
        rows.append(f"| `{name}` | {count} | {_cell(value)} |")
    if not rows:
        return []
    return ["| argument | how many | value |", "|---|---|---|", *rows, ""]


def _anchor(path: str) -> str:
    return "gingham" + ("-" + path.replace(" ", "-") if path else "")


def _section(path: str, command: click.Command, ctx: click.Context) -> list[str]:
    title = f"gingham {path}".strip()
    usage = " ".join(["gingham", *path.split(), *command.collect_usage_pieces(ctx)])
    out = [f"## {title}", ""]
    description = _description(command)
    if description:
        out += [description, ""]
    out += ["```text", f"Usage: {usage}", "```", ""]
    if isinstance(command, click.Group):
        out += ["| command | what it does |", "|---|---|"]
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_path = f"{path} {name}".strip()
            out.append(f"| [`{name}`](#{_anchor(sub_path)}) | "
                       f"{_cell(sub.get_short_help_str(limit=200))} |")
        out.append("")
    out += _arguments(command, ctx)
    out += _options(command, ctx)
    out += ["| exit status | meaning |", "|---|---|"]
    out += [f"| {code} | {_cell(meaning)} |" for code, meaning in exit_codes(path)]
    out.append("")
    examples = examples_for(path)
    if examples:
        out += ["Examples:", "", "```sh"]
        for what, line in examples:
            out += [f"# {what}", line]
        out += ["```", ""]
    return out


HEADER = """\
# gingham command reference

Generated from the command definitions by `make docs`
(`python -m gingham.cli.docgen > docs/CLI.md`): do not edit by hand; a test
fails when this file and the commands disagree. `gingham COMMAND -h` shows the
same help, examples included.

Every command takes `-h`/`--help`. Options of `gingham` itself (`--datastore`)
go before the command: `gingham --datastore etcd://10.0.0.5:2379 get gnp`.
Unless a command's table says otherwise, exit status 0 is success, 1 a
failure (the reason on standard error as `error: ...`) and 2 a usage error.
"""


def render(root: click.Command | None = None) -> str:
    """The whole of docs/CLI.md."""
    sections = list(walk(root))
    out = [HEADER, "## Commands", ""]
    for path, command, _ in sections:
        if path:
            depth = path.count(" ")
            out.append(f"{'  ' * depth}- [`gingham {path}`](#{_anchor(path)}): "
                       f"{command.get_short_help_str(limit=200)}")
    out.append("")
    for path, command, ctx in sections:
        out += _section(path, command, ctx)
    return "\n".join(out).rstrip("\n") + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
