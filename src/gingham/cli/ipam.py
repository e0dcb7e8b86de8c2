"""``gingham ipam``: pool usage, blocks, who holds an address, leak check, release.

    gingham ipam show [-o json] [--show-blocks] [--ip ADDR]
    gingham ipam check [--report FILE] [--grace SECONDS] [-o json]
    gingham ipam release --ip ADDR [--sequence N] | --handle H | --from-report FILE
    gingham ipam assign --ip ADDR --handle H --host HOST [--namespace NS --workload W]
    gingham ipam configure [--host H] [--strict-affinity/--no-strict-affinity]
                           [--max-blocks-per-host N]

IPAM documents that cannot be read are left out of what ``show`` counts and
listed as warnings (``unreadable`` in JSON); ``check`` reports them as problems.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from gingham.cli.common import dump_json, fail, handle_errors, open_store, print_table
from gingham.errors import GinghamError, ValidationError

OUTPUT = click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
                      show_default=True)


@contextlib.contextmanager
def _reported_here() -> Iterator[None]:
    """Silence IPAM's own log lines about unreadable documents while a command lists
    them itself (without a handler, Python would print each one a second time)."""
    logger = logging.getLogger("gingham.ipam")
    quiet = logging.NullHandler()
    logger.addHandler(quiet)
    try:
        yield
    finally:
        logger.removeHandler(quiet)


def _with_notes(exc: GinghamError) -> str:
    return "; ".join([str(exc), *getattr(exc, "__notes__", [])])


@click.group("ipam")
def ipam_group() -> None:
    """IP address management: pools, blocks, allocations and leaks."""


@ipam_group.command("show")
@OUTPUT
@click.option("--show-blocks", is_flag=True, help="Also list every block: host, used, free.")
@click.option("--ip", "ip", metavar="ADDR", help="Show who holds ADDR.")
@handle_errors
def show_cmd(output: str, show_blocks: bool, ip: str | None) -> None:
    """Usage per pool (total, in use, free); blocks; the holder of one address.

    Blocks, pools and reservations that cannot be read are left out (their
    addresses counted as unknown, not free) and listed as warnings."""
    from gingham.ipam import list_blocks, usage, who_holds
    from gingham.ipam.info import unreadable

    with open_store() as ds:
        if ip is not None:
            _show_ip(ds, ip, output, who_holds)
            return
        with _reported_here():
            pools = usage(ds)
            blocks = list_blocks(ds) if show_blocks else []
            bad = unreadable(ds)
    if output == "json":
        doc: dict[str, Any] = {"pools": [p.to_json() for p in pools],
                               "unreadable": [u.to_json() for u in bad]}
        if show_blocks:
            doc["blocks"] = [{"cidr": str(b.cidr), "host": b.host, "used": b.used,
                              "free": b.free, "borrowedBy": list(b.borrowed_by)}
                             for b in blocks]
        click.echo(dump_json(doc))
        _warn_unreadable(bad)
        return
    print_table(["POOL", "TOTAL", "IN USE", "FREE", "RESERVED", "BLOCKS"],
                [[p.cidr, p.total, p.in_use, p.free, p.reserved, p.blocks] for p in pools])
    if show_blocks:
        click.echo()
        print_table(["BLOCK", "HOST", "USED", "FREE", "BORROWED BY"],
                    [[b.cidr, b.host or "-", b.used, b.free, ",".join(b.borrowed_by)]
                     for b in blocks])
    _warn_unreadable(bad)


def _warn_unreadable(bad: list[Any]) -> None:
    for u in bad:
        click.echo(f"warning: {u.describe()}; left out of these numbers", err=True)


def _show_ip(ds: Any, ip: str, output: str, who_holds: Any) -> None:
    import ipaddress

    try:
        addr = ipaddress.ip_address(ip)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ip") from None
    holder = who_holds(ds, addr)
    if output == "json":
        click.echo(dump_json(holder.to_json() if holder else {"ip": str(addr), "handle": None}))
    elif holder is None:
        click.echo(f"{addr} is not allocated")
    else:
        print_table(["IP", "HANDLE", "NAMESPACE", "WORKLOAD", "HOST", "BLOCK", "BLOCK HOST",
                     "SEQUENCE"],
                    [[holder.ip, holder.handle, holder.namespace or "-",
                      holder.workload or "-", holder.host or "-", holder.block,
                      holder.block_host or "-", holder.sequence]])


@ipam_group.command("check")
@OUTPUT
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the leak report (JSON) here, for `release --from-report`.")
@click.option("--grace", type=float, default=None, metavar="SECONDS",
              help="How long a finding must persist before it is reported (default 60).")
@click.option("--release", "release_now", is_flag=True,
              help="Release what this check reports right away (each item re-verified).")
@handle_errors
def check_cmd(output: str, report_path: Path | None, grace: float | None,
              release_now: bool) -> None:
    """Find leaked addresses, stale claims and empty blocks of gone hosts.

    A finding is reported only when the previous check saw it too, at least
    the grace period ago: run this twice (e.g. from a timer)."""
    from gingham.ipam.leaks import DEFAULT_GRACE, check, release_from_report

    with open_store() as ds, _reported_here():  # unreadable documents are report.problems
        report = check(ds, now=time.time(), grace=DEFAULT_GRACE if grace is None else grace)
        outcome = release_from_report(ds, report) if release_now and report.leaks else None
    if report_path is not None:
        report_path.write_text(dump_json(report.to_json()) + "\n")
    if output == "json":
        doc = report.to_json()
        if outcome is not None:
            doc["release"] = outcome.to_json()
        click.echo(dump_json(doc))
        return
    if report.leaks:
        print_table(["KIND", "IP / BLOCK", "HANDLE", "HOST", "REASON"],
                    [[x.kind, x.ip or x.cidr, x.handle or "-", x.host or "-", x.reason]
                     for x in report.leaks])
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    click.echo(f"{len(report.leaks)} leak(s) reported, {report.pending} finding(s) waiting "
               "for a second sighting" + (f"; report written to {report_path}"
                                         if report_path else ""))
    if outcome is not None:
        click.echo(f"released {len(outcome.released)}, skipped {len(outcome.skipped)}")
        for item in outcome.skipped:
            click.echo(f"skipped {item}")


@ipam_group.command("release")
@click.option("--ip", "ips", multiple=True, metavar="ADDR", help="Release this address.")
@click.option("--sequence", type=int, default=None,
              help="Only if ADDR still carries this sequence number (one --ip only).")
@click.option("--handle", "handle", metavar="H", help="Release every address of handle H.")
@click.option("--from-report", "report_path",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Release what a `check --report` found, each item re-verified first.")
@OUTPUT
@handle_errors
def release_cmd(ips: tuple[str, ...], sequence: int | None, handle: str | None,
                report_path: Path | None, output: str) -> None:
    """Free addresses by address, by handle or from a leak report."""
    import ipaddress

    from gingham.ipam import IPAM, LeakReport, release_from_report
    from gingham.ipam.unreadable import UnreadableDocument

    chosen = sum(bool(x) for x in (ips, handle, report_path))
    if chosen != 1:
        raise fail("give exactly one of --ip, --handle, --from-report")
    if sequence is not None and len(ips) != 1:
        raise fail("--sequence goes with exactly one --ip")
    with open_store() as ds:
        if report_path is not None:
            try:
                doc = json.loads(report_path.read_text())
            except ValueError as exc:
                raise ValidationError(f"not JSON: {exc}", str(report_path)) from None
            outcome = release_from_report(ds, LeakReport.from_json(doc))
            if output == "json":
                click.echo(dump_json(outcome.to_json()))
            else:
                for item in outcome.released:
                    click.echo(f"released {item}")
                for item in outcome.skipped:
                    click.echo(f"skipped {item}")
            return
        ipam = IPAM(ds, host="gingham-cli")
        try:
            if handle:
                freed = ipam.release_by_handle(handle)
            else:
                try:
                    addrs = [ipaddress.ip_address(x) for x in ips]
                except ValueError as exc:
                    raise click.BadParameter(str(exc), param_hint="--ip") from None
                seqs = {addrs[0]: sequence} if sequence is not None else None
                freed = ipam.release_ips(addrs, sequences=seqs)
        except UnreadableDocument as exc:  # some were released: say which
            raise fail(_with_notes(exc)) from None
    if output == "json":
        click.echo(dump_json({"released": [str(x) for x in freed]}))
    elif not freed:
        click.echo("nothing was allocated")
    else:
        for x in freed:
            click.echo(f"released {x}")


@ipam_group.command("assign")
@click.option("--ip", "ip", required=True, metavar="ADDR", help="The address to take.")
@click.option("--handle", required=True, metavar="H", help="Who holds it (release by this).")
@click.option("--host", required=True, help="The host it is for (claims its block if new).")
@click.option("--namespace", default="", help="Attribute: the workload's namespace.")
@click.option("--workload", default="", help="Attribute: the workload's name.")
@OUTPUT
@handle_errors
def assign_cmd(ip: str, handle: str, host: str, namespace: str, workload: str,
               output: str) -> None:
    """Allocate exactly ADDR (fails if someone holds it or it is reserved)."""
    import ipaddress

    from gingham.ipam import IPAM

    try:
        addr = ipaddress.ip_address(ip)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ip") from None
    with open_store() as ds:
        got = IPAM(ds, host=host).assign(addr, handle,
                                         {"namespace": namespace, "workload": workload})
    if output == "json":
        click.echo(dump_json({"ip": str(got.ip), "block": str(got.block), "handle": got.handle,
                              "sequence": got.sequence}))
    else:
        click.echo(f"assigned {got.ip} (block {got.block}, sequence {got.sequence})")


@ipam_group.command("configure")
@click.option("--host", default=None, help="Configure one host (default: every host).")
@click.option("--strict-affinity/--no-strict-affinity", default=None,
              help="Never borrow addresses from other hosts' blocks.")
@click.option("--max-blocks-per-host", type=click.IntRange(min=0), default=None)
@handle_errors
def configure_cmd(host: str | None, strict_affinity: bool | None,
                  max_blocks_per_host: int | None) -> None:
    """Set IPAM configuration (strict affinity, maximum blocks per host)."""
    from gingham.datastore.base import Undecodable
    from gingham.datastore.retry import Backoff
    from gingham.errors import AlreadyExists, NotFound, RevisionConflict
    from gingham.ipam import keys

    key = keys.host_config_key(host) if host else keys.CONFIG_GLOBAL

    def step() -> dict[str, Any]:
        kv = ds.get(key)
        if kv is not None and isinstance(kv.value, Undecodable):
            # Asked to set a field, so the operator means to replace it; say so.
            click.echo(f"warning: replacing unreadable {key} ({kv.value.reason}); fields "
                       "not given here take their defaults", err=True)
        doc = dict(kv.value) if kv else {}
        if strict_affinity is not None:
            doc["strictAffinity"] = strict_affinity
        if max_blocks_per_host is not None:
            doc["maxBlocksPerHost"] = max_blocks_per_host
        try:
            if kv is None:
                ds.create(key, doc)
            else:
                ds.update(key, doc, revision=kv.mod_revision)
        except (AlreadyExists, NotFound):
            raise RevisionConflict(key) from None  # written or deleted since the read
        return doc

    with open_store() as ds:
        doc = Backoff(time.sleep, attempts=10,
                      gives_up=lambda _: fail(f"{key} kept changing under us; try again")
                      ).run(key, step)
    click.echo(dump_json(doc))
