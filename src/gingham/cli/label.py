"""``gingham label KIND NAME key=value... key-...``: a resource's labels, as kubectl sets them.

``key=value`` adds a label; changing the value of one the resource already has
needs ``--overwrite`` (else an error naming the key, and nothing is written);
``key-`` removes one (removing one that is not there is fine). Keys and values
follow the model's label rules. Every resource named is checked before any is
written; each write is a compare-and-swap on the value read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from gingham.cli.common import fail, handle_errors, open_store
from gingham.cli.dry_run import DRY_RUN_OPTION, DryRunCommand
from gingham.cli.refs import Ref, is_ref, name_of, parse_targets
from gingham.cli.resources import NAMESPACE_OPTION, interface_check
from gingham.errors import GinghamError, ValidationError


def is_label_argument(arg: str) -> bool:
    """``k=v`` or ``k-``; a resource name never has ``=`` nor ends with ``-``."""
    return "=" in arg or arg.endswith("-")


def parse_label_changes(args: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """(labels to set, keys to remove); ValidationError naming the argument if one is bad."""
    from gingham.model.meta import label_key_problem, label_value_problem

    sets: dict[str, str] = {}
    removes: list[str] = []
    for arg in args:
        if "=" in arg:
            key, _, value = arg.partition("=")
        else:
            key, value = arg[:-1], None
        problem = label_key_problem(key) or (
            label_value_problem(value) if value is not None else None
        )
        if problem:
            raise ValidationError(problem, location=repr(arg))
        if value is None:
            if key in sets:
                raise ValidationError(f"{key!r} is both set and removed", location=repr(arg))
            removes.append(key)
        else:
            if key in removes or sets.get(key, value) != value:
                raise ValidationError(f"{key!r} is given twice", location=repr(arg))
            sets[key] = value
    return sets, removes


def relabel(
    doc: dict[str, Any], sets: dict[str, str], removes: Sequence[str], overwrite: bool, what: str
) -> dict[str, Any]:
    """``doc`` with its labels changed; untouched (not even ``labels: {}`` added) if the
    labels come out the same."""
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        raise ValidationError("stored metadata is not a mapping", location=what)
    old = meta.get("labels") or {}
    if not isinstance(old, dict):
        raise ValidationError("stored metadata.labels is not a mapping", location=what)
    new = dict(old)
    for key, value in sets.items():
        if key in new and new[key] != value and not overwrite:
            raise ValidationError(
                f"{key!r} already has a value ({new[key]}), and --overwrite is false",
                location=what,
            )
        new[key] = value
    for key in removes:
        new.pop(key, None)
    if new == old:
        return doc
    if new:
        meta["labels"] = new
    else:
        meta.pop("labels", None)
    return doc


@click.command("label", cls=DryRunCommand)
@click.argument("args", nargs=-1, required=True)
@click.option("--overwrite", is_flag=True, help="Allow changing the value of existing labels.")
@NAMESPACE_OPTION
@DRY_RUN_OPTION
@click.pass_context
@handle_errors
def label_cmd(
    ctx: click.Context,
    args: tuple[str, ...],
    overwrite: bool,
    namespace: str | None,
    dry_run: bool,
) -> None:
    """Set (key=value) or remove (key-) labels of resources: KIND NAME... or TYPE/NAME...
    """
    from gingham.datastore.resources import ResourceStore, describe

    names = [a for a in args if not is_label_argument(a)]
    changes = [a for a in args if is_label_argument(a)]
    if not names or not changes:
        raise fail("give KIND NAME... (or TYPE/NAME...) and at least one key=value or key-")
    if not is_ref(names[0]) and len(names) < 2:
        raise fail(f"give a NAME after {names[0]}, or TYPE/NAME")
    targets: list[Ref] = parse_targets(names[0], names[1:], namespace)
    sets, removes = parse_label_changes(changes)
    with open_store(ctx) as ds:
        store = ResourceStore(ds, default_namespace=namespace or "default")

        def run(target: Ref, dry: bool) -> Any:
            ns = store.namespace_for(target.info, target.namespace)
            what = describe(target.info, target.name, ns)
            return store.modify(
                target.info, target.name, target.namespace,
                lambda doc: relabel(doc, sets, removes, overwrite, what),
                check=interface_check(store), dry_run=dry,
            )  # fmt: skip

        # Every resource checked first: one that refuses means none is written.
        problems = []
        for target in targets:
            try:
                run(target, True)
            except GinghamError as exc:
                problems.append(str(exc))
        if problems:
            for line in problems:
                click.echo(f"error: {line}", err=True)
            raise fail("nothing was written")
        for target in targets:
            outcome = run(target, dry_run)
            shown = name_of(target.info, target.name, outcome.resource.namespace)
            verdict = "labeled" if outcome.changed else "not labeled"
            click.echo(f"{shown} {verdict}" + (" (dry run)" if dry_run else ""))
