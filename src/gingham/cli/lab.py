"""``gingham lab``: several hosts on this machine, in network namespaces."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from gingham.cli.common import handle_errors, handle_verdict_errors
from gingham.names import DATASTORE_ENV

OUTPUT = click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
LAB = click.option("--name", "lab_name", default=None, help="Lab name (default: the current lab).")


@click.group("lab")
def lab_group() -> None:
    """Run a multi-host gingham on this machine (root; network namespaces)."""


@lab_group.command("up")
@click.option("--name", "lab_name", default="default", show_default=True)
@click.option("--hosts", default=3, show_default=True, type=click.IntRange(1, 200))
@click.option("--backend", type=click.Choice(["sqlite", "etcd"]), default=None,
              help="The lab's datastore: one sqlite file, or a 3-member etcd cluster.  "
                   "[default: sqlite]")
# Was the backend's flag, but clashes with the global --datastore URL: still read, noted.
@click.option("--datastore", "old_backend", type=click.Choice(["sqlite", "etcd"]), default=None,
              hidden=True)
@click.option("--subnets", default=1, show_default=True, type=click.IntRange(1, 3))
@click.option("--fanout/--no-fanout", default=None,
              help="Agents read the datastore through a fan-out server (gingham fanout serve) "
                   "[default: with more than 20 hosts].")  # fmt: skip
@click.option("--docker", is_flag=True,
              help="Also a Docker daemon on every host, with the gingham network and IPAM "
                   "plugin and the image busybox:gingham (see gingham lab docker).")  # fmt: skip
@click.option("--openstack", is_flag=True,
              help="Also PostgreSQL and a Neutron server on 127.0.0.1 with the gingham "
                   "mechanism driver (see gingham lab vm).")  # fmt: skip
@click.pass_context
@handle_errors
def up_cmd(
    ctx: click.Context, lab_name: str, hosts: int, backend: str | None, old_backend: str | None,
    subnets: int, fanout: bool | None, docker: bool, openstack: bool,
) -> None:
    """Create hosts, fabric, datastore and agents; wait until every agent is ready.
    """
    from rich.console import Console

    from gingham.cli.common import deprecated
    from gingham.lab import lab

    if old_backend is not None:
        deprecated(f"lab up --datastore {old_backend} is deprecated (--datastore is the global "
                   f"datastore URL); use --backend {old_backend}", ctx)
        if backend is not None and backend != old_backend:
            raise click.UsageError(f"--backend {backend} and --datastore {old_backend} disagree")
    datastore = backend or old_backend or "sqlite"
    from gingham.cli.common import root_options

    if root_options(ctx).get("datastore"):
        raise click.UsageError("a lab makes its own datastore: the global --datastore URL does "
                               "not apply to lab up (--backend sqlite|etcd picks its kind)")

    console = Console(stderr=True)
    with console.status("starting lab…") as status:
        state = lab.up(lab_name, hosts, datastore, subnets, progress=lambda m: status.update(m),
                       fanout=fanout, docker=docker, openstack=openstack)  # fmt: skip
    console.print(
        f"lab [bold]{state.name}[/] is up: {len(state.hosts)} hosts, datastore {state.datastore}"
        + (f", agents read through the fan-out server on {state.fanout}" if state.fanout else "")
        + (", a Docker daemon on every host (gingham lab docker HOST -- ...)" if docker else "")
        + (f", Neutron on {state.openstack_url} (gingham lab vm add NAME --port PORT_ID)"
           if openstack else "")
    )
    console.print(
        "try: gingham workload add default/web --host h1 --serve 80/tcp ; gingham lab status"
    )


@lab_group.command("down")
@click.option("--name", "lab_name", default=None)
@click.option("--all", "all_labs", is_flag=True, help="Every lab on this machine.")
@handle_errors
def down_cmd(lab_name: str | None, all_labs: bool) -> None:
    """Remove every namespace, process and file the lab made."""
    from gingham.lab import lab
    from gingham.lab import state as labstate

    names = (
        lab.all_labs() if all_labs else [labstate.current_name() if lab_name is None else lab_name]
    )
    for name in names:
        if name is None:
            click.echo("no lab is up")
            return
        lab.down(name)
        click.echo(f"lab {name} is down")


@lab_group.command("status")
@LAB
@OUTPUT
@handle_errors
def status_cmd(lab_name: str | None, output: str) -> None:
    """Hosts (agent, supervision, readiness, restarts), datastore and workloads."""
    from gingham.lab import fanout as labfanout
    from gingham.lab import lab
    from gingham.lab import openstack as labopenstack
    from gingham.lab import state as labstate

    st = labstate.load(labstate.resolve(lab_name))
    hosts = [lab.host_report(st.name, h, st) for h in st.hosts]
    fanout = labfanout.report(st)
    openstack = labopenstack.report(st)
    workloads: list[dict[str, Any]] = [
        {"namespace": w.namespace, "name": w.name, "host": w.host, "ips": w.ips,
         "labels": w.labels, "interface": w.interface}
        for w in sorted(st.workloads.values(), key=lambda w: w.ref)
    ]  # fmt: skip
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "name": st.name,
                    "datastore": st.datastore,
                    "fanout": fanout,
                    "openstack": openstack,
                    "hosts": hosts,
                    "workloads": workloads,
                },
                indent=2,
            )
        )
        return
    from gingham.cli.common import print_table

    click.echo(f"lab {st.name}, datastore {st.datastore}")
    if fanout is not None:
        click.echo(f"fan-out server on {fanout['socket']}: {fanout['state']}, pid "
                   f"{fanout['pid'] or '-'}, {fanout['restarts']} restart(s), last exit "
                   f"{_last_exit(fanout)}")  # fmt: skip
    if openstack is not None:
        click.echo(f"Neutron on {openstack['url']}: "
                   f"{'ready' if openstack['ready'] else 'NOT READY'}, pid "
                   f"{openstack['neutron_pid'] or '-'}; PostgreSQL pid "
                   f"{openstack['postgres_pid'] or '-'}")  # fmt: skip
    docker = [["DOCKER"], [_docker(h["docker"]) for h in hosts]] if st.docker else [[], []]
    print_table(
        ["HOST", "NETNS", "ADDRESS", "AGENT", "STATE", "READY", "RESTARTS", "LAST EXIT",
         *docker[0]],
        [
            [h["name"], h["netns"], h["address"], str(h["agent_pid"] or "-"), h["state"],
             "yes" if h["ready"] else "NO", str(h["restarts"]), _last_exit(h),
             *docker[1][i:i + 1]]
            for i, h in enumerate(hosts)
        ],
    )  # fmt: skip
    if workloads:
        print_table(
            ["WORKLOAD", "HOST", "IPS", "LABELS"],
            [
                [
                    f"{w['namespace']}/{w['name']}",
                    w["host"],
                    ",".join(w["ips"]),
                    ",".join(f"{k}={v}" for k, v in w["labels"].items()),
                ]
                for w in workloads
            ],
        )


def _docker(report: dict[str, Any] | None) -> str:
    """The DOCKER cell: the daemon, then the plugin (``dockerd 123 ready, plugin 456 running``)."""
    if report is None:
        return "-"
    if report["pid"]:
        daemon = f"dockerd {report['pid']} {'ready' if report['ready'] else 'NOT READY'}"
    else:
        daemon = "dockerd stopped"
    plugin = f"plugin {report['plugin_pid'] or '-'} {report['plugin_state']}"
    return f"{daemon}, {plugin}"


def _last_exit(host: dict[str, Any]) -> str:
    """``exit 1 at 2026-12-02T14:03:05Z``: how the supervised process last ended, and when."""
    if not host["last_exit"]:
        return "-"
    when = host["last_exit_at"]
    return f"{host['last_exit']} at {when[:19]}Z" if when else str(host["last_exit"])


@lab_group.command("env")
@LAB
@handle_errors
def env_cmd(lab_name: str | None) -> None:
    """Shell exports that point plain gingham commands at the lab."""
    from gingham.lab import state as labstate

    st = labstate.load(labstate.resolve(lab_name))
    click.echo(f"export {DATASTORE_ENV}='{st.datastore}'")


@lab_group.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("target")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@LAB
@handle_errors
def exec_cmd(target: str, command: tuple[str, ...], lab_name: str | None) -> None:
    """Run COMMAND in a workload (NS/NAME) or on a lab host (HOST)."""
    from gingham.lab import state as labstate
    from gingham.lab.netns import netns_path

    st = labstate.load(labstate.resolve(lab_name))
    netns = st.workload(target).netns if "/" in target else st.host(target).netns
    sys.stdout.flush()
    os.execvp("nsenter", ["nsenter", f"--net={netns_path(netns)}", "--", *command])


@lab_group.command("docker", context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED)
@LAB
@handle_errors
def docker_cmd(host: str, args: tuple[str, ...], lab_name: str | None) -> None:
    """Run the Docker CLI against HOST's daemon (lab up --docker): gingham lab docker h1 -- ps."""
    from gingham.lab import docker as labdocker
    from gingham.lab import state as labstate

    st = labstate.load(labstate.resolve(lab_name))
    argv = labdocker.cli_argv(st, host, args)
    sys.stdout.flush()
    os.execve(argv[0], argv, labdocker.cli_env())


@lab_group.group("vm")
def vm_group() -> None:
    """VMs on Neutron ports (lab up --openstack): what Nova would do."""


@vm_group.command("add")
@click.argument("name")
@click.option("--port", "port_id", required=True, help="The Neutron port's ID (bound to a host).")
@click.option("--serve", default="", help="PORT/PROTO[:NAME],… listeners (TCP accepts, UDP echoes)")
@LAB
@handle_errors
def vm_add_cmd(name: str, port_id: str, serve: str, lab_name: str | None) -> None:
    """Plug VM NAME into port PORT_ID on the port's host (binding:host_id): the lab
    workload vm/NAME; prints its addresses."""
    from gingham.lab import state as labstate
    from gingham.lab import vms, workloads

    wl = vms.add(labstate.resolve(lab_name), name, port_id, workloads.parse_serve(serve))
    click.echo(f"vm/{wl.name} on {wl.host} ({wl.interface}): {' '.join(wl.ips)}")


@vm_group.command("del")
@click.argument("name")
@LAB
@handle_errors
def vm_del_cmd(name: str, lab_name: str | None) -> None:
    """Unplug and remove VM NAME (its Neutron port stays)."""
    from gingham.lab import state as labstate
    from gingham.lab import vms

    vms.delete(labstate.resolve(lab_name), name)
    click.echo(f"vm/{name} deleted")


@lab_group.command("probe")
@click.argument("source")
@click.argument("destination")
@click.option("--port", required=True, type=click.IntRange(1, 65535))
@click.option("--protocol", type=click.Choice(["tcp", "udp"]), default="tcp")
@click.option("--timeout", default=1.0, type=click.FloatRange(0.05, 2.0), show_default=True)
@LAB
@handle_verdict_errors
def probe_cmd(
    source: str, destination: str, port: int, protocol: str, timeout: float, lab_name: str | None
) -> None:
    """Does SOURCE reach DESTINATION (workloads NS/NAME) on PORT? One real connection.

    \b
    Exit status:
      0  reachable
      1  blocked
      2  error: bad input, no such lab or workload, a workload without address, ...
    """
    from gingham.errors import LabError
    from gingham.lab import matrix
    from gingham.lab import state as labstate

    st = labstate.load(labstate.resolve(lab_name))
    src, dst = st.workload(source), st.workload(destination)
    for wl in (src, dst):
        if not wl.ips:
            raise LabError(f"workload {wl.ref} has no address to probe")
    try:
        ok = matrix.probe(src, dst, port, protocol, timeout)
    except OSError as exc:  # a workload's namespace gone under us, say
        raise LabError(f"cannot probe {source} -> {destination}: {exc}") from None
    click.echo(f"{source} -> {destination} {protocol}/{port}: {'reachable' if ok else 'blocked'}")
    sys.exit(0 if ok else 1)


@lab_group.command("matrix")
@click.option("--port", default=80, type=click.IntRange(1, 65535), show_default=True)
@click.option("--protocol", type=click.Choice(["tcp", "udp"]), default="tcp")
@click.option(
    "--explain", is_flag=True, help="Mark cells that disagree with `gingham policy explain`."
)
@LAB
@OUTPUT
@handle_errors
def matrix_cmd(port: int, protocol: str, explain: bool, lab_name: str | None, output: str) -> None:
    """Reachability among all workloads, probed in parallel."""
    from gingham.lab import matrix
    from gingham.lab import state as labstate

    st = labstate.load(labstate.resolve(lab_name))
    m = matrix.measure(st, port, protocol)
    marks: dict[tuple[str, str], str] = {}
    if explain:
        from gingham.policy.explain import explain_matrix

        expected = explain_matrix(st.datastore, list(m.names), port, protocol)
        marks = {(a, b): "!" for a in m.names for b in m.names if expected[a][b] != m.cells[a][b]}
    if output == "json":
        data: dict[str, object] = dict(m.to_json())
        if explain:
            data["disagreements"] = [f"{a} -> {b}" for a, b in sorted(marks)]
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(m.render(marks))


@lab_group.command("demo")
@handle_errors
def demo_cmd() -> None:
    """A 3-host lab, workloads in two namespaces, policy before and after."""
    from gingham.lab.demo import run_demo

    run_demo()
