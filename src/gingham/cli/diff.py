"""``gingham diff -f FILE``: what ``apply`` would change, as a unified diff per resource.

Each side is the value as stored (YAML): left what the datastore holds now,
right what an apply of the file would store there. No output means ``apply``
would count every resource unchanged. Exit status as kubectl's: 0 no
differences, 1 differences, 2 an error (bad file, unreachable datastore,
stale resourceVersion: whatever ``apply`` would refuse).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import click

from gingham.cli.common import open_store
from gingham.cli.get_output import dump_document
from gingham.cli.manifest_io import load_files, manifest_options
from gingham.cli.refs import name_of
from gingham.cli.resources import NAMESPACE_OPTION, interface_check
from gingham.errors import GinghamError

DIFFERENT = 1
TROUBLE = 2


def _stored_text(kv: Any) -> str:
    from gingham.datastore.base import Undecodable

    if kv is None:
        return ""
    if isinstance(kv.value, Undecodable):
        return kv.value.raw if kv.value.raw.endswith("\n") else kv.value.raw + "\n"
    return _yaml(kv.value)


def _yaml(doc: Any) -> str:
    # Keys sorted on both sides (as kubectl prints them): the stored JSON and a fresh
    # manifest order keys differently, and only the values should show as changes.
    return dump_document(doc, sort_keys=True, explicit_start=False)


@click.command("diff")
@manifest_options
@NAMESPACE_OPTION
@click.pass_context
def diff_cmd(
    ctx: click.Context, files: tuple[str, ...], recursive: bool, namespace: str | None
) -> None:
    """Show how applying the files would change what is stored (exit 0 same, 1 differs,
    2 error).
    """
    # 1 means "differences", so no failure may exit 1.
    try:
        differs = _diff(ctx, files, recursive, namespace)
    except GinghamError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(TROUBLE) from None
    except click.exceptions.Exit as exc:
        if exc.exit_code:
            raise click.exceptions.Exit(TROUBLE) from None
        raise
    if differs:
        raise click.exceptions.Exit(DIFFERENT)


def _diff(
    ctx: click.Context, files: Sequence[str], recursive: bool, namespace: str | None
) -> bool:
    """Print the diff of every resource that would change; whether there was one."""
    from gingham.datastore.resources import ResourceStore

    resources = load_files(files, namespace, recursive)
    differs = False
    with open_store(ctx) as ds:
        store = ResourceStore(ds, default_namespace=namespace or "default")
        check = interface_check(store)
        for resource in resources:
            # Whatever apply would refuse (stale resourceVersion, ...) is an error here too,
            # and what apply would count unchanged is no difference.
            check(resource)
            if not store.apply_tracked(resource, dry_run=True).changed:
                continue
            kv, body = store.planned(resource)
            before, after = _stored_text(kv), _yaml(body)
            differs = True
            info = store.info_of(resource)
            shown = name_of(info, resource.metadata.name,
                            store.namespace_for(info, resource.metadata.namespace))
            lines = difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=f"stored/{shown}" if kv is not None else "/dev/null",
                tofile=f"applied/{shown}",
            )
            click.echo("".join(lines), nl=False)
    return differs
