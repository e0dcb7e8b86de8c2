"""``gingham workload``: workloads as bare network namespaces (VMs, scripts, the lab)."""

from __future__ import annotations

import json

import click

from gingham.cli.common import handle_errors, open_store, print_table


@click.group("workload")
def workload_group() -> None:
    """Add, relabel, list and delete workloads."""


@workload_group.command("add")
@click.argument("ref")
@click.option("--host", required=True, help="Lab host to attach the workload to.")
@click.option("--labels", default="", help="k=v,k2=v2")
@click.option("--serve", default="", help="PORT/PROTO[:NAME],… listeners (TCP accepts, UDP echoes)")
@click.option("--lab", "lab_name", default=None, help="Lab (default: the current one).")
@handle_errors
def add_cmd(ref: str, host: str, labels: str, serve: str, lab_name: str | None) -> None:
    """Create NS/NAME on HOST through the CNI plugin; prints its address."""
    from gingham.lab import state as labstate
    from gingham.lab import workloads

    sets, removes = workloads.parse_labels(labels)
    if removes:
        raise click.BadParameter("use k=v to set labels", param_hint="--labels")
    wl = workloads.add(labstate.resolve(lab_name), ref, host, sets, workloads.parse_serve(serve))
    click.echo(" ".join(wl.ips))


@workload_group.command("del")
@click.argument("ref")
@click.option("--lab", "lab_name", default=None)
@handle_errors
def del_cmd(ref: str, lab_name: str | None) -> None:
    """Detach and delete NS/NAME; its address is freed."""
    from gingham.lab import state as labstate
    from gingham.lab import workloads

    workloads.delete(labstate.resolve(lab_name), ref)
    click.echo(f"workload {ref} deleted")


@workload_group.command("label")
@click.argument("ref")
@click.argument("changes", nargs=-1, required=True)
@click.pass_context
@handle_errors
def label_cmd(ctx: click.Context, ref: str, changes: tuple[str, ...]) -> None:
    """Set (k=v) or remove (k-) labels of NS/NAME; the dataplane follows."""
    from gingham.lab import workloads

    sets, removes = workloads.parse_labels(list(changes))
    with open_store(ctx) as ds:
        labels = workloads.set_labels(ds, ref, sets, removes)
    click.echo(",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(no labels)")


@workload_group.command("list")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
@handle_errors
def list_cmd(ctx: click.Context, output: str) -> None:
    """Workloads known to the datastore."""
    from gingham.lab import workloads

    with open_store(ctx) as ds:
        items = workloads.list_endpoints(ds)
    if output == "json":
        click.echo(json.dumps(items, indent=2))
        return
    print_table(
        ["NAMESPACE", "NAME", "HOST", "IPS", "INTERFACE", "LABELS"],
        [[w["namespace"], w["name"], w["host"], ",".join(w["ips"]), w["interface"],
          ",".join(f"{k}={v}" for k, v in sorted(w["labels"].items()))] for w in items],
    )  # fmt: skip
