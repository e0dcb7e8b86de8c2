"""``gingham patch KIND NAME -p PATCH``: change part of a stored resource, as kubectl does.

The default is a JSON merge patch (RFC 7386: objects merge, ``null`` removes);
``--type json`` takes a JSON patch (RFC 6902: a list of operations). The patch
is JSON or YAML. The result is validated as ``apply`` validates (errors name
the field) and written by compare-and-swap at the revision it was made from;
a lost race reads again and patches again, a few times. A result equal to what
is stored is not written (``patched (no change)``).
"""

from __future__ import annotations

from typing import Any

import click

from gingham.cli.common import fail, handle_errors, open_store
from gingham.cli.dry_run import DRY_RUN_OPTION, DryRunCommand
from gingham.cli.manifest_io import read_text
from gingham.cli.refs import name_of, parse_targets
from gingham.cli.resources import NAMESPACE_OPTION, interface_check
from gingham.errors import ValidationError


def parse_patch(text: str, patch_type: str) -> Any:
    """The one JSON or YAML document of ``text``, of the shape ``patch_type`` needs."""
    from gingham.model import ManifestError, load_yaml_documents

    try:
        docs = load_yaml_documents(text)
    except ManifestError as exc:
        raise ValidationError(str(exc), location="--patch") from None
    if len(docs) != 1:
        raise ValidationError(
            f"expected one JSON or YAML document, got {len(docs)}", location="--patch"
        )
    [patch] = docs
    if patch_type == "merge" and not isinstance(patch, dict):
        raise ValidationError(
            "a merge patch is an object (like {\"spec\": {\"order\": 10}})", location="--patch"
        )
    if patch_type == "json" and not isinstance(patch, list):
        raise ValidationError(
            'a JSON patch is a list of operations (like [{"op": "replace", "path":'
            ' "/spec/order", "value": 10}])',
            location="--patch",
        )
    return patch


@click.command("patch", cls=DryRunCommand)
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-p", "--patch", "patch_text", default=None, help="The patch, as JSON or YAML.")
@click.option(
    "--patch-file",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="Read the patch from this file ('-': standard input).",
)
@click.option(
    "--type",
    "patch_type",
    type=click.Choice(["merge", "json"]),
    default="merge",
    show_default=True,
    help="merge: JSON merge patch (RFC 7386); json: JSON patch (RFC 6902).",
)
@NAMESPACE_OPTION
@DRY_RUN_OPTION
@click.pass_context
@handle_errors
def patch_cmd(
    ctx: click.Context,
    kind: str,
    name: str | None,
    patch_text: str | None,
    patch_file: str | None,
    patch_type: str,
    namespace: str | None,
    dry_run: bool,
) -> None:
    """Patch one resource: KIND NAME, or TYPE/NAME as 'get -o name' prints it.
    """
    from gingham.cli.patching import json_patch, merge_patch
    from gingham.datastore.resources import ResourceStore

    if (patch_text is None) == (patch_file is None):
        raise fail("give the patch with -p PATCH or --patch-file FILE (one of them)")
    targets = parse_targets(kind, (name,) if name else (), namespace)
    if len(targets) != 1:
        raise fail("patch takes one resource: KIND NAME, or TYPE/NAME")
    [target] = targets
    text = patch_text if patch_text is not None else read_text(patch_file or "-")
    patch = parse_patch(text, patch_type)

    def edit(doc: dict[str, Any]) -> Any:
        return merge_patch(doc, patch) if patch_type == "merge" else json_patch(doc, patch)

    with open_store(ctx) as ds:
        store = ResourceStore(ds, default_namespace=namespace or "default")
        outcome = store.modify(
            target.info, target.name, target.namespace, edit,
            check=interface_check(store), dry_run=dry_run,
        )  # fmt: skip
    shown = name_of(target.info, target.name, outcome.resource.namespace)
    suffix = "" if outcome.changed else " (no change)"
    click.echo(f"{shown} patched{suffix}" + (" (dry run)" if dry_run else ""))
