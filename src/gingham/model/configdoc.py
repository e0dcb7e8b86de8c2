"""docs/CONFIGURATION.md, generated from the models and :mod:`gingham.model.support`.

    python -m gingham.model.configdoc            # print it
    python -m gingham.model.configdoc --write    # write docs/CONFIGURATION.md
    python -m gingham.model.configdoc --check    # exit 1 if the file is out of date

``walk`` visits every field of every kind with its camelCase path; the test
that every field is classified uses it too.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from gingham.model.registry import all_kinds
from gingham.model.support import (
    REFUSAL_TEST,
    STATUSES,
    UNMODELLED,
    Status,
    Support,
    field_default,
    support_for,
)

DOC: Final = Path("docs") / "CONFIGURATION.md"

# Structures several kinds share: documented once, in their own section.
SHARED: Final[dict[str, str]] = {
    "ObjectMeta": "metadata",
    "Rule": "Rule",
    "LabelSelector": "LabelSelector",
}

_NOTES: Final[dict[str, str]] = {
    "FelixConfiguration": (
        "Every agent reads `default` and then `node.<its host name>`, whose fields override "
        "`default` field by field. Other names are not read."),
    "BGPConfiguration": (
        "`default` turns BGP on (BIRD on every host). Only `default` is read: a per-node "
        "`node.<name>` is accepted but not read yet."),
    "KubernetesNetworkPolicy": (
        "`networking.k8s.io/v1` NetworkPolicy. Enforced as the Calico NetworkPolicy "
        "`knp.default.<name>` it converts to (tier `default`)."),
    "Namespace": (
        "`v1` Namespace. Its labels become the Profile `kns.<name>` that every workload "
        "of the namespace inherits; namespaceSelectors match them."),
}

_STATUS_TEXT: Final[dict[Status, str]] = {
    "effect": "effect",
    "reported": "effect (host)",
    "recorded": "recorded",
    "planned": "**planned**: refused today",
    "refused": "**refused**",
}


@dataclass(frozen=True, slots=True)
class FieldRow:
    path: str  # camelCase, lists as ``[]``: ``spec.failsafeInboundHostPorts[].net``
    model: type[BaseModel]
    alias: str
    default: Any
    support: Support | None
    shared: type[BaseModel] | None  # a shared structure inside, documented on its own
    whole: str | None = None  # for a part of a field refused as a whole: that field's path
    whole_status: Status | None = None

    @property
    def status(self) -> Status | None:
        """The status shown: a part has the status of the field it is in."""
        if self.whole_status is not None:
            return self.whole_status
        return self.support.status if self.support else None


def nested_models(annotation: Any) -> tuple[list[type[BaseModel]], bool]:
    """The model classes inside a field's type, and whether it is a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation], False
    found: list[type[BaseModel]] = []
    is_list = typing.get_origin(annotation) in (tuple, list)
    for arg in typing.get_args(annotation):
        inner, _ = nested_models(arg)
        found.extend(inner)
    return found, is_list


def walk(model: type[BaseModel], prefix: str = "", *, expand_shared: bool = False,
         _seen: frozenset[type[BaseModel]] = frozenset(),
         _parent: FieldRow | None = None) -> Iterator[FieldRow]:
    """Every field of ``model`` and of the models inside it, depth first.

    Shared structures are not entered unless ``expand_shared``; a model is never
    entered twice on one path (no model here is recursive, but a walk must end).
    """
    for attr, info in model.model_fields.items():
        alias = info.alias or attr
        inner, is_list = nested_models(info.annotation)
        path = f"{prefix}.{alias}" if prefix else alias
        shared = next((m for m in inner if m.__name__ in SHARED), None)
        support = support_for(model, alias)
        row = FieldRow(path + ("[]" if is_list and inner else ""), model, alias,
                       field_default(info), support, shared)
        if support is not None and not support.checked and _parent is not None:
            whole = _parent if _parent.whole is None else None
            row = dataclasses.replace(
                row, whole=whole.path if whole else _parent.whole,
                whole_status=_parent.status)
        yield row
        if shared is not None and not expand_shared:
            continue
        for sub in inner:
            if sub not in _seen:
                yield from walk(sub, path + ("[]" if is_list else ""),
                                expand_shared=expand_shared, _seen=_seen | {sub}, _parent=row)


def every_field() -> list[FieldRow]:
    """Every (model, field) of every kind once, nested and shared ones included."""
    out: dict[tuple[type[BaseModel], str], FieldRow] = {}
    for info in all_kinds():
        for row in walk(info.model, expand_shared=True):
            out.setdefault((row.model, row.alias), row)
    return list(out.values())


def _shared_models() -> dict[type[BaseModel], list[str]]:
    """Each shared structure, with the kinds that use it."""
    found: dict[type[BaseModel], list[str]] = {}
    for info in all_kinds():
        for row in walk(info.model):
            if row.shared is not None and info.name not in found.setdefault(row.shared, []):
                found[row.shared].append(info.name)
    return found


# --- rendering ---------------------------------------------------------------


def _value(value: Any) -> str:
    if value is None:
        return "unset"
    if value == () or value == {}:
        return "empty"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


def _describe(row: FieldRow) -> str:
    s = row.support
    if s is None:
        return "(not classified)"
    if row.whole is not None:
        return f"part of `{row.whole}`: accepted where it is."
    text = s.what
    if s.status in ("planned", "refused") and s.checked:
        accepted = s.accepts if s.accepts is not None else (row.default,)
        shown = ", ".join(dict.fromkeys(_value(a) for a in accepted if a is not None))
        text += ". Accepted: unset" + (f" or {shown}" if shown else "")
        if s.instead:
            text += f". What to do: {s.instead}"
    if s.status == "reported":
        text += f". Needs {s.needs}"
    if s.limit is not None:
        text += ". Other values are refused (see the message)"
    return text + ("" if text.endswith(".") else ".")


def _tests(row: FieldRow) -> str:
    s = row.support
    if s is None or row.whole is not None:
        return ""
    tests = list(s.tests)
    if s.refuses:
        tests.append(REFUSAL_TEST)
    if not tests:
        return "no test names it yet"
    return "<br>".join(f"`{t.split('::')[0]}` {t.split('::')[1]}" if "::" in t else f"`{t}`"
                       for t in tests)


def _table(rows: list[FieldRow]) -> list[str]:
    out = ["| field | status | what gingham does | tested in |", "|---|---|---|---|"]
    for row in rows:
        status = _STATUS_TEXT[row.status] if row.status else "?"
        what = _describe(row)
        if row.shared is not None and "(#" not in what:
            name = SHARED[row.shared.__name__]
            what += f" See [{name}](#{name.lower()})."
        out.append(f"| `{row.path}` | {status} | {what} | "
                   f"{_tests(row)} |")
    return out


_HIDDEN: Final = ("apiVersion", "kind", "metadata", "spec")


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    intro: list[str]
    rows: list[FieldRow]


def sections() -> list[Section]:
    """One section per kind, then one per shared structure; rows as the doc shows them."""
    out = []
    for info in all_kinds():
        doc = (info.model.__doc__ or "").strip().splitlines()
        intro = [_NOTES[info.name]] if info.name in _NOTES else [doc[0].replace("``", "`")]
        where = "namespaced" if info.namespaced else "cluster-wide"
        intro.append(f"`apiVersion: {info.api_version}`, `kind: {info.kind}`, {where}; "
                     "`metadata`: see [metadata](#metadata).")
        out.append(Section(info.name, intro,
                           [r for r in walk(info.model) if r.path not in _HIDDEN]))
    for model, users in _shared_models().items():
        out.append(Section(SHARED[model.__name__], [f"Used by {', '.join(users)}."],
                           list(walk(model))))
    return out


def counts(parts: list[Section] | None = None) -> Counter[str]:
    """Rows of the document by status."""
    return Counter(row.status or "?" for part in parts or sections() for row in part.rows)


def render() -> str:
    parts = sections()
    tally = counts(parts)
    planned = [f"`{part.title} {row.path}`" for part in parts for row in part.rows
               if row.status == "planned" and row.whole is None]
    out = [
        "<!-- Generated by `python -m gingham.model.configdoc --write` from",
        "     src/gingham/model/support_*.py; do not edit by hand. -->",
        "# Configuration reference",
        "",
        "Every field of every kind gingham accepts, and what gingham does with it.",
        "gingham reads Calico's `projectcalico.org/v3` and Kubernetes' manifests; a",
        "field it would not honour is refused at `validate`/`apply`, naming the",
        "document, the field and what to use instead, rather than accepted and ignored.",
        "",
        "Status:",
        "",
        "- **effect**: gingham acts on the field; *tested in* names the tests that show it.",
        "- **effect (host)** (*reported* in the counts): the same, where the host can: the",
        "  field needs a kernel module or program, named in the row. Each agent probes",
        "  its host and reports a missing one, with the settings not in effect there,",
        "  in `gingham node status --agent`, `/readyz` and `gingham_host_capability`.",
        "- **recorded**: information about the object (bookkeeping, identification),",
        "  kept and shown as written; not a setting.",
        "- **planned**: gingham has the feature but does not read this setting yet. Until",
        "  it does, a value other than what gingham does anyway is refused as",
        "  *not supported yet*.",
        "- **refused**: a feature gingham does not have; a value asking for it is refused.",
        "",
        "For planned and refused fields, *Accepted* lists the values that describe what",
        "gingham does anyway (usually Calico's default: `ipipMode: Never`,",
        "`bpfEnabled: false`), so an exported manifest that carries defaults still loads.",
        "A field left unset is never refused.",
        "",
        "Stored documents are validated again by every agent: one written before a field",
        "was refused becomes invalid, and the agent keeps its last valid version,",
        "quarantines it or ignores it (docs/RELIABILITY.md, \"Bad data and hostile input\").",
        "",
        "| status | rows below |",
        "|---|---|",
        *[f"| {s} | {tally.get(s, 0)} |" for s in STATUSES],
        f"| total | {sum(tally.values())} |",
        "",
        *([f"Planned (refused today, to be wired): {', '.join(planned)}.", ""]
          if planned else []),
    ]
    for part in parts:
        out += [f"## {part.title}", ""]
        for line in part.intro:
            out += [line, ""]
        out += _table(part.rows)
        out.append("")
    out += [
        "## Calico fields gingham does not model",
        "",
        "Any other field is refused as `unknown field`. For these families of Calico",
        "settings the message also says why (matched anywhere in the field's name):",
        "",
        "| name contains | message |",
        "|---|---|",
        *[f"| `{family}` | unknown field: {why} |" for family, why in UNMODELLED],
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gingham.model.configdoc",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help=f"write {DOC}")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if {DOC} is out of date")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository")
    args = parser.parse_args(argv)
    text = render()
    path = args.root / DOC
    if args.check:
        current = path.read_text() if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run python -m gingham.model.configdoc --write",
                  file=sys.stderr)
            return 1
        return 0
    if args.write:
        path.write_text(text)
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
