"""Helpers every ``gingham`` sub-command shares: which datastore, errors, tables.

Which datastore: :mod:`gingham.cli.contexts` (``--datastore``,
``GINGHAM_DATASTORE``, ``--context``, ``GINGHAM_CONTEXT``, the config file's
current context, the current lab, the built-in default). A command that falls
back to the lab's or the default says so once on stderr (``-q`` silences it).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from gingham.cli.contexts import Resolved, resolve
from gingham.errors import GinghamError

P = ParamSpec("P")
R = TypeVar("R")


def resolve_datastore_url(
    explicit: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    run_dir: Path | None = None,
    context: str | None = None,
) -> str:
    """The URL alone (agents, servers); ``context`` defaults to the running command's
    ``--context``, so that every command honours it."""
    if context is None and click.get_current_context(silent=True) is not None:
        context = root_options().get("context")
    return resolve(explicit, context, env=os.environ if env is None else env,
                   run_dir=run_dir).url


def root_options(ctx: click.Context | None = None) -> dict[str, Any]:
    """What the root group was told (``--datastore``, ``--context``, ``--quiet``)."""
    ctx = ctx or click.get_current_context()
    obj = ctx.find_root().obj
    return obj if isinstance(obj, dict) else {}


def context_resolution(ctx: click.Context | None = None) -> Resolved:
    """The running command's datastore and where it came from (no note printed)."""
    opts = root_options(ctx)
    return resolve(opts.get("datastore"), opts.get("context"))


def note(message: str, ctx: click.Context | None = None) -> None:
    """A ``note: …`` line on stderr, unless ``gingham -q``; stdout stays the command's."""
    if not root_options(ctx).get("quiet"):
        click.echo(message, err=True)


def context_datastore_url(ctx: click.Context | None = None) -> str:
    """The URL for the running command; when it is the current lab's or the built-in
    default (nobody chose it), one note on stderr says which and why."""
    ctx = ctx or click.get_current_context()
    resolved = context_resolution(ctx)
    opts = root_options(ctx)
    if resolved.fallback and not opts.get("noted"):
        opts["noted"] = True  # once per command, however often it asks
        note(resolved.note(), ctx)
    return resolved.url


@contextmanager
def open_store(ctx: click.Context | None = None, *, create: bool = False) -> Iterator[Any]:
    """The command's datastore, closed on the way out.

    Only commands that exist to put resources in (``apply``/``create``/
    ``replace``, ``datastore init``) pass ``create``: a read on a mistyped
    path must say so rather than make an empty datastore and show nothing.
    """
    from gingham.datastore import open_datastore

    ds = open_datastore(context_datastore_url(ctx), create=create)
    try:
        yield ds
    finally:
        ds.close()


class ShownWithShort(click.Option):
    """A long option whose help line also names a short one that is declared apart (hidden),
    because the command reads that short one differently for a while (a deprecated meaning)."""

    def __init__(self, *args: Any, short: str, **kwargs: Any) -> None:
        self.short = short
        super().__init__(*args, **kwargs)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        return None if record is None else (f"{self.short}, {record[0]}", record[1])


def deprecated(message: str, ctx: click.Context | None = None) -> None:
    """A ``note:`` that an old spelling still works but will not for ever."""
    note(f"note: {message}", ctx)


# Exit status of a failed command; verdict commands (explain, probe) use VERDICT_ERROR
# because their 1 means "denied".
ERROR = 1
VERDICT_ERROR = 2


def fail(message: str, code: int = ERROR) -> click.exceptions.Exit:
    """Print ``error: message`` to stderr; raise the returned Exit."""
    click.echo(f"error: {message}", err=True)
    return click.exceptions.Exit(code)


def _errors_exit(fn: Callable[P, R], code: int) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except GinghamError as exc:
            raise fail(str(exc), code) from None

    return wrapper


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a GinghamError into ``error: …`` on stderr and exit status 1, no traceback."""
    return _errors_exit(fn, ERROR)


def handle_verdict_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """For commands whose exit status is a verdict (0 allowed, 1 denied): a GinghamError
    is ``error: …`` and exit status 2, as click's usage errors already are."""
    return _errors_exit(fn, VERDICT_ERROR)


def stdout_console() -> Any:
    from rich.console import Console

    # Not a terminal (pipes, tests): print_table sizes each table to its own width.
    width = None if sys.stdout.isatty() else 200
    return Console(file=sys.stdout, width=width, highlight=False, soft_wrap=False)


# Columns whose cells a script or a reader copies whole: never wrapped, never cut.
IDENTIFIER_HEADERS: frozenset[str] = frozenset({
    "NAME", "NAMESPACE", "WORKLOAD", "HOST", "NODE", "ENDPOINT", "POOL", "BLOCK", "IP",
    "IPS", "HANDLE", "INTERFACE", "NETNS", "ADDRESS", "PEER ADDRESS", "SOURCE", "DESTINATION",
    "CONTEXT", "DATASTORE", "TIME", "CURRENT",
})  # fmt: skip
# Between two columns: rich's padding, plus the divider of a table with a header rule.
_GAP = {True: 3, False: 2}
# Narrowest a wrapped column gets when identifiers push the line past the terminal.
_WRAPPED_MIN = 16


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *,
                console: Any = None, identifiers: Collection[str] | None = None) -> None:
    """A plain table: header row, no borders, like kubectl and calicoctl.

    Into a pipe: no rule under the header (``| tail -n +2 | awk`` sees rows
    only) and no wrapping at all, one row per line. On a terminal, identifier
    columns (NAME, NAMESPACE, …: ``identifiers``) are never wrapped or cut: when
    the terminal is too narrow the line runs long, as kubectl's do; other long
    cells wrap at word boundaries (a word wider than its column is folded).
    """
    from rich import box
    from rich.measure import Measurement
    from rich.table import Table

    console = console or stdout_console()
    keep = IDENTIFIER_HEADERS if identifiers is None else frozenset(identifiers)
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    terminal = bool(console.is_terminal)
    table = Table(box=box.SIMPLE_HEAD if terminal else None, show_edge=False, pad_edge=False)
    least = 0
    for i, header in enumerate(headers):
        column = [header, *(row[i] for row in cells if i < len(row))]
        natural = max(len(line) for text in column for line in text.splitlines() or [""])
        if header in keep:
            table.add_column(header, no_wrap=True, min_width=natural)
            least += natural
        else:
            table.add_column(header, overflow="fold")
            least += min(natural, max(_WRAPPED_MIN, *(len(word) for word in header.split())))
    least += _GAP[terminal] * (len(headers) - 1)
    for row in cells:
        table.add_row(*row)
    widest = Measurement.get(console, console.options.update_width(1 << 20), table).maximum
    console.width = max(console.width, least) if terminal else widest
    console.print(table, crop=False)


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False)
