"""``gingham apply|create|replace|delete|get|validate``: resources in the calicoctl manner.

Every file is read and validated in full before anything is written: a file
with one bad document (or, for create/replace, one resource that already
exists / does not exist) writes nothing. Writes then go one resource at a
time, each a compare-and-swap; if the datastore fails half-way the message
says how many were written.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
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
    from gingham.model import ManifestError, load_manifests

    if not files:
        raise fail("no input: give -f FILE (or -f - for standard input)")
    resources: list[Any] = []
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
        resources.extend(loaded)
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
    ctx: click.Context,
    files: Sequence[str],
    namespace: str | None,
    verb: str,
    op: Callable[[Any, Any], Any],
    precheck: Callable[[Any, Any], str | None] | None = None,
) -> None:
    from gingham.datastore.resources import ResourceStore

    resources = load_files(files, namespace)
    with open_store(ctx, create=True) as ds:
        store = ResourceStore(ds, default_namespace=namespace or "default")
        if precheck is not None:
            problems = [p for p in (precheck(store, r) for r in resources) if p]
            if problems:
                for p in problems:
                    click.echo(f"error: {p}", err=True)
                raise fail("nothing was written")
        done: list[Any] = []
        for resource in resources:
            try:
                op(store, resource)
            except GinghamError as exc:
                _summary(verb, done)
                written = f"{len(done)} of {len(resources)} written" if done else "nothing written"
                raise fail(f"{exc} ({written})") from None
            done.append(resource)
        _summary(verb, done)


@click.command("apply")
@FILE_OPTION
@NAMESPACE_OPTION
@click.pass_context
@handle_errors
def apply_cmd(ctx: click.Context, files: tuple[str, ...], namespace: str | None) -> None:
    """Create resources, or overwrite them if they exist."""
    _write_all(ctx, files, namespace, "applied", lambda s, r: s.apply(r))


def _must_not_exist(store: Any, resource: Any) -> str | None:
    return f"{store.name_of(resource)} already exists" if store.exists(resource) else None


def _must_exist(store: Any, resource: Any) -> str | None:
    return None if store.exists(resource) else f"{store.name_of(resource)} not found"


@click.command("create")
@FILE_OPTION
@NAMESPACE_OPTION
@click.pass_context
@handle_errors
def create_cmd(ctx: click.Context, files: tuple[str, ...], namespace: str | None) -> None:
    """Create resources; fails (writing nothing) if any already exists."""
    _write_all(ctx, files, namespace, "created", lambda s, r: s.create(r), _must_not_exist)


@click.command("replace")
@FILE_OPTION
@NAMESPACE_OPTION
@click.pass_context
@handle_errors
def replace_cmd(ctx: click.Context, files: tuple[str, ...], namespace: str | None) -> None:
    """Overwrite existing resources (honouring metadata.resourceVersion if given)."""
    _write_all(ctx, files, namespace, "replaced", lambda s, r: s.replace(r), _must_exist)


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
    from gingham.datastore.resources import ResourceStore, describe

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
                deleted.append(store.delete(info, name, ns))
            except NotFound:
                if not ignore_not_found:
                    _summary("deleted", deleted)
                    raise
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
    from gingham.datastore.resources import ResourceStore
    from gingham.model import dump_yaml, to_dict

    info = ResourceStore.info(kind)
    if all_namespaces and namespace:
        raise fail("give -n NAMESPACE or -A, not both")
    if all_namespaces and names:
        raise fail("-A lists a kind; give -n NAMESPACE to get resources by name")
    with open_store(ctx) as ds:
        store = ResourceStore(ds, default_namespace=namespace or "default")
        missing: list[str] = []
        if names:
            resources = []
            for name in names:
                try:
                    resources.append(store.get(info, name, namespace))
                except NotFound as exc:
                    missing.append(str(exc))
        else:
            ns = None if all_namespaces else (namespace or "default")
            resources = store.list(info, ns)
    output = output.lower()
    if output == "yaml":
        if resources:
            click.echo(dump_yaml(resources), nl=False)
    elif output == "json":
        if len(names) == 1 and len(resources) == 1:
            click.echo(dump_json(to_dict(resources[0])))
        elif resources or not names:
            click.echo(dump_json({"kind": "List", "items": [to_dict(r) for r in resources]}))
    elif output == "name":
        for r in resources:
            prefix = f"{r.namespace}/" if r.namespace else ""
            click.echo(f"{info.plural}/{prefix}{r.metadata.name}")
    elif resources or not names:
        with_ns = info.namespaced and all_namespaces
        _table(info, resources, wide=output == "wide", with_namespace=with_ns)
    if missing:
        sys.stdout.flush()
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
