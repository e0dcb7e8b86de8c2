"""A small transaction API over the ``nft`` program (in the shape of knftables).

Build a :class:`Transaction` of operations on typed objects (:class:`Table`,
:class:`Chain`, :class:`Rule`, :class:`Set`, :class:`Map`, :class:`Element`),
then hand it to :class:`NFT` (the real kernel, one atomic batch per ``run``)
or to :class:`~gingham.dataplane.nft_fake.FakeNFT` (an in-memory model with
the same interface and the same errors for the common mistakes).

:class:`NFT` sends a transaction as one nfnetlink batch of its own encoding
(:mod:`gingham.dataplane.nft_netlink`: no process, no read of the ruleset)
when every operation and rule form in it is one the encoder knows, and
through ``nft -f -`` otherwise; either way the kernel commits it all or
nothing. ``last_via`` says which path the last run took and ``counts`` how
often each was taken (``fallback`` counts transactions that wanted netlink
but needed nft; ``last_fallback`` says why).

Objects never name their table: a transaction is rendered for the family and
table of the driver that runs it, so the same transaction can be replayed
against the real kernel and the fake.

Reading goes through ``nft -j list …`` (JSON) except rule text, which nft only
renders in its text form. Element keys and values are normalised (quotes
stripped, addresses in canonical form, ``/32`` written as a bare address) on
both paths, so what you add is what you read back.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from collections import Counter
from typing import Any

from gingham.dataplane.nft_objects import (
    _NAME_RE,
    FAMILIES,
    NFT_KEYWORDS,
    Chain,
    Element,
    Map,
    NFTError,
    NFTInterface,
    Object,
    Rule,
    RuleCounter,
    Set,
    Table,
    TableSnapshot,
    Transaction,
    Verb,
    _check_name,
    classify_error,
    normalize_key,
    render_op,
)

__all__ = [
    "FAMILIES",
    "NFT",
    "NFT_KEYWORDS",
    "Chain",
    "Element",
    "Map",
    "NFTError",
    "NFTInterface",
    "Object",
    "Rule",
    "RuleCounter",
    "Set",
    "Table",
    "TableSnapshot",
    "Transaction",
    "Verb",
    "classify_error",
    "netns_argv",
    "normalize_key",
    "render_op",
]

log = logging.getLogger(__name__)

_ERR_LOC_RE = re.compile(r"^/dev/stdin:(\d+):[\d-]+: Error: (.*)$", re.MULTILINE)


def netns_argv(netns: str | None) -> list[str]:
    """Prefix to run a program in a network namespace (a name under /run/netns or a path).

    ``nsenter --net`` enters only the network namespace: unlike ``ip netns exec``
    it leaves /sys alone and costs less.
    """
    if netns is None:
        return []
    path = netns if netns.startswith("/") else f"/run/netns/{netns}"
    if not netns.startswith("/") and not _NAME_RE.match(netns):
        raise NFTError(f"invalid network namespace name {netns!r}")
    return ["nsenter", f"--net={path}", "--"]


class NFT:
    """The real kernel, through the ``nft`` program (optionally in a network namespace)."""

    def __init__(
        self,
        family: str = "inet",
        table: str = "gingham",
        netns: str | None = None,
        nft_path: str = "nft",
        netlink: bool = True,
    ) -> None:
        if family not in FAMILIES:
            raise NFTError(f"unknown nft family {family!r}")
        _check_name("table", table)
        self.family = family
        self.table = table
        self.netns = netns
        self.netlink = netlink
        self._argv = [*netns_argv(netns), nft_path]
        self._writer: nft_netlink.NetlinkWriter | None = None
        # declarations of the table's sets (element encoding needs their types):
        # from transactions run and from every listing of the sets
        self._sets: dict[str, Set | Map] = {}
        self._listed = False  # _sets names every set of the table (listed, or table gone)
        self._intervals = nft_intervals.Intervals()
        self.last_via = "nft"
        self.last_fallback: str | None = None
        self.counts: Counter[str] = Counter()

    def close(self) -> None:
        """Close the netlink socket (a later run opens another)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _nft(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [*self._argv, *args],
                input=stdin,
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "LC_ALL": "C"},
            )
        except OSError as exc:
            raise NFTError(f"cannot run nft: {exc}") from exc

    def _apply(self, tx: Transaction, check: bool) -> None:
        if not tx.ops:
            return
        script = tx.render(self.family, self.table)
        proc = self._nft(["-c", "-f", "-"] if check else ["-f", "-"], script)
        if proc.returncode != 0:
            raise self._error(proc.stderr, script)

    @staticmethod
    def _error(stderr: str, script: str) -> NFTError:
        lines = script.splitlines()
        m = _ERR_LOC_RE.search(stderr)
        if m:
            n = int(m.group(1))
            line = lines[n - 1] if 0 < n <= len(lines) else ""
            msg = m.group(2)
            return NFTError(
                f"nft: {msg}",
                kind=classify_error(msg),
                stderr=stderr,
                line_number=n,
                script_line=line,
            )
        first = stderr.strip().splitlines()[0] if stderr.strip() else "nft failed"
        return NFTError(f"nft: {first}", kind=classify_error(stderr), stderr=stderr)

    def run(self, tx: Transaction, *, netlink: bool | None = None) -> None:
        """Apply ``tx`` atomically: all of it or, on error, none of it.

        ``netlink`` (default: the driver's setting) allows the nfnetlink path;
        False forces ``nft -f -``.
        """
        if not tx.ops:
            return
        self.last_fallback = None
        if self.netlink if netlink is None else netlink:
            why, after = self._run_netlink(tx)
            if why is None:
                self.last_via = "netlink"
                self.counts["netlink"] += 1
                self._learn(tx, after)
                return
            self.last_fallback = why
            self.counts["fallback"] += 1
        self._apply(tx, check=False)
        self.last_via = "nft"
        self.counts["nft"] += 1
        self._learn(tx, None)

    def _run_netlink(self, tx: Transaction) -> tuple[str | None, dict[str, Any] | None]:
        """(None, interval sets after) when the batch went through; else (why
        ``nft -f -`` must do it, None).

        Raises NFTError when the kernel refused the batch for what it holds
        (no such chain, exists, busy): nft would fail the same way.
        """
        try:
            after = self._intervals.check(tx, self._declared(tx), self._fresh(tx))
            if self._writer is None:
                self._writer = nft_netlink.NetlinkWriter(self.family, self.table, self.netns)
            self._writer.run(tx, self._sets)
        except nft_netlink.KernelRefused as exc:
            log.warning("nft netlink batch refused, retrying with nft -f -: %s", exc)
            return str(exc), None
        except Unsupported as exc:
            log.debug("transaction needs nft -f -: %s", exc)
            return str(exc), None
        except OSError as exc:
            log.warning("nfnetlink socket failed, using nft -f -: %s", exc)
            self.close()
            return f"socket: {exc}", None
        return None, after

    def _declared(self, tx: Transaction) -> dict[str, Set | Map]:
        sets = dict(self._sets)
        for verb, obj in tx.ops:
            if isinstance(obj, Set | Map) and verb in ("add", "create"):
                sets.setdefault(obj.name, obj)
        return sets

    def _fresh(self, tx: Transaction) -> set[str]:
        """Sets ``tx`` creates that the table is known not to hold yet."""
        if not self._listed:
            return set()
        return {obj.name for verb, obj in tx.ops
                if isinstance(obj, Set | Map) and verb in ("add", "create")
                and obj.name not in self._sets}

    def _learn(self, tx: Transaction, after: dict[str, Any] | None) -> None:
        """Bring what the driver knows of the table's sets up to date after ``tx``."""
        if after is None:
            try:
                after = self._intervals.check(tx, self._declared(tx), self._fresh(tx))
            except Unsupported:  # nft made a change this cannot follow: forget those sets
                for _verb, obj in tx.ops:
                    if isinstance(obj, Element | Set | Map):
                        self._intervals.forget(obj.set if isinstance(obj, Element) else obj.name)
                after = {}
        for verb, obj in tx.ops:
            if isinstance(obj, Table) and verb == "delete":
                self._sets.clear()
                self._intervals.forget()
                self._listed = True
                after = {}
            elif isinstance(obj, Set | Map):
                if verb in ("add", "create"):
                    self._sets.setdefault(obj.name, obj)
                elif verb == "delete":
                    self._sets.pop(obj.name, None)
                    self._intervals.forget(obj.name)
        self._intervals.commit(after)

    def check(self, tx: Transaction) -> None:
        """Validate ``tx`` against the current kernel state without applying it."""
        self._apply(tx, check=True)

    def _list_json(self, *what: str, terse: bool = False) -> dict[str, Any] | None:
        proc = self._nft(["-j", *(["-t"] if terse else []), "list", *what])
        if proc.returncode != 0:
            if classify_error(proc.stderr) == "not-found":
                return None
            raise NFTError(f"nft list {' '.join(what)} failed", stderr=proc.stderr)
        try:
            doc: dict[str, Any] = json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise NFTError(f"nft -j list {' '.join(what)}: bad JSON: {exc}") from exc
        return doc

    # nft 1.0.6 fetches every rule for `list table` and even `list tables`
    # (≈ 0.3-0.7 s with 10,000 rules); `list chains`/`list sets` and check-mode
    # commands do not, so everything but rules and counters is read through them.

    def table_exists(self) -> bool:
        proc = self._nft(["-c", "-f", "-"], f"create table {self.family} {self.table}\n")
        if proc.returncode == 0:
            return False
        if classify_error(proc.stderr) == "exists":
            return True
        raise NFTError(
            "cannot tell whether the table exists",
            kind=classify_error(proc.stderr),
            stderr=proc.stderr,
        )

    def list_chains(self) -> list[Chain]:
        doc = self._list_json("chains", self.family)
        return [
            nft_parse.chain_from_json(i["chain"])
            for i in ([] if doc is None else doc.get("nftables", []))
            if "chain" in i and i["chain"].get("table") == self.table
        ]

    def list_sets(self) -> list[Set | Map]:
        found: list[tuple[int, Set | Map]] = []
        for kind in ("set", "map"):
            doc = self._list_json(f"{kind}s", self.family, terse=True)
            for item in [] if doc is None else doc.get("nftables", []):
                if kind in item and item[kind].get("table") == self.table:
                    obj = item[kind]
                    found.append((obj.get("handle", 0), nft_parse.set_from_json(kind, obj)))
        sets = [obj for _, obj in sorted(found, key=lambda pair: pair[0])]
        self._sets = {s.name: s for s in sets}
        self._listed = True
        return sets

    def list_elements(self, name: str) -> list[Element]:
        _check_name("set", name)
        for kind in ("set", "map"):
            doc = self._list_json(kind, self.family, self.table, name)
            if doc is None:
                continue
            for item in doc.get("nftables", []):
                if kind in item:
                    elements = nft_parse.elements_from_json(name, item[kind])
                    if name in self._sets:
                        self._intervals.load(self._sets[name], elements)
                    return elements
        raise NFTError(
            f"no set or map {name!r} in table {self.family} {self.table}", kind="not-found"
        )

    def list_rules(self, chain: str) -> list[Rule]:
        _check_name("chain", chain)
        proc = self._nft(["-a", "list", "chain", self.family, self.table, chain])
        if proc.returncode != 0:
            raise NFTError(
                f"cannot list chain {chain}", kind=classify_error(proc.stderr), stderr=proc.stderr
            )
        return nft_parse.rules_from_text(chain, proc.stdout)

    def _rules_text(self) -> str | None:
        proc = self._nft(["-a", "list", "table", self.family, self.table])
        if proc.returncode == 0:
            return proc.stdout
        if classify_error(proc.stderr) == "not-found":
            return None
        raise NFTError("cannot list table", kind=classify_error(proc.stderr), stderr=proc.stderr)

    def counters(self) -> list[RuleCounter]:
        # from the text listing: nft's JSON of the same table takes twice as long
        text = self._rules_text()
        return [] if text is None else nft_parse.counters_from_rules(nft_parse.rules_by_chain(text))

    def snapshot(self) -> TableSnapshot | None:
        """The whole table (None when absent); only the rule listing grows with rules."""
        text = self._rules_text()
        if text is None:
            self._sets = {}
            self._listed = True
            self._intervals.forget()
            return None
        items = []
        for what in ("chains", "sets", "maps"):
            doc = self._list_json(what, self.family)
            for item in [] if doc is None else doc.get("nftables", []):
                obj = next(iter(item.values()))
                if isinstance(obj, dict) and obj.get("table") == self.table:
                    items.append(item)
        snap = nft_parse.snapshot_from({"nftables": items}, text)
        self._sets = dict(snap.sets)
        self._listed = True
        self._intervals.forget()
        for name, obj in snap.sets.items():
            self._intervals.load(obj, snap.elements.get(name, ()))
        return snap

    def dump(self) -> str:
        """``nft list table`` text ('' when the table is absent)."""
        proc = self._nft(["list", "table", self.family, self.table])
        return proc.stdout if proc.returncode == 0 else ""

    def delete_table(self) -> bool:
        """Remove the whole table; False if it was not there."""
        proc = self._nft(["delete", "table", self.family, self.table])
        self._sets = {}
        self._intervals.forget()
        self._listed = proc.returncode == 0 or classify_error(proc.stderr) == "not-found"
        if proc.returncode == 0:
            return True
        if classify_error(proc.stderr) == "not-found":
            return False
        raise NFTError("cannot delete table", kind=classify_error(proc.stderr), stderr=proc.stderr)


def __getattr__(name: str) -> Any:
    # FakeNFT lives in its own module (it imports this one); re-export lazily.
    if name == "FakeNFT":
        from gingham.dataplane.nft_fake import FakeNFT

        return FakeNFT
    raise AttributeError(name)


# nft_parse builds the objects defined above: import it once they exist
from gingham.dataplane import nft_intervals, nft_netlink, nft_parse  # noqa: E402
from gingham.dataplane.nft_types import Unsupported  # noqa: E402
