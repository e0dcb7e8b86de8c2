"""``gingham datastore init|info``: make a datastore on purpose, and say which one is in use.

Reads, agents and the CNI plugin never create a datastore (issue 12: a
mistyped path must not become an empty one). ``init`` is the explicit way,
besides ``apply`` and ``lab up``: it creates the sqlite file (0600, in a 0700
directory if it makes one) or, on etcd, just the cluster ID, and is
idempotent. ``info`` shows the URL (no password), the cluster ID and the
store revision.
"""

from __future__ import annotations

import click

from gingham.cli.common import context_datastore_url, dump_json, handle_errors, open_store


@click.group("datastore")
def datastore_group() -> None:
    """Create or inspect the datastore (--datastore, GINGHAM_DATASTORE or the lab's)."""


def _set_datastore(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj["datastore"] = value


# Also after the sub-command, as error messages spell it (gingham datastore init --datastore URL).
DATASTORE_OPTION = click.option(
    "--datastore",
    default=None,
    expose_value=False,
    callback=_set_datastore,
    help="The datastore URL (same as gingham --datastore URL ...).",
)


@datastore_group.command("init")
@DATASTORE_OPTION
@click.pass_context
@handle_errors
def init_cmd(ctx: click.Context) -> None:
    """Create the datastore and its cluster ID if missing; print the cluster ID."""
    from gingham.datastore import open_datastore
    from gingham.datastore.cluster import read_cluster_id
    from gingham.errors import NoDatastore

    url = context_datastore_url(ctx)
    try:
        with open_datastore(url) as ds:
            before = read_cluster_id(ds)
    except NoDatastore:
        before = None
    with open_store(ctx, create=True) as ds:
        from gingham.datastore.cluster import ensure_cluster_id

        cluster_id = ensure_cluster_id(ds)
        shown = ds.url
    if before is None:
        click.echo(f"initialised datastore {shown}", err=True)
    else:
        click.echo(f"datastore {shown} was already initialised", err=True)
    click.echo(cluster_id)


@datastore_group.command("info")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"], case_sensitive=False),
    default="text",
    show_default=True,
)
@DATASTORE_OPTION
@click.pass_context
@handle_errors
def info_cmd(ctx: click.Context, output: str) -> None:
    """Show the datastore's URL (without password), cluster ID and revision."""
    from gingham.datastore import keys
    from gingham.datastore.base import Undecodable
    from gingham.datastore.cluster import cluster_id_of

    with open_store(ctx) as ds:
        kv = ds.get(keys.CLUSTER)
        revision = ds.revision()
        url = ds.url
    cluster_id = None if kv is None else cluster_id_of(kv.value)
    problem = None
    if kv is None:
        problem = "no cluster ID: not initialised (gingham datastore init)"
    elif cluster_id is None:
        why = kv.value.reason if isinstance(kv.value, Undecodable) else "no clusterID field"
        problem = f"the cluster ID at {keys.CLUSTER} is malformed ({why})"
    if output.lower() == "json":
        doc = {"url": url, "clusterID": cluster_id, "revision": revision}
        if problem:
            doc["problem"] = problem
        click.echo(dump_json(doc))
    else:
        click.echo(f"URL:        {url}")
        click.echo(f"cluster ID: {cluster_id or '(none)'}")
        click.echo(f"revision:   {revision}")
    if problem:
        click.echo(f"warning: {problem}", err=True)


# `status` is what operators of other tools type first.
datastore_group.add_command(info_cmd, "status")
