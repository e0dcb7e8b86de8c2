"""``--log-format`` on the long-running commands, and starting their log.

The global ``gingham --log-format`` (or ``GINGHAM_LOG_FORMAT``) applies to
every command; a long-running command's own ``--log-format`` wins over it, as
its ``--log-level`` does, so a unit file can say it where the other flags are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import click

from gingham.logs import FORMATS, setup_logging

F = TypeVar("F", bound=Callable[..., object])


def log_format_option(f: F) -> F:
    return click.option(
        "--log-format",
        type=click.Choice(FORMATS),
        default=None,
        help="Log lines as text or one JSON object each; wins over the global "
        "--log-format [default: the global one, else text].",
    )(f)


def start_logging(ctx: click.Context, level: str, log_format: str | None,
                  quiet: Iterable[str] = ()) -> None:  # fmt: skip
    """The process's log: ``log_format`` (the command's own), else the global one."""
    chosen = log_format or (ctx.obj or {}).get("log_format") or "text"
    setup_logging(level, chosen, quiet=quiet)
