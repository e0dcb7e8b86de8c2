"""List documents unwrapped into their items: kubectl's ``List`` and calicoctl's ``<Kind>List``.

``kubectl get -o yaml`` writes ``apiVersion: v1, kind: List`` whose items may
be of any kind; ``calicoctl get -o yaml`` writes ``kind: GlobalNetworkPolicyList``
(``IPPoolList``, ``NetworkPolicyList`` …, apiVersion ``projectcalico.org/v3``)
whose items must all be of that kind; Kubernetes API servers write typed
lists such as ``NetworkPolicyList`` (``networking.k8s.io/v1``) whose items may
leave out ``apiVersion`` and ``kind``, which the list implies. The list's own
``metadata`` (``resourceVersion``, ``continue``) describes the listing, not
the items, and is ignored as kubectl ignores it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gingham.model.meta import ManifestError, Problem
from gingham.model.registry import KindInfo, describe, kind_info
from gingham.suggest import did_you_mean

GENERIC_LIST: Final = "List"
_LIST_FIELDS: Final = ("apiVersion", "kind", "metadata", "items")


@dataclass(frozen=True, slots=True)
class Entry:
    """One document to parse (a plain document or a list's item), or problems instead."""

    location: str
    document: Any
    problems: tuple[Problem, ...] = ()


def _typed_list(doc: Mapping[str, Any]) -> KindInfo | None:
    """The kind of the items when ``doc`` is a ``<Kind>List`` gingham knows."""
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if not (isinstance(kind, str) and kind.endswith("List") and kind != GENERIC_LIST
            and isinstance(api_version, str)):
        return None
    try:
        return kind_info(kind.removesuffix("List"), api_version)
    except ManifestError:
        return None


def is_list(doc: Any) -> bool:
    return isinstance(doc, Mapping) and (
        doc.get("kind") == GENERIC_LIST or _typed_list(doc) is not None)


def expand(doc: Any, index: int) -> Iterator[Entry]:
    """The documents ``doc`` stands for: itself, or each item of a list."""
    if not is_list(doc):
        where = describe(doc, index) if isinstance(doc, Mapping) else f"doc {index + 1}"
        yield Entry(where, doc)
        return
    element = _typed_list(doc)
    list_kind = str(doc["kind"])
    where = f"doc {index + 1} ({list_kind})"
    # str(): YAML keys need not be strings (``!!binary kind:`` is bytes)
    shape = [Problem(where, str(key), "unknown field" + did_you_mean(str(key), _LIST_FIELDS))
             for key in doc if key not in _LIST_FIELDS]
    if not isinstance(doc.get("metadata") or {}, Mapping):
        shape.append(Problem(where, "metadata", "must be a mapping"))
    items = doc.get("items")
    if items is None:
        items = []  # an empty listing (``items: null`` in JSON)
    if not isinstance(items, list):
        shape.append(Problem(where, "items", f"must be a list, got {type(items).__name__}"))
        items = []
    if shape:
        yield Entry(where, None, tuple(shape))
    for j, item in enumerate(items):
        yield _item(item, j, index, list_kind, element)


def _item(item: Any, j: int, index: int, list_kind: str, element: KindInfo | None) -> Entry:
    if element is not None and isinstance(item, Mapping):
        # A typed list implies its items' apiVersion and kind; API servers leave them out.
        item = {"apiVersion": element.api_version, "kind": element.kind, **item}
    label = describe(item, None) if isinstance(item, Mapping) else ""
    where = f"doc {index + 1} item {j + 1}" + (f" ({label})" if label else "")
    if element is not None and isinstance(item, Mapping):
        kind, api_version = item.get("kind"), item.get("apiVersion")
        if (kind, api_version) != (element.kind, element.api_version):
            message = (f"a {list_kind} holds only {element.kind} ({element.api_version}) "
                       f"items, not {kind} ({api_version})")
            return Entry(where, None, (Problem(where, "kind", message),))
    return Entry(where, item)
