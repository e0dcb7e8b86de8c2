"""``gingham apply|create|replace|delete|get|validate``: resources in the calicoctl manner.

Every file is read and validated in full before anything is written: a file
with one bad document (or, for create, one resource that already exists or
is named twice; for replace, one that does not exist) writes nothing. Writes
then go one resource at a time, each a compare-and-swap; if one fails half-way
the writes already made are undone (each put back as it was, compare-and-swap
on the revision written, so nobody else's later write is overwritten).

A stored value that does not decode or validate never fails a whole ``get``:
it is shown as stored, with a warning naming its key and the reason, and
``delete`` removes it like any other.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

import click

from gingham.cli.common import dump_json, fail, handle_errors, open_store, print_table
from gingham.errors import GinghamError, NotFound

FILE_OPTION = click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="YAML or JSON manifest file; '-' reads standard input. May be repeated.",
)
NAMESPACE_OPTION = click.option(
    "-n",
    "--namespace",
    default=None,
    help="Namespace for namespaced resources that name none (default: 'default').",
)


# --- reading manifests ---------------------------------------------------------------


def read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise fail(
            f"cannot read {path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def load_files(files: Sequence[str], namespace: str | None) -> list[Any]:
    """Every resource of every file, or exit 1 listing every problem (file: doc N: path: …)."""
    return [resource for _, resource in load_files_with_origins(files, namespace)]


def load_files_with_origins(files: Sequence[str], namespace: str | None) -> list[tuple[str, Any]]:
    """As ``load_files``, each resource with where it came from (``FILE: resource N``)."""
    from gingham.model import ManifestError, load_manifests

    if not files:
        raise fail("no input: give -f FILE (or -f - for standard input)")
    resources: list[tuple[str, Any]] = []
    problems: list[str] = []
    for path in files:
        name = "<stdin>" if path == "-" else path
        try:
            loaded = load_manifests(read_text(path))
        except ManifestError as exc:
            problems.extend(f"{name}: {p}" for p in exc.problems)
            continue
        if not loaded:
            problems.append(f"{name}: no resources found")
        for index, resource in enumerate(loaded):
            ns = resource.metadata.namespace
            if namespace and ns and ns != namespace and _namespaced(resource):
                problems.append(
                    f"{name}: resource {index + 1} ({resource.kind} {resource.metadata.name}):"
                    f" metadata.namespace: {ns!r} differs from --namespace {namespace!r}"
                )
            resources.append((f"{name}: resource {index + 1}", resource))
    if problems:
        for line in problems:
            click.echo(f"error: {line}", err=True)
        click.echo("error: nothing was written", err=True)
        raise click.exceptions.Exit(1)
    return resources


def _namespaced(resource: Any) -> bool:
    from gingham.model import kind_info

    return bool(kind_info(resource.kind, resource.api_version).namespaced)


def _summary(verb: str, resources: Sequence[Any]) -> None:
    counts = Counter(r.kind for r in resources)
    for kind, n in counts.items():
        click.echo(f"Successfully {verb} {n} '{kind}' resource(s)")


def _write_all(
    ctx: click.Context, files: Sequence[str], namespace: str | None, verb: str
) -> None:
    """Write every resource or none: check all first, and undo what was written if a write fails.

    ``verb``: ``applied`` (create or overwrite), ``created`` (none may exist,
    and no two may name the same resource) or ``replaced`` (all must exist).
    """
    from gingham.datastore.resources import ResourceStore

    loaded = load_files_with_origins(files, namespace)
    resources = [r for _, r in loaded]
    with open_store(ctx, create=True) as ds:
        store = ResourceStore(ds, default_namespace=namespace or "default")
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
            problems += [
                f"{store.name_of(r)} already exists" for r in resources if store.exists(r)
            ]
        elif verb == "replaced":
            problems += [f"{store.name_of(r)} not found" for r in resources if not store.exists(r)]
        problems += _interface_problems(store, resources)
        if problems:
            for p in problems:
                click.echo(f"error: {p}", err=True)
            raise fail("nothing was written")
        # key -> (the key before our first write, the revision of our last write)
        written: dict[str, tuple[Any, int]] = {}
        for resource in resources:
            key = store.key_of(resource)
            try:
                if verb == "created":
                    new, before = store.create(resource), None
                elif verb == "replaced":
                    new, before = store.replace_tracked(resource)
                else:
                    new, before = store.apply_tracked(resource)
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
            revision = int(new.metadata.resource_version or 0)
            written[key] = (written[key][0] if key in written else before, revision)
        _summary(verb, resources)


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


@click.command("apply")
@FILE_OPTION
@NAMESPACE_OPTION
@click.pass_context
@handle_errors
def apply_cmd(ctx: click.Context, files: tuple[str, ...], namespace: str | None) -> None:
    """Create resources, or overwrite them if they exist."""
    _write_all(ctx, files, namespace, "applied")


@click.command("create")
@FILE_OPTION
@NAMESPACE_OPTION
@click.pass_context
@handle_errors
def create_cmd(ctx: click.Context, files: tuple[str, ...], namespace: str | None) -> None:
    """Create resources; fails (writing nothing) if any already exists or is named twice."""
    _write_all(ctx, files, namespace, "created")


@click.command("replace")
@FILE_OPTION
@NAMESPACE_OPTION
@click.pass_context
@handle_errors
def replace_cmd(ctx: click.Context, files: tuple[str, ...], namespace: str | None) -> None:
    """Overwrite existing resources (honouring metadata.resourceVersion if given)."""
    _write_all(ctx, files, namespace, "replaced")


@click.command("delete")
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@FILE_OPTION
@NAMESPACE_OPTION
@click.option("--ignore-not-found", is_flag=True, help="A resource that does not exist is fine.")
@click.pass_context
@handle_errors
def delete_cmd(
    ctx: click.Context,
    kind: str | None,
    names: tuple[str, ...],
    files: tuple[str, ...],
    namespace: str | None,
    ignore_not_found: bool,
) -> None:
    """Delete resources named in files (-f) or on the command line (KIND NAME...)."""
    from gingham.datastore.resources import InvalidStoredResource, ResourceStore, describe

    if files and kind:
        raise fail("give either -f FILE or KIND NAME..., not both")
    if not files and not (kind and names):
        raise fail("give -f FILE, or KIND and at least one NAME")
    targets: list[tuple[Any, str, str | None]] = []
    if files:
        from gingham.model import kind_info

        for r in load_files(files, namespace):
            targets.append((kind_info(r.kind, r.api_version), r.metadata.name, r.namespace))
    else:
        info = ResourceStore.info(kind or "")
        targets.extend((info, name, namespace) for name in names)
    with open_store(ctx) as ds:
        store = ResourceStore(ds, default_namespace=namespace or "default")
        missing = [t for t in targets if ds.get(store.key(*t)) is None]
        if missing and not ignore_not_found:
            for info, name, ns in missing:
                click.echo(
                    f"error: {describe(info, name, store.namespace_for(info, ns))} not found",
                    err=True,
                )
            raise fail("nothing was deleted")
        deleted: list[Any] = []
        for info, name, ns in targets:
            try:
                gone = store.delete(info, name, ns)
            except NotFound:
                if not ignore_not_found:
                    _summary("deleted", deleted)
                    raise
                continue
            if isinstance(gone, InvalidStoredResource):
                click.echo(f"note: {gone.key} held an invalid value ({gone.reason})", err=True)
            deleted.append(gone)
        _summary("deleted", deleted)


# --- get -----------------------------------------------------------------------------

# Extra columns per kind: (header, dotted path in the manifest dict). The first
# list is always shown, the second only with -o wide.
_COLUMNS: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "GlobalNetworkPolicy": (
        [("TIER", "spec.tier"), ("ORDER", "spec.order")],
        [("SELECTOR", "spec.selector"), ("TYPES", "spec.types")],
    ),
    "NetworkPolicy": (
        [("TIER", "spec.tier"), ("ORDER", "spec.order")],
        [("SELECTOR", "spec.selector"), ("TYPES", "spec.types")],
    ),
    "KubernetesNetworkPolicy": (
        [("POD-SELECTOR", "spec.podSelector")],
        [("TYPES", "spec.policyTypes")],
    ),
    "Tier": ([("ORDER", "spec.order")], [("DEFAULT-ACTION", "spec.defaultAction")]),
    "IPPool": (
        [("CIDR", "spec.cidr"), ("SELECTOR", "spec.nodeSelector")],
        [
            ("BLOCK", "spec.blockSize"),
            ("VXLAN", "spec.vxlanMode"),
            ("NAT", "spec.natOutgoing"),
            ("DISABLED", "spec.disabled"),
        ],
    ),
    "IPReservation": ([("CIDRS", "spec.reservedCIDRs")], []),
    "WorkloadEndpoint": (
        [("NODE", "spec.node"), ("NETWORKS", "spec.ipNetworks")],
        [("INTERFACE", "spec.interfaceName"), ("PROFILES", "spec.profiles")],
    ),
    "HostEndpoint": (
        [("NODE", "spec.node"), ("INTERFACE", "spec.interfaceName")],
        [("IPS", "spec.expectedIPs"), ("PROFILES", "spec.profiles")],
    ),
    "BGPPeer": (
        [("PEERIP", "spec.peerIP"), ("NODE", "spec.node"), ("ASN", "spec.asNumber")],
        [("SELECTOR", "spec.peerSelector")],
    ),
    "BGPConfiguration": (
        [("LOGSEVERITY", "spec.logSeverityScreen"), ("MESHENABLED", "spec.nodeToNodeMeshEnabled")],
        [("ASNUMBER", "spec.asNumber")],
    ),
    "GlobalNetworkSet": ([], [("NETS", "spec.nets")]),
    "NetworkSet": ([], [("NETS", "spec.nets")]),
    "Node": ([], [("ADDRESSES", "spec.addresses")]),
}


def _lookup(resource: Any, path: str) -> Any:
    """The value at a camelCase path, read from the typed resource so defaults show."""
    from pydantic import BaseModel

    value: Any = resource
    for part in path.split("."):
        value = getattr(value, _snake(part), None)
        if value is None:
            return None
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)
    return value


def _snake(name: str) -> str:
    """``nodeSelector`` -> ``node_selector``, ``peerIP`` -> ``peer_ip``, ``reservedCIDRs`` ->
    ``reserved_cidrs``: the model's attribute for a manifest field."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return ",".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={_cell(v)}" for k, v in value.items()) or "{}"
    return str(value)


def _table(info: Any, resources: Sequence[Any], wide: bool, with_namespace: bool) -> None:
    basic, more = _COLUMNS.get(info.name, ([], []))
    columns = basic + (more if wide else [])
    headers = (["NAMESPACE"] if with_namespace else []) + ["NAME"] + [h for h, _ in columns]
    if wide:
        headers.append("LABELS")
    rows = []
    for r in resources:
        row = ([r.namespace or ""] if with_namespace else []) + [r.metadata.name]
        row += [_cell(_lookup(r, path)) for _, path in columns]
        if wide:
            row.append(_cell(r.metadata.labels) if r.metadata.labels else "")
        rows.append(row)
    print_table(headers, rows)


def _printable(text: str) -> str:
    """Stored text fit for a terminal: control characters (escape sequences!) as escapes."""
    return "".join(
        c if c.isprintable() or c in "\n\t" else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


@click.command("get")
@click.argument("kind")
@click.argument("names", nargs=-1)
@NAMESPACE_OPTION
@click.option("-A", "--all-namespaces", is_flag=True, help="Namespaced kinds: every namespace.")
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
    output: str,
) -> None:
    """Show resources of KIND (any case; plural and short names work: gnp, np, ippools)."""
    from gingham.datastore.resources import InvalidStoredResource, ResourceStore
    from gingham.model import dump_yaml, to_dict

    info = ResourceStore.info(kind)
    if all_namespaces and namespace:
        raise fail("give -n NAMESPACE or -A, not both")
    if all_namespaces and names:
        raise fail("-A lists a kind; give -n NAMESPACE to get resources by name")
    with open_store(ctx) as ds:
        store = ResourceStore(ds, default_namespace=namespace or "default")
        missing: list[str] = []
        found: list[Any] = []
        if names:
            for name in names:
                try:
                    found.append(store.get_any(info, name, namespace))
                except NotFound as exc:
                    missing.append(str(exc))
        else:
            ns = None if all_namespaces else (namespace or "default")
            found = store.list_any(info, ns)
    resources = [r for r in found if not isinstance(r, InvalidStoredResource)]
    invalid = [r for r in found if isinstance(r, InvalidStoredResource)]
    output = output.lower()
    if output == "yaml":
        if resources:
            click.echo(dump_yaml(resources), nl=False)
        for bad in invalid:
            # As comments: the output still loads (and applies) as YAML.
            click.echo(f"# {bad.key}: invalid, shown as stored ({bad.reason}):")
            lines = _printable(bad.raw).splitlines() or [""]
            click.echo("\n".join(f"#   {line}" for line in lines))
    elif output == "json":
        if len(names) == 1 and len(found) == 1:
            if resources:
                click.echo(dump_json(to_dict(resources[0])))
            else:
                bad = invalid[0]
                click.echo(dump_json({"key": bad.key, "reason": bad.reason, "raw": bad.raw}))
        elif found or not names:
            doc: dict[str, Any] = {"kind": "List", "items": [to_dict(r) for r in resources]}
            if invalid:
                doc["invalid"] = [
                    {"key": b.key, "reason": b.reason, "raw": b.raw} for b in invalid
                ]
            click.echo(dump_json(doc))
    elif output == "name":
        for r in found:
            prefix = f"{r.namespace}/" if r.namespace else ""
            name = r.name if isinstance(r, InvalidStoredResource) else r.metadata.name
            click.echo(f"{info.plural}/{prefix}{name}")
    elif found or not names:
        with_ns = info.namespaced and all_namespaces
        _table(info, resources, wide=output == "wide", with_namespace=with_ns)
        for bad in invalid:
            click.echo(f"\n{bad.key} (invalid, shown as stored):")
            click.echo(_printable(bad.raw))
    sys.stdout.flush()
    for bad in invalid:
        click.echo(
            f"warning: {_printable(bad.key)}: stored value is invalid ({_printable(bad.reason)});"
            f" shown as stored. Fix it with apply/replace, or remove it with"
            f" gingham delete {info.plural} {bad.name}"
            + (f" -n {bad.namespace}" if bad.namespace else ""),
            err=True,
        )
    if missing:
        for line in missing:
            click.echo(f"error: {line}", err=True)
        raise click.exceptions.Exit(1)


@click.command("validate")
@FILE_OPTION
@click.pass_context
@handle_errors
def validate_cmd(ctx: click.Context, files: tuple[str, ...]) -> None:
    """Check manifests offline (no datastore): exit 0 if every document is valid."""
    resources = load_files(files, None)
    click.echo(f"{len(resources)} resource(s) valid")
