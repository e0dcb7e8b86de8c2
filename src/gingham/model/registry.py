"""The kinds gingham knows (``kinds.py``) indexed, and dispatch from ``apiVersion``+``kind``.

``parse_resource`` is the one door from a plain dict to a typed resource: it
turns every pydantic error into a :class:`~gingham.model.meta.Problem` with a
dotted path in the manifest's own (camelCase) spelling (``translate.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pydantic

from gingham.model.kinds import KINDS
from gingham.model.meta import ManifestError, Problem, Resource
from gingham.model.translate import join_path, loc_to_path, translate


@dataclass(frozen=True, slots=True)
class KindInfo:
    """What the CLI and the datastore need to know about one kind.

    ``name`` is unique across API groups (``KubernetesNetworkPolicy``) and is
    what datastore keys use; ``kind`` is what manifests say (``NetworkPolicy``).
    """

    name: str
    kind: str
    api_version: str
    namespaced: bool
    plural: str
    short_names: tuple[str, ...]
    model: type[Resource]


_KINDS: list[KindInfo] = []
_BY_API_KIND: dict[tuple[str, str], KindInfo] = {}
_BY_NAME: dict[str, KindInfo] = {}


def _register(model: type[Resource], plural: str, short_names: tuple[str, ...]) -> None:
    fields = model.model_fields
    info = KindInfo(
        name=model.__name__,
        kind=str(fields["kind"].default),
        api_version=str(fields["api_version"].default),
        namespaced=model.NAMESPACED,
        plural=plural,
        short_names=short_names,
        model=model,
    )
    _KINDS.append(info)
    _BY_API_KIND[(info.api_version, info.kind)] = info
    for alias in (info.name, info.kind if info.name == info.kind else "", plural, *short_names):
        if alias:
            _BY_NAME.setdefault(alias.lower(), info)


for _entry in KINDS:
    _register(*_entry)


def all_kinds() -> tuple[KindInfo, ...]:
    return tuple(_KINDS)


def kind_info(kind: str, api_version: str | None = None) -> KindInfo:
    """The kind named by a manifest (``kind`` + ``apiVersion``) or by an operator.

    Without ``api_version`` any spelling works, case-insensitively: the kind
    (``GlobalNetworkPolicy``), the plural (``globalnetworkpolicies``) or a short
    name (``gnp``); a bare ``NetworkPolicy`` means Calico's. Raises
    ``gingham.errors.ValidationError`` for anything unknown.
    """
    if api_version is not None:
        info = _BY_API_KIND.get((api_version, kind))
        if info is None:
            raise ManifestError([Problem("", "kind", _unknown(kind, api_version))])
        return info
    info = _BY_NAME.get(kind.lower())
    if info is None:
        raise ManifestError([Problem("", "", f"unknown resource type {kind!r}")])
    return info


def _unknown(kind: str, api_version: str) -> str:
    elsewhere = sorted(i.api_version for i in _KINDS if i.kind == kind)
    if elsewhere:
        return (f"kind {kind!r} is not in apiVersion {api_version!r}; "
                f"use {' or '.join(repr(a) for a in elsewhere)}")
    known = ", ".join(sorted({i.kind for i in _KINDS}))
    return f"unknown kind {kind!r} (known kinds: {known})"


def describe(doc: Mapping[str, Any], index: int | None) -> str:
    """``doc 2 (GlobalNetworkPolicy allow-dns)``; ``index`` is 0-based, shown 1-based."""
    kind = doc.get("kind")
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    what = " ".join(str(x) for x in (kind, name) if isinstance(x, str) and x)
    where = f"doc {index + 1}" if index is not None else ""
    if where and what:
        return f"{where} ({what})"
    return where or what


def check_resource(doc: Any, location: str, base: str = "") -> tuple[Resource | None,
                                                                      list[Problem]]:
    """Parse one document; return the resource or the problems (never both)."""
    if not isinstance(doc, Mapping):
        return None, [Problem(location, base, f"a resource must be a mapping, got "
                                              f"{type(doc).__name__}")]
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    missing = [Problem(location, join_path(base, f), "required field is missing")
               for f, v in (("apiVersion", api_version), ("kind", kind)) if v is None]
    if missing:
        return None, missing
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None, [Problem(location, base, "apiVersion and kind must be strings")]
    try:
        info = kind_info(kind, api_version)
    except ManifestError as exc:
        return None, [Problem(location, join_path(base, p.path), p.message)
                      for p in exc.problems]
    body, problems = _without_status(info, doc, location, base)
    try:
        resource = info.model.model_validate(body)
    except pydantic.ValidationError as exc:
        return None, problems + translate(exc, location, base, info.model)
    return (None, problems) if problems else (resource, [])


STATUS_MESSAGE: Final = "status is written by the system, not by manifests; remove it"


def _without_status(info: KindInfo, doc: Mapping[str, Any], location: str,
                    base: str) -> tuple[dict[str, Any], list[Problem]]:
    """``doc`` without the ``status`` a kind does not have.

    kubectl exports carry ``status: {}`` for kinds whose status is empty, which
    says nothing and is dropped; a status with content describes what a system
    observed, which a manifest cannot set, and is refused. Kinds with a status
    field of their own (Namespace) keep theirs.
    """
    body = dict(doc)
    if "status" not in body or "status" in info.model.model_fields:
        return body, []
    status = body.pop("status")
    if status is None or status == {}:
        return body, []
    return body, [Problem(location, join_path(base, "status"), STATUS_MESSAGE)]


def parse_resource(doc: Mapping[str, Any], index: int | None = None) -> Resource:
    """A typed resource from one manifest dict, or ManifestError listing every problem.

    ``index`` is the document's 0-based position in its file; messages show it
    1-based (``doc 1`` is the first document).
    """
    resource, problems = check_resource(doc, describe(doc, index) if isinstance(doc, Mapping)
                                        else (f"doc {index + 1}" if index is not None else ""))
    if resource is None:
        raise ManifestError(problems)
    return resource


@dataclass(frozen=True, slots=True)
class InvalidResource:
    """A stored document that does not validate, as readers of the datastore see it.

    ``document`` is the stored mapping (None when the stored bytes were not a JSON
    object at all), kept so that a reader can still salvage what is readable, such
    as the selector of a policy it must fail closed for.
    """

    reason: str
    document: Mapping[str, Any] | None = None


def decode_document(doc: Mapping[str, Any]) -> Resource | InvalidResource:
    """``parse_resource`` for documents read back from a datastore: never raises on bad data.

    Whatever a newer writer, a buggy client or an attacker stored, the answer is
    a resource or an :class:`InvalidResource` naming the first problems.
    """
    try:
        return parse_resource(doc)
    except ManifestError as exc:
        shown = "; ".join(str(Problem("", p.path, p.message)) for p in exc.problems[:3])
        more = f" (and {len(exc.problems) - 3} more)" if len(exc.problems) > 3 else ""
        return InvalidResource(shown + more, doc)
    except (RecursionError, MemoryError) as exc:
        return InvalidResource(f"cannot be read: {type(exc).__name__}", doc)
    except Exception as exc:  # a validator bug must cost this document, not its reader
        return InvalidResource(f"cannot be read: {type(exc).__name__}: {exc}", doc)


def salvage_document(doc: Mapping[str, Any]) -> tuple[Resource, list[str]] | None:
    """The resource ``doc`` describes once the fields this version does not know are
    dropped, with their paths; None if anything else is wrong with it.

    For documents a newer version wrote. Only for kinds where ignoring an unknown
    field cannot widen a firewall (readers decide which: never policies).
    """
    resource, problems = check_resource(doc, "")
    if resource is not None:
        return resource, []
    if not problems or any(not p.message.startswith("unknown field") for p in problems):
        return None
    info = kind_info(str(doc.get("kind")), str(doc.get("apiVersion")))
    stripped: Any = copy.deepcopy(dict(doc))
    dropped: list[str] = []
    for _ in range(4):  # unknown fields inside unknown fields' neighbours: a few rounds
        try:
            return info.model.model_validate(stripped), dropped
        except pydantic.ValidationError as exc:
            errors = exc.errors()
            if any(e["type"] != "extra_forbidden" for e in errors):
                return None
            for error in errors:
                if not _remove(stripped, error["loc"]):
                    return None
                dropped.append(loc_to_path(error["loc"]))
        except (RecursionError, ValueError, TypeError):
            return None
    return None


def _remove(doc: Any, loc: Sequence[int | str]) -> bool:
    for step in loc[:-1]:
        in_dict = isinstance(doc, dict) and step in doc
        in_list = isinstance(doc, list) and isinstance(step, int) and 0 <= step < len(doc)
        if not (in_dict or in_list):
            return False
        doc = doc[step]
    if isinstance(doc, dict) and loc and loc[-1] in doc:
        del doc[loc[-1]]
        return True
    return False
