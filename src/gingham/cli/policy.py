"""``gingham policy explain|matrix|stats`` and ``gingham flows``: why a packet passes or not."""

from __future__ import annotations

import sys
from typing import Any

import click

from gingham.cli.common import (
    ShownWithShort,
    context_datastore_url,
    dump_json,
    handle_errors,
    handle_verdict_errors,
    print_table,
)

OUTPUT = click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
LAB = click.option("--lab", "lab_name", default=None,
                   help="Lab whose hosts to read (default: the current lab, else this host).")


@click.group("policy")
def policy_group() -> None:
    """Explain policy decisions and show per-rule packet counters."""


def _world() -> Any:
    from gingham.policy.world import load_world

    return load_world(context_datastore_url())


# ----------------------------------------------------------------- explain


@policy_group.command("explain")
@click.argument("source")
@click.argument("destination")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Destination port (required for tcp, udp, sctp).")
@click.option("--protocol", type=click.Choice(["tcp", "udp", "sctp", "icmp"]), default="tcp",
              show_default=True)
@click.option("--icmp-type", type=click.IntRange(0, 255), default=None)
@click.option("--icmp-code", type=click.IntRange(0, 255), default=None)
@click.option("--trace", is_flag=True, help="Show every tier, policy and rule that matched.")
@OUTPUT
@handle_verdict_errors
def explain_cmd(source: str, destination: str, port: int | None, protocol: str,
                icmp_type: int | None, icmp_code: int | None, trace: bool, output: str) -> None:
    """Would SOURCE reach DESTINATION? The verdict from the model, and why.

    Each is a workload NS/NAME or an IP address (outside gingham, only the
    workload side's policy applies).

    \b
    Exit status:
      0  the connection is allowed
      1  it is denied
      2  error: bad input, unknown workload, unreachable datastore, ...
    """
    from gingham.policy.explain import explain

    if protocol != "icmp" and port is None:
        raise click.UsageError(f"--port is required for {protocol}")
    verdict = explain(_world(), source, destination, port if protocol != "icmp" else None,
                      protocol, icmp_type=icmp_type, icmp_code=icmp_code)
    if output == "json":
        click.echo(dump_json(verdict.to_json()))
        sys.exit(0 if verdict.allowed else 1)
    what = f"{protocol}/{port}" if port is not None else protocol
    click.echo(f"{source} -> {destination} {what}: {'ALLOWED' if verdict.allowed else 'DENIED'}")
    for d, where in ((verdict.egress, source), (verdict.ingress, destination)):
        state = "allowed" if d.allowed else "denied"
        click.echo(f"  {d.direction} at {where}: {state}: {d.reason}")
        for rid in d.logged:
            click.echo(f"    logged by {rid}")
        if trace:
            for step in d.trace:
                parts = [p for p in (step.tier and f"tier {step.tier}", step.policy,
                                     None if step.rule_index is None else f"rule {step.rule_index}")
                         if p]  # fmt: skip
                note = f" ({step.note})" if step.note else ""
                click.echo(f"    - {' / '.join(parts)}: {step.action}{note}")
    sys.exit(0 if verdict.allowed else 1)


@policy_group.command("matrix")
@click.option("--port", default=80, type=click.IntRange(1, 65535), show_default=True)
@click.option("--protocol", type=click.Choice(["tcp", "udp", "sctp"]), default="tcp")
@click.option("--namespace", "-n", "namespaces", multiple=True,
              help="Only workloads of this namespace (repeatable).")
@OUTPUT
@handle_errors
def matrix_cmd(port: int, protocol: str, namespaces: tuple[str, ...], output: str) -> None:
    """Who may reach whom, according to the model (no packets sent)."""
    from gingham.policy.explain import matrix

    world = _world()
    names = [i.ref for i in world.workloads()
             if not namespaces or i.namespace in namespaces]
    cells = matrix(world, names, port, protocol)
    if output == "json":
        click.echo(dump_json({"port": port, "protocol": protocol, "matrix": cells}))
        return
    width = max((len(n) for n in names), default=4)
    click.echo(f"{protocol}/{port} by policy (rows: from, columns: to; . allowed, X denied)")
    click.echo(" " * (width + 1) + " ".join(n.rjust(width) for n in names))
    for a in names:
        row = " ".join(("." if cells[a][b] else "X").rjust(width) for b in names)
        click.echo(a.ljust(width) + " " + row)


# ----------------------------------------------------------------- stats


def _hosts(lab_name: str | None) -> list[tuple[str, str | None]]:
    """(host, netns) to read: the lab's hosts, or this machine."""
    from gingham.lab import state as labstate

    name = lab_name or labstate.current_name()
    if name is None:
        import socket

        return [(socket.gethostname(), None)]
    st = labstate.load(name)
    return [(h.name, h.netns) for h in st.hosts]


@policy_group.command("stats")
@LAB
@click.option("--all", "show_all", is_flag=True, help="Also rules that matched no packet.")
@OUTPUT
@handle_errors
def stats_cmd(lab_name: str | None, show_all: bool, output: str) -> None:
    """Packets matched by each rule, per host, read from the dataplane's counters."""
    from gingham.policy.stats import collect

    rows = collect(_hosts(lab_name), _world())
    if not show_all:
        rows = [r for r in rows if r.packets]
    if output == "json":
        click.echo(dump_json([r.to_json() for r in rows]))
        return
    print_table(
        ["HOST", "POLICY / PROFILE / DROP", "DIR", "RULE", "ACTION", "ENDPOINT", "PACKETS", "BYTES"],
        [[r.host, r.owner if r.kind in ("policy", "profile") else r.rule_id, r.direction or "",
          "" if r.index is None else r.index, r.action or "", r.endpoint or "", r.packets,
          r.bytes] for r in rows],
    )  # fmt: skip


# ----------------------------------------------------------------- flows


@click.command("flows")
@click.option("--namespace", "namespaces", multiple=True, metavar="NS", cls=ShownWithShort,
              short="-n", help="Only packets from or to a workload of namespace NS (repeatable).")
@click.option("-n", "short_n", multiple=True, hidden=True)  # see _namespaces_and_tail
@click.option("--tail", "last", type=click.IntRange(1), default=None, metavar="N",
              help="Show the last N packets (default 20).")
@click.option("--workload", default=None, help="Only packets from or to NS/NAME.")
@click.option("--policy", "policy_name", default=None,
              help="Only packets logged or dropped by this policy (name or tier/ns/name).")
@click.option("--denied", is_flag=True, help="Hide packets the model says are allowed.")
@click.option("--host", "host_names", multiple=True, metavar="HOST",
              help="Only packets logged on HOST (repeatable; in a lab, one of its hosts).")
@click.option("--since", type=click.FloatRange(0), default=None, metavar="SECONDS",
              help="Only packets of the last SECONDS (the kernel log outlives labs).")
@click.option("--follow", "-f", "--watch", "-w", "follow", is_flag=True,
              help="Trace new connections on every host and print each drop as it happens "
                   "(also the default deny at the end of a tier); Ctrl-C stops.")
@click.option("--duration", type=click.FloatRange(0.1), default=None,
              help="With --follow: stop after this many seconds.")
@LAB
@click.option("--enable-netns-logging", is_flag=True,
              help="Set net.netfilter.nf_log_all_netns=1 (machine-wide) so that log lines "
                   "from lab hosts and other namespaces reach the kernel log.")
@OUTPUT
@click.pass_context
@handle_errors
def flows_cmd(ctx: click.Context, namespaces: tuple[str, ...], short_n: tuple[str, ...],
              last: int | None, workload: str | None, policy_name: str | None, denied: bool,
              host_names: tuple[str, ...], since: float | None, follow: bool,
              duration: float | None, lab_name: str | None, enable_netns_logging: bool,
              output: str) -> None:
    """Logged and denied packets, with workload names and the host that saw them.

    Only gingham's own kernel log lines (its log prefix, written by the
    kernel, through a workload interface of the lab's hosts, or of this
    machine outside a lab), and what earlier --follow runs recorded in the lab
    (every drop, including a tier's default deny). Times are RFC 3339, UTC.
    """
    from gingham.policy import flows

    namespaces, last = _namespaces_and_tail(ctx, namespaces, short_n, last)
    if follow:
        hosts = _hosts(lab_name)
        chosen = _chosen_hosts(lab_name, host_names)
        if chosen:
            hosts = [h for h in hosts if h[0] in chosen]
        _follow(hosts, workload, policy_name, duration, output, lab_name, namespaces)
        return

    if enable_netns_logging:
        flows.enable_netns_logging()
    elif not flows.netns_logging_enabled():
        click.echo("warning: net.netfilter.nf_log_all_netns is 0: packets logged inside network "
                   "namespaces (lab hosts) are not in the kernel log; use "
                   "--enable-netns-logging", err=True)
    world = _world()
    scope = _scope(world, lab_name, host_names)
    recorded = flows.read_recorded(_recorded_path(lab_name)) if _recorded_path(lab_name) else []
    every = flows.merge(flows.read_flows(world, scope=scope), recorded)
    if since is not None:
        import time

        cutoff = time.time() - since
        every = [f for f in every if f.time is not None and f.time >= cutoff]
    selected = flows.select(every, workload, policy_name, last, denied, namespaces=namespaces,
                            hosts=_chosen_hosts(lab_name, host_names))
    if output == "json":
        click.echo(dump_json([f.to_json() for f in selected]))
        return
    from gingham.timestamps import rfc3339

    def end(name: str | None, addr: str, port: int | None) -> str:
        where = f"{name} ({addr})" if name else addr
        return f"{where}:{port}" if port is not None else where

    print_table(
        ["TIME", "HOST", "SOURCE", "DESTINATION", "PROTO", "LOGGED BY", "VERDICT", "WHY"],
        [["" if f.time is None else rfc3339(f.time), f.host or "",
          end(f.src_name, f.src, f.src_port), end(f.dst_name, f.dst, f.dst_port),
          f.protocol, f.rule_id, f.verdict or "?", f.reason or ""] for f in selected],
    )  # fmt: skip


DEFAULT_TAIL = 20


def _namespaces_and_tail(ctx: click.Context, namespaces: tuple[str, ...],
                         short_n: tuple[str, ...], last: int | None
                         ) -> tuple[tuple[str, ...], int]:
    """``-n`` is the namespace, as in every other command. It used to be the packet count
    (now --tail): a number after ``-n`` is still taken as the count, with a note, so an old
    script does not silently filter on a namespace called "50" (--namespace=50 means that)."""
    names = list(namespaces)
    for value in short_n:
        if value.isdigit():
            from gingham.cli.common import deprecated

            deprecated(f"flows -n {value} as a packet count is deprecated: -n is the "
                       f"namespace, as in every other command; use --tail {value}", ctx)
            if last is None:
                last = int(value) if int(value) >= 1 else DEFAULT_TAIL
        else:
            names.append(value)
    return tuple(names), DEFAULT_TAIL if last is None else last


def _lab_of(lab_name: str | None) -> Any:
    """The lab flows reads (the one named, else the current one), None outside a lab."""
    from gingham.lab import state as labstate

    name = lab_name or labstate.current_name()
    return None if name is None else labstate.load(name)


def _chosen_hosts(lab_name: str | None, host_names: tuple[str, ...]) -> set[str]:
    """--host values; in a lab each must be one of its hosts (the error lists them)."""
    st = _lab_of(lab_name) if host_names else None
    if st is not None:
        for name in host_names:
            st.host(name)
    return set(host_names)


def _scope(world: Any, lab_name: str | None, host_names: tuple[str, ...]) -> Any:
    """Which kernel log lines are ours: those of the lab's hosts since it started, or of the
    workload interfaces that exist on this machine."""
    from gingham.policy import flows

    st = _lab_of(lab_name)
    if st is None:
        return flows.Scope.of_machine(world, flows.local_interfaces())
    hosts = _chosen_hosts(lab_name, host_names) or {h.name for h in st.hosts}
    return flows.Scope.of_hosts(world, hosts, since=st.started_at or None)


def _flow_text(f: Any) -> str:
    def end(name: str | None, addr: str, port: int | None) -> str:
        where = f"{name} ({addr})" if name else addr
        return f"{where}:{port}" if port is not None else where

    return (f"{end(f.src_name, f.src, f.src_port)} -> {end(f.dst_name, f.dst, f.dst_port)} "
            f"{f.protocol} DROPPED by {f.rule_id}" + (f" ({f.direction})" if f.direction else "")
            + (f": {f.reason}" if f.reason else ""))


def _recorded_path(lab_name: str | None) -> Any:
    """Where ``--follow`` keeps what it saw, so that plain ``gingham flows`` shows it too:
    the lab's directory (None outside a lab)."""
    from gingham.lab import state as labstate

    name = lab_name or labstate.current_name()
    return None if name is None else labstate.lab_dir(name) / "flows.jsonl"


def _follow(hosts: list[tuple[str, str | None]], workload: str | None, policy_name: str | None,
            duration: float | None, output: str, lab_name: str | None = None,
            namespaces: tuple[str, ...] = ()) -> None:
    from dataclasses import replace

    from gingham.policy import flows
    from gingham.policy.trace import TraceSession
    from gingham.timestamps import rfc3339

    world = _world()
    keep = _recorded_path(lab_name)
    with TraceSession(hosts) as session:
        click.echo(f"tracing new connections on {', '.join(h for h, _ in hosts)}"
                   " (Ctrl-C stops)", err=True)
        try:
            for host, flow in session.flows(duration):
                f = replace(flows.annotate(flow, world), host=host)
                if keep is not None:
                    flows.record(keep, f)
                if not flows.select([f], workload, policy_name, namespaces=namespaces):
                    continue
                if output == "json":
                    import json

                    click.echo(json.dumps(f.to_json()))
                else:
                    stamp = "" if f.time is None else rfc3339(f.time) + " "
                    click.echo(f"{stamp}{host}: {_flow_text(f)}")
        except KeyboardInterrupt:
            pass
