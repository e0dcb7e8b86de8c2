"""What nft itself sends for a script, read from ``nft --debug=mnl -c``.

``nft -c`` builds the batch and lets the kernel check it without committing,
and ``--debug=mnl`` prints every message as a table of attribute headers and
data words; :func:`nft_messages` turns that print back into bytes. The
comparison helpers put both sides in a readable, normalised form: set ids
(numbers each program picks for itself) are blanked, and nft's habit of
sending the elements of a set it creates twice (once with the declaration,
once for the ``add element`` command) is forgiven, since adding an element
that is there already changes nothing.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterable

from gingham.dataplane import nft_wire as w
from gingham.dataplane.nft_netlink import NetlinkWriter
from gingham.dataplane.nft_objects import Map, Set, Transaction
from gingham.lab.netns import in_netns

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MSG_LEN = re.compile(r"^\|\s+(\d+)\s+\|\s+\| message length \|")
_MSG_TYPE = re.compile(r"^\| (\d+) \| .{4} \|\s+\|  type \| flags  \|")
_ATTR = re.compile(r"^\|(\d{5})\|(..)\|(\d{5})\|\s+\|len \|flags\| type\|")
_DATA = re.compile(r"^\| ((?:[0-9a-f]{2} ){4}) \|\s+\|\s+(?:data|extra header)\s+\|")
_WRITES = (w.NEWTABLE, w.DELTABLE, w.NEWCHAIN, w.DELCHAIN, w.NEWRULE, w.DELRULE,
           w.NEWSET, w.DELSET, w.NEWSETELEM, w.DELSETELEM)


def parse_mnl(text: str) -> list[tuple[int, bytes]]:
    """(message type, payload after the nfgenmsg header) for each printed message."""
    msgs: list[tuple[int, bytearray]] = []
    for raw in text.splitlines():
        line = _ANSI.sub("", raw)
        if _MSG_LEN.match(line):
            msgs.append((0, bytearray()))
        elif m := _MSG_TYPE.match(line):
            msgs[-1] = (int(m.group(1)), msgs[-1][1])
        elif m := _ATTR.match(line):
            kind = int(m.group(3)) | (w.NLA_F_NESTED if "N" in m.group(2) else 0)
            msgs[-1][1].extend(int(m.group(1)).to_bytes(2, "little") + kind.to_bytes(2, "little"))
        elif m := _DATA.match(line):
            msgs[-1][1].extend(bytes.fromhex(m.group(1).replace(" ", "")))
    return [(t, bytes(p[4:])) for t, p in msgs]


def nft_messages(script: str, netns: str) -> list[tuple[int, bytes]]:
    """The nf_tables write messages nft sends for ``script`` (checked, not committed)."""
    proc = subprocess.run(in_netns(netns, ["nft", "--debug=mnl", "-c", "-f", "-"]),
                          input=script, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"nft refused the script: {proc.stderr}")
    return [(t & 0xFF, p) for t, p in parse_mnl(proc.stdout + proc.stderr)
            if t >> 8 == w.NFNL_SUBSYS_NFTABLES and t & 0xFF in _WRITES]


def our_messages(tx: Transaction, known: dict[str, Set | Map] | None = None,
                 ) -> list[tuple[int, bytes]]:
    return [(m.kind, m.payload) for m in NetlinkWriter("inet", "gingham").encode(tx, known or {})]


def tree(payload: bytes, depth: int = 1) -> list[str]:
    """Attributes as indented lines: ``N: hex ('text')`` or ``[N]`` for a nest."""
    out: list[str] = []
    off = 0
    while off + 4 <= len(payload):
        length = int.from_bytes(payload[off:off + 2], "little")
        kind = int.from_bytes(payload[off + 2:off + 4], "little")
        body = payload[off + 4:off + length]
        pad = "  " * depth
        if kind & w.NLA_F_NESTED:
            out.append(f"{pad}[{kind & 0x3FFF}]")
            out += tree(body, depth + 1)
        else:
            text = body.hex()
            if len(body) > 1 and body[-1] == 0 and all(32 <= c < 127 for c in body[:-1]):
                text += f" ({body[:-1].decode()!r})"
            out.append(f"{pad}{kind}: {text}")
        off += max((length + 3) & ~3, 4)
    return out


def normalised(kind: int, payload: bytes) -> str:
    """A message as text with the set ids blanked."""
    lines = tree(payload)
    out: list[str] = []
    lookup_depth: int | None = None
    for line in lines:
        depth = (len(line) - len(line.lstrip())) // 2
        if lookup_depth is not None and depth <= lookup_depth:
            lookup_depth = None
        if "('lookup')" in line:
            lookup_depth = depth - 1
        stripped = line.strip()
        blank = ((kind == w.NEWSET and depth == 1 and stripped.startswith("10:"))
                 or (kind in (w.NEWSETELEM, w.DELSETELEM) and depth == 1
                     and stripped.startswith("4:"))
                 or (lookup_depth is not None and stripped.startswith("4:")))
        out.append(line.split(":")[0] + ": ID" if blank else line)
    return f"type {kind}\n" + "\n".join(out)


def _elements(text: str) -> tuple[str, frozenset[str]] | None:
    head, sep, rest = text.partition("\n  [3]")
    if not sep or not text.startswith(f"type {w.NEWSETELEM}"):
        return None
    blocks: list[str] = []
    current: list[str] = []
    for line in rest.split("\n")[1:]:
        if line.startswith("    [") and not line.startswith("     "):
            if current:
                blocks.append("\n".join(current))
            current = []
        elif line.strip():
            current.append(line)
    if current:
        blocks.append("\n".join(current))
    name = head.split("\n")[2]
    return name, frozenset(blocks)


def differences(theirs: Iterable[tuple[int, bytes]], ours: Iterable[tuple[int, bytes]],
                ) -> tuple[list[str], list[str]]:
    """(messages only nft sent, messages only we sent), order ignored."""
    a = Counter(normalised(k, p) for k, p in theirs)
    b = Counter(normalised(k, p) for k, p in ours)
    sent: dict[str, set[str]] = {}
    for text in b.elements():
        item = _elements(text)
        if item is not None:
            sent.setdefault(item[0], set()).update(item[1])
    only_theirs = []
    for text in (a - b).elements():
        item = _elements(text)
        if item is not None and item[1] <= sent.get(item[0], set()):
            continue  # a repeat of elements we sent for that set: a no-op
        only_theirs.append(text)
    return only_theirs, list((b - a).elements())
