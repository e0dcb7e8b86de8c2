"""Naming resources on the command line: kinds, ``TYPE/NAME`` and what ``-o name`` prints.

``get -o name`` prints ``<plural>/<name>``, and ``<plural>/<namespace>/<name>``
for namespaced kinds; ``get`` and ``delete`` (and ``label``, ``patch``) take
that back as arguments, so ``gingham get gnp -o name | xargs gingham delete``
works. ``TYPE`` is any spelling of the kind (plural, short name, Kind, any
case), also kubectl's ``<kind>.<group>`` (``networkpolicy.networking.k8s.io``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gingham.errors import ValidationError
from gingham.model import KindInfo, all_kinds, kind_info


@dataclass(frozen=True)
class Ref:
    """One resource named on the command line; ``namespace`` None: from -n or the default."""

    info: KindInfo
    name: str
    namespace: str | None


def resolve_kind(spelling: str) -> KindInfo:
    """The kind for any operator spelling; ValidationError naming it if there is none."""
    try:
        return kind_info(spelling)
    except ValidationError:
        if "." not in spelling:
            raise
    head, _, group = spelling.lower().partition(".")
    for info in all_kinds():
        if _group(info) == group and head in _spellings(info):
            return info
    raise ValidationError(f"unknown resource type {spelling!r}")


def _group(info: KindInfo) -> str:
    group, _, _ = info.api_version.rpartition("/")
    return group


def _spellings(info: KindInfo) -> set[str]:
    return {s.lower() for s in (info.kind, info.plural.partition(".")[0], *info.short_names)}


def name_of(info: KindInfo, name: str, namespace: str | None) -> str:
    """What ``-o name`` prints for a resource (and ``parse_ref`` reads back)."""
    return f"{info.plural}/{namespace}/{name}" if namespace else f"{info.plural}/{name}"


def is_ref(arg: str) -> bool:
    return "/" in arg


def parse_ref(arg: str, namespace: str | None) -> Ref:
    """``TYPE/NAME`` or, for a namespaced kind, ``TYPE/NAMESPACE/NAME``.

    A namespace in the argument must agree with ``-n`` if both are given.
    """
    spelling, _, rest = arg.partition("/")
    if not spelling or not rest:
        raise ValidationError(f"{arg!r}: expected TYPE/NAME")
    info = resolve_kind(spelling)
    ns: str | None = None
    name = rest
    if "/" in rest:
        if not info.namespaced:
            raise ValidationError(
                f"{arg!r}: {info.kind} is cluster-scoped: expected {spelling}/NAME"
            )
        ns, _, name = rest.partition("/")
        if not ns or not name or "/" in name:
            raise ValidationError(f"{arg!r}: expected {spelling}/NAMESPACE/NAME")
        if namespace and ns != namespace:
            raise ValidationError(
                f"{arg!r}: namespace {ns!r} differs from --namespace {namespace!r}"
            )
    return Ref(info, name, ns or (namespace if info.namespaced else None))


def parse_targets(kind: str | None, names: Sequence[str], namespace: str | None) -> list[Ref]:
    """``KIND NAME...`` or ``TYPE/NAME...`` (kinds may then be mixed), as kubectl takes them."""
    if kind is None:
        return []
    if is_ref(kind):
        return [parse_ref(arg, namespace) for arg in (kind, *names)]
    slashed = [n for n in names if is_ref(n)]
    if slashed:
        raise ValidationError(
            f"{slashed[0]!r}: give either KIND NAME... or TYPE/NAME..., not both"
        )
    if not names:
        return []
    info = resolve_kind(kind)
    ns = namespace if info.namespaced else None
    if namespace and not info.namespaced:
        raise ValidationError(
            f"{info.kind} is cluster-scoped: no namespace allowed", location="--namespace"
        )
    return [Ref(info, name, ns) for name in names]
