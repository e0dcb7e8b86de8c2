"""``gingham apply|create|replace|delete|get|validate``: resources in the calicoctl manner.

Every file is read and validated in full before anything is written: a file
with one bad document (or, for create, one resource that already exists or
is named twice; for replace, one that does not exist; for apply or replace,
one whose metadata.resourceVersion is stale) writes nothing. Writes then go
one resource at a time, each a compare-and-swap; if one fails half-way the
writes already made are undone (each put back as it was, compare-and-swap on
the revision written, so nobody else's later write is overwritten). A
resource equal to what is stored is not written at all (counted as unchanged).

A stored value that does not decode or validate never fails a whole ``get``:
it is shown as stored, with a warning naming its key and the reason, and
``delete`` removes it like any other.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

import click

from gingham.cli import get_output
from gingham.cli.common import fail, handle_errors, open_store
from gingham.cli.dry_run import DRY_RUN_OPTION, DryRunCommand
from gingham.cli.manifest_io import (
    FILE_OPTION,
    load_files,
    load_files_with_origins,
    manifest_options,
    read_text,
)
from gingham.cli.refs import Ref, parse_targets, resolve_kind
from gingham.errors import GinghamError, NotFound, ValidationError

__all__ = ["FILE_OPTION", "load_files", "load_files_with_origins", "read_text"]

NAMESPACE_OPTION = click.option(
    "-n",
    "--namespace",
    default=None,
    help="Namespace for namespaced resources that name none (default: 'default').",
)
ALL_NAMESPACES_OPTION = click.option(
    "-A", "--all-namespaces", is_flag=True, help="Namespaced kinds: every namespace."
)
SELECTOR_OPTION = click.option(
    "-l",
    "--selector",
    default=None,
    help="Only resources whose labels match: kubectl's syntax (a=b,c!=d,e in (f,g),h,!i)"
    " or a Calico selector (a == 'b' && has(c)).",
)


def _summary(verb: str, outcomes: Sequence[tuple[Any, bool]], dry_run: bool = False) -> None:
    """calicoctl's ``Successfully <verb> N 'Kind' resource(s)``, unchanged ones counted apart.

    ``outcomes``: (resource, changed) in order.
    """
    counts: Counter[str] = Counter()
    unchanged: Counter[str] = Counter()
    for resource, changed in outcomes:
        counts[resource.kind] += 1
        if not changed:
            unchanged[resource.kind] += 1
    for kind, n in counts.items():
        extra = f" ({unchanged[kind]} unchanged)" if unchanged[kind] else ""
        extra += " (dry run)" if dry_run else ""
        click.echo(f"Successfully {verb} {n} '{kind}' resource(s){extra}")


def _write_all(
    ctx: click.Context,
    files: Sequence[str],
    recursive: bool,
    namespace: str | None,
    verb: str,
    dry_run: bool,
) -> None:
    """Write every resource or none: check all first, and undo what was written if a write fails.

    ``verb``: ``applied`` (create or overwrite), ``created`` (none may exist,
    and no two may name the same resource) or ``replaced`` (all must exist).
    """
    from gingham.datastore.resources import ResourceStore

    loaded = load_files_with_origins(files, namespace, recursive)
    resources = [r for _, r in loaded]
    with open_store(ctx, create=not dry_run) as ds:
        store = ResourceStore(ds, default_namespace=namespace or "default")

        def write(resource: Any, dry: bool) -> tuple[Any, Any, bool]:
            """(as stored, the key before or None, changed)"""
            if verb == "created":
                return store.create(resource, dry_run=dry), None, True
            outcome = (store.replace_tracked if verb == "replaced" else store.apply_tracked)(
                resource, dry_run=dry
            )
            return outcome.resource, outcome.before, outcome.changed

        problems: list[str] = []
        if verb == "created":
            first: dict[str, str] = {}
            for origin, resource in loaded:
                key = store.key_of(resource)
                if key in first:
                    problems.append(
                        f"{origin}: {store.name_of(resource)} is already named by {first[key]}"
                    )
                else:
                    first[key] = origin
        planned: list[tuple[Any, bool]] = []
        for resource in resources:
            # Existence, resourceVersion and namespace, checked as the write will be.
            try:
                planned.append((resource, write(resource, True)[2]))
            except GinghamError as exc:
                problems.append(str(exc))
        problems += _interface_problems(store, resources)
        if problems:
            for p in problems:
                click.echo(f"error: {p}", err=True)
            raise fail("nothing was written")
        if dry_run:
            _summary(verb, planned, dry_run=True)
            return
        # key -> (the key before our first write, the revision of our last write)
        written: dict[str, tuple[Any, int]] = {}
        done: list[tuple[Any, bool]] = []
        for resource in resources:
            key = store.key_of(resource)
            try:
                new, before, changed = write(resource, False)
            except GinghamError as exc:
                click.echo(f"error: {exc}", err=True)
                left = _undo(ds, written)
                if not written:
                    raise fail("nothing was written") from None
                if not left:
                    undone = f"the {len(written)} written were undone"
                    raise fail(f"nothing was written ({undone})") from None
                for line in left:
                    click.echo(f"error: {line}", err=True)
                raise fail(
                    f"{len(left)} of the {len(written)} written could not be undone (see above)"
                ) from None
            done.append((resource, changed))
            if changed:
                revision = int(new.metadata.resource_version or 0)
                written[key] = (written[key][0] if key in written else before, revision)
        _summary(verb, done)


def _interface_problems(store: Any, resources: Sequence[Any]) -> list[str]:
    """Workload endpoints whose interface their node's agent would refuse to program.

    The node's prefixes are those its agent will use: FelixConfiguration
    ``node.<node>``, else ``default``, each as written in this input or else as
    stored (an unreadable stored one counts as unset).
    """
    from gingham.errors import ValidationError
    from gingham.model.endpoints import interface_prefix_problem, parse_interface_prefixes

    weps = [r for r in resources if r.kind == "WorkloadEndpoint"]
    given = {r.metadata.name: r for r in resources if r.kind == "FelixConfiguration"}

    def prefix_of(config_name: str) -> str | None:
        config = given.get(config_name)
        if config is None:
            try:
                config = store.get("FelixConfiguration", config_name)
            except (NotFound, ValidationError):  # unreadable: as the agents, unset
                return None
        return config.spec.interface_prefix  # type: ignore[no-any-return]

    problems = []
    for wep in weps:
        node = wep.spec.node or ""
        prefix = prefix_of(f"node.{node}") or prefix_of("default")
        problem = interface_prefix_problem(wep.spec.interface_name or "",
                                           parse_interface_prefixes(prefix))
        if problem is not None:
            problems.append(f"{store.name_of(wep)}: spec.{problem}")
    return problems


def interface_check(store: Any) -> Any:
    """For ``ResourceStore.modify``: refuse the result as apply would (``_interface_problems``)."""

    def check(resource: Any) -> None:
        problems = _interface_problems(store, [resource])
        if problems:
            raise ValidationError("; ".join(problems))

    return check


def _undo(ds: Any, written: dict[str, tuple[Any, int]]) -> list[str]:
    """Put every key back as it was before this command; what could not be, as messages."""
    from gingham.datastore.base import Undecodable

    left: list[str] = []
    for key, (before, revision) in reversed(written.items()):
        try:
            if before is None:
                ds.delete(key, revision=revision)
            elif isinstance(before.value, Undecodable):
                # It held bytes that were not a document; put the same text back.
                current = ds.get(key)
                if current is None or current.mod_revision != revision:
                    raise GinghamError("changed by someone else since")
                ds.put_raw(key, before.value.raw.encode("utf-8", "surrogateescape"))
            else:
                ds.update(key, before.value, revision=revision)
        except GinghamError as exc:
            left.append(f"{key} stays as written: could not undo ({exc})")
    return left


@click.command("apply", cls=DryRunCommand)
@manifest_options
@NAMESPACE_OPTION
@DRY_RUN_OPTION
@click.pass_context
@handle_errors
def apply_cmd(
    ctx: click.Context,
    files: tuple[str, ...],
    recursive: bool,
    namespace: str | None,
    dry_run: bool,
) -> None:
    """Create resources, or overwrite them if they exist (honouring metadata.resourceVersion
    if given). Resources equal to what is stored are not written (counted as unchanged).
    """
    _write_all(ctx, files, recursive, namespace, "applied", dry_run)


@click.command("create", cls=DryRunCommand)
@manifest_options
@NAMESPACE_OPTION
@DRY_RUN_OPTION
@click.pass_context
@handle_errors
def create_cmd(
    ctx: click.Context,
    files: tuple[str, ...],
    recursive: bool,
    namespace: str | None,
    dry_run: bool,
) -> None:
    """Create resources; fails (writing nothing) if any already exists or is named twice.
    """
    _write_all(ctx, files, recursive, namespace, "created", dry_run)


@click.command("replace", cls=DryRunCommand)
@manifest_options
@NAMESPACE_OPTION
@DRY_RUN_OPTION
@click.pass_context
@handle_errors
def replace_cmd(
    ctx: click.Context,
    files: tuple[str, ...],
    recursive: bool,
    namespace: str | None,
    dry_run: bool,
) -> None:
    """Overwrite existing resources (honouring metadata.resourceVersion if given).
    """
    _write_all(ctx, files, recursive, namespace, "replaced", dry_run)


def _namespaces(namespace: str | None, all_namespaces: bool) -> str | None:
    """The namespace a listing reads (None: every one)."""
    if all_namespaces and namespace:
        raise fail("give -n NAMESPACE or -A, not both")
    return None if all_namespaces else (namespace or "default")


def _matcher(selector: str) -> Any:
    from gingham.cli.label_selector import parse_selector

    try:
        return parse_selector(selector)
    except ValidationError as exc:
        raise ValidationError(str(exc), location=f"-l {selector!r}") from None


def _selected(found: Sequence[Any], selector: str | None, verb: str) -> list[Any]:
    """``found`` narrowed to what ``selector`` matches; invalid stored values (their labels
    unknown) are left out with a warning."""
    from gingham.datastore.resources import InvalidStoredResource

    if selector is None:
        return list(found)
    match = _matcher(selector)
    kept = []
    for r in found:
        if isinstance(r, InvalidStoredResource):
            click.echo(
                f"warning: {get_output.printable(r.key)}: stored value is invalid; its labels"
                f" are unknown, so -l does not {verb} it",
                err=True,
            )
        elif match(r.metadata.labels):
            kept.append(r)
    return kept


@click.command("delete", cls=DryRunCommand)
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@manifest_options
@NAMESPACE_OPTION
@ALL_NAMESPACES_OPTION
@SELECTOR_OPTION
@click.option("--ignore-not-found", is_flag=True, help="A resource that does not exist is fine.")
@DRY_RUN_OPTION
@click.pass_context
@handle_errors
def delete_cmd(
    ctx: click.Context,
    kind: str | None,
    names: tuple[str, ...],
    files: tuple[str, ...],
    recursive: bool,
    namespace: str | None,
    all_namespaces: bool,
    selector: str | None,
    ignore_not_found: bool,
    dry_run: bool,
) -> None:
    """Delete resources named in files (-f), on the command line (KIND NAME..., or
    TYPE/NAME... as 'get -o name' prints them), or matching a label selector (KIND -l SEL).
    """
    from gingham.datastore.resources import ResourceStore

    if files and kind:
        raise fail("give either -f FILE or KIND NAME..., not both")
    if selector is not None:
        if files:
            raise fail("give -f FILE or KIND -l SELECTOR, not both")
        if not kind:
            raise fail("-l selects within one kind: give KIND -l SELECTOR")
        if names or "/" in kind:
            raise fail("give names or -l SELECTOR, not both")
    if not files and not kind:
        raise fail("give -f FILE, KIND NAME..., TYPE/NAME... or KIND -l SELECTOR")
    if selector is not None:
        listing_ns = _namespaces(namespace, all_namespaces)
        _delete_selected(ctx, resolve_kind(kind or ""), listing_ns, selector, dry_run)
        return
    targets: list[Ref] = []
    if files:
        from gingham.model import kind_info

        for r in load_files(files, namespace, recursive):
            targets.append(Ref(kind_info(r.kind, r.api_version), r.metadata.name, r.namespace))
    else:
        targets = parse_targets(kind, names, namespace)
        if not targets:
            raise fail(f"give at least one NAME after {kind}, or -l SELECTOR")
        if all_namespaces:
            _need_namespaces(targets)
    with open_store(ctx) as ds:
        store = ResourceStore(ds, default_namespace=namespace or "default")
        missing = [t for t in targets if ds.get(store.key(t.info, t.name, t.namespace)) is None]
        if missing and not ignore_not_found:
            from gingham.datastore.resources import describe

            for t in missing:
                ns = store.namespace_for(t.info, t.namespace)
                click.echo(f"error: {describe(t.info, t.name, ns)} not found", err=True)
            raise fail("nothing was deleted")
        deleted: list[tuple[Any, bool]] = []
        for t in targets:
            try:
                gone = store.delete(t.info, t.name, t.namespace, dry_run=dry_run)
            except NotFound:
                if not ignore_not_found:
                    _summary("deleted", deleted, dry_run)
                    raise
                continue
            _note_invalid(gone)
            deleted.append((gone, True))
        _summary("deleted", deleted, dry_run)


def _need_namespaces(targets: Sequence[Ref]) -> None:
    """With -A, every namespaced resource must say its namespace (TYPE/NAMESPACE/NAME)."""
    for t in targets:
        if t.info.namespaced and t.namespace is None:
            raise fail(
                f"-A with names: give {t.info.plural}/NAMESPACE/{t.name}, or -n NAMESPACE"
            )


def _note_invalid(gone: Any) -> None:
    from gingham.datastore.resources import InvalidStoredResource

    if isinstance(gone, InvalidStoredResource):
        click.echo(f"note: {gone.key} held an invalid value ({gone.reason})", err=True)


def _delete_selected(
    ctx: click.Context, info: Any, namespace: str | None, selector: str, dry_run: bool
) -> None:
    """Delete what ``selector`` matches; each delete re-checks the match on the value it
    removes (compare-and-swap), so a resource relabelled meanwhile stays."""
    from gingham.datastore.resources import InvalidStoredResource, ResourceStore

    match = _matcher(selector)
    with open_store(ctx) as ds:
        store = ResourceStore(ds, default_namespace=namespace or "default")
        chosen = _selected(store.list_any(info, namespace), selector, "delete")

        def still(found: Any) -> bool:
            return not isinstance(found, InvalidStoredResource) and bool(
                match(found.metadata.labels)
            )

        deleted: list[tuple[Any, bool]] = []
        for r in chosen:
            try:
                gone = store.delete(
                    info, r.metadata.name, r.namespace, dry_run=dry_run, only_if=still
                )
            except NotFound:
                continue  # deleted or relabelled since the listing: not ours to delete
            deleted.append((gone, True))
    if not deleted:
        click.echo("No resources found", err=True)
    _summary("deleted", deleted, dry_run)


# --- get -----------------------------------------------------------------------------


@click.command("get")
@click.argument("kind")
@click.argument("names", nargs=-1)
@NAMESPACE_OPTION
@ALL_NAMESPACES_OPTION
@SELECTOR_OPTION
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "wide", "yaml", "json", "name"], case_sensitive=False),
    default="table",
    show_default=True,
)
@click.pass_context
@handle_errors
def get_cmd(
    ctx: click.Context,
    kind: str,
    names: tuple[str, ...],
    namespace: str | None,
    all_namespaces: bool,
    selector: str | None,
    output: str,
) -> None:
    """Show resources of KIND (any case; plural and short names work: gnp, np, ippools), or
    those named TYPE/NAME... as 'get -o name' prints them. Lists come as a <Kind>List.
    """
    from gingham.datastore.resources import InvalidStoredResource, ResourceStore

    refs = parse_targets(kind, names, namespace)
    named = bool(names) or "/" in kind
    if selector is not None and named:
        raise fail("give names or -l SELECTOR, not both")
    if all_namespaces and namespace:
        raise fail("give -n NAMESPACE or -A, not both")
    if all_namespaces and named:
        if "/" not in kind:
            raise fail("-A lists a kind; give -n NAMESPACE to get resources by name")
        _need_namespaces(refs)
    missing: list[str] = []
    found: list[Any] = []
    revision: int | None = None
    with open_store(ctx) as ds:
        store = ResourceStore(ds, default_namespace=namespace or "default")
        if named:
            for ref in refs:
                try:
                    found.append(store.get_any(ref.info, ref.name, ref.namespace))
                except NotFound as exc:
                    missing.append(str(exc))
            if len(refs) > 1:
                revision = ds.revision()
            kinds = list(dict.fromkeys(ref.info for ref in refs))
        else:
            info = resolve_kind(kind)
            listed, revision = store.list_any_with_revision(
                info, _namespaces(namespace, all_namespaces)
            )
            found = _selected(listed, selector, "show")
            kinds = [info]
    invalid = [r for r in found if isinstance(r, InvalidStoredResource)]
    output = output.lower()
    if output == "yaml":
        if found or not named:
            get_output.as_yaml(found, kinds, revision)
    elif output == "json":
        if found or not named:
            get_output.as_json(found, kinds, revision)
    elif output == "name":
        get_output.names(found)
    elif found or not named:
        for index, info in enumerate(kinds):
            group = [r for r in found if get_output.info_of(r) == info]
            if named and not group:
                continue
            spaces = {r.namespace for r in group}
            with_ns = info.namespaced and (all_namespaces or len(spaces) > 1)
            if index:
                click.echo("")
            get_output.table(info, group, wide=output == "wide", with_namespace=with_ns)
    sys.stdout.flush()
    for bad in invalid:
        click.echo(
            f"warning: {get_output.printable(bad.key)}: stored value is invalid"
            f" ({get_output.printable(bad.reason)}); shown as stored. Fix it with apply/replace,"
            f" or remove it with gingham delete {bad.info.plural} {bad.name}"
            + (f" -n {bad.namespace}" if bad.namespace else ""),
            err=True,
        )
    if missing:
        for line in missing:
            click.echo(f"error: {line}", err=True)
        raise click.exceptions.Exit(1)


@click.command("validate")
@manifest_options
@click.pass_context
@handle_errors
def validate_cmd(ctx: click.Context, files: tuple[str, ...], recursive: bool) -> None:
    """Check manifests offline (no datastore): exit 0 if every document is valid.
    """
    resources = load_files(files, None, recursive)
    click.echo(f"{len(resources)} resource(s) valid")
