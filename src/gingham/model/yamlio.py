"""Manifests in and out: a YAML loader without YAML 1.1's surprises, and the dumper to match.

PyYAML follows YAML 1.1: ``1:30`` is 90 (base 60), ``on``/``yes``/``no`` are
booleans, ``0755`` is octal and ``2024-01-01`` a date. Manifests must mean what
they say, so this loader uses the YAML 1.2 core schema for plain scalars: only
``true``/``false`` are booleans, integers are decimal, ``0o`` octal or ``0x``
hex, and everything else that is not a 1.2 float or null stays a string.
A key repeated in one mapping is an error naming both lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

from gingham.model.lists import expand
from gingham.model.meta import ManifestError, Problem, Resource
from gingham.model.registry import check_resource

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")

_TAG_BOOL = "tag:yaml.org,2002:bool"
_TAG_INT = "tag:yaml.org,2002:int"
_TAG_FLOAT = "tag:yaml.org,2002:float"
_TAG_NULL = "tag:yaml.org,2002:null"
_REPLACED = {_TAG_BOOL, _TAG_INT, _TAG_FLOAT, _TAG_NULL, "tag:yaml.org,2002:timestamp"}

_CORE_RESOLVERS: list[tuple[str, re.Pattern[str], str]] = [
    (_TAG_BOOL, _BOOL, "tTfF"),
    (_TAG_INT, _INT, "-+0123456789"),
    (_TAG_FLOAT, _FLOAT, "-+0123456789."),
    (_TAG_NULL, _NULL, "~nN"),
]


def _core_resolvers(base: dict[Any, list[tuple[str, re.Pattern[str]]]]
                    ) -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    table = {first: [(tag, rx) for tag, rx in pairs if tag not in _REPLACED]
             for first, pairs in base.items()}
    for tag, rx, firsts in _CORE_RESOLVERS:
        for first in firsts:
            table.setdefault(first, []).append((tag, rx))
    table.setdefault("", []).append((_TAG_NULL, _NULL))  # the empty scalar
    return table


class DuplicateKey(yaml.MarkedYAMLError):
    pass


class _Constructor(yaml.constructor.SafeConstructor):
    """SafeConstructor with YAML 1.2 integers and duplicate keys refused."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)

    def construct_mapping(self, node: yaml.MappingNode,
                          deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if first is not None:
                raise DuplicateKey(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key!r} (first at line {first.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_Constructor.add_constructor(_TAG_INT, _Constructor.construct_yaml_int)  # type: ignore[type-var]


class _Resolver(yaml.resolver.BaseResolver):
    # YAML 1.1's "=" (value) tag has no constructor in the safe loader: dropped too.
    yaml_implicit_resolvers = _core_resolvers(
        {first: [(tag, rx) for tag, rx in pairs if tag != "tag:yaml.org,2002:value"]
         for first, pairs in yaml.resolver.Resolver.yaml_implicit_resolvers.items()})


class PyLoader(
    yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
    _Constructor, _Resolver,
):
    """The pure-Python parser under our resolver and constructor."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _Constructor.__init__(self)
        _Resolver.__init__(self)


Loader: type[PyLoader] = PyLoader

# libyaml's parser when PyYAML has it (about ten times faster); same resolution and construction.
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class CLoader(CParser, _Constructor, _Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Constructor.__init__(self)
            _Resolver.__init__(self)

    Loader = CLoader  # type: ignore[assignment]


class Dumper(yaml.SafeDumper):
    """Quotes every string that either YAML 1.1 or our 1.2 loader would read as non-string."""

    def represent_str(self, data: str) -> yaml.ScalarNode:
        # Unicode line breaks (NEL, LS, PS) and control characters only survive a
        # round trip as escapes inside double quotes.
        if any(c in _AWKWARD or (ord(c) < 32 and c not in "\n\t") for c in data):
            return self.represent_scalar("tag:yaml.org,2002:str", data, style='"')
        return super().represent_str(data)


_AWKWARD = frozenset("\x85\u2028\u2029\ufeff\x7f")
Dumper.add_representer(str, Dumper.represent_str)

for _tag, _rx, _firsts in _CORE_RESOLVERS:
    for _first in _firsts:
        Dumper.add_implicit_resolver(_tag, _rx, list(_first))


def _mark_text(mark: yaml.Mark | None) -> str:
    return f"line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""


def _yaml_problem(exc: yaml.YAMLError, index: int) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        what = exc.problem or "invalid YAML"
        where = _mark_text(exc.problem_mark)
        if isinstance(exc, DuplicateKey):
            return Problem(f"doc {index + 1}", where, what)
        return Problem(f"doc {index + 1}", where, f"invalid YAML: {what}")
    return Problem(f"doc {index + 1}", "", f"invalid YAML: {exc}")


def load_yaml_documents(text: str, loader_class: type[PyLoader] | None = None) -> list[Any]:
    """Every document of a YAML stream (empty documents dropped), or ManifestError."""
    docs: list[Any] = []
    loader = (loader_class or Loader)(text)
    index = 0  # documents completed so far
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]
            doc = loader.get_data()
            index += 1
            if doc is not None:
                docs.append(doc)
    except yaml.YAMLError as exc:
        raise ManifestError([_yaml_problem(exc, index)]) from None
    finally:
        loader.dispose()
    return docs


def load_manifests(text: str) -> list[Resource]:
    """Every resource in a multi-document YAML (or JSON) text, in order.

    A list document (kubectl's ``kind: List``, calicoctl's ``kind: <Kind>List``)
    contributes its ``items`` (see :mod:`gingham.model.lists`). If any document
    is bad, nothing is returned: one ManifestError lists the problems of all of
    them, each located as ``doc N (Kind name)`` or ``doc N item M (Kind name)``
    (N and M count from 1).
    """
    resources: list[Resource] = []
    problems: list[Problem] = []
    for i, doc in enumerate(load_yaml_documents(text)):
        for entry in expand(doc, i):
            problems.extend(entry.problems)
            if entry.problems:
                continue
            resource, found = check_resource(entry.document, entry.location)
            problems.extend(found)
            if resource is not None:
                resources.append(resource)
    if problems:
        raise ManifestError(problems)
    return resources


def to_dict(resource: Resource) -> dict[str, Any]:
    """The manifest form: camelCase, ``apiVersion``/``kind``/``metadata`` first.

    Fields that were absent on input (and filled by defaults) are left out, as
    are Nones, so that parse(to_dict(r)) == r and a read-back looks like what
    was applied.
    """
    body = resource.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)
    out: dict[str, Any] = {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": body.pop("metadata", {"name": resource.metadata.name}),
    }
    body.pop("apiVersion", None)
    body.pop("kind", None)
    out.update(body)
    return out


def dump_yaml(resources: Iterable[Resource]) -> str:
    """Resources as a multi-document YAML text that ``load_manifests`` reads back equal."""
    return yaml.dump_all(
        [to_dict(r) for r in resources],
        Dumper=Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        explicit_start=True,
    )
