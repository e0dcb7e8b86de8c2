"""Typed CRUD over gingham.model resources on any datastore backend.

A resource is stored as its manifest dict (``to_dict``) under the key that
``keys.resource_key`` spells from the kind's unique name (``KubernetesNetworkPolicy``
for ``networking.k8s.io/v1 NetworkPolicy``), without ``metadata.resourceVersion``.
On read, ``resourceVersion`` is the key's ``mod_revision`` as a string, so a
resource read, edited and replaced is compare-and-swapped against what was read.

Kubernetes NetworkPolicy and Namespace are stored as themselves: converting
them is the calculation graph's job. A namespaced resource without a namespace
goes to ``default_namespace``; the namespace need not exist.

A write whose result equals what is stored is not made: an unchanged re-apply
bumps no revision, so no agent gets an event for nothing. Every write takes
``dry_run``: then everything is read and checked as for the write, and nothing
is written.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gingham.datastore import keys
from gingham.datastore.base import JSON, Datastore, KeyValue, Undecodable
from gingham.datastore.retry import Backoff
from gingham.errors import AlreadyExists, NotFound, RevisionConflict, ValidationError
from gingham.model import (
    InvalidResource,
    KindInfo,
    Resource,
    decode_document,
    kind_info,
    parse_resource,
    to_dict,
)
from gingham.timestamps import rfc3339

_Resources = list[Resource]  # spelled here: inside the class, ``list`` is a method


@dataclass(frozen=True)
class InvalidStoredResource:
    """A stored resource that does not decode or does not validate.

    What ``get_any``/``list_any``/``delete`` hand back instead of failing, so
    that an operator can see such a value (``raw``: the stored text) and
    delete it with the same commands as any other.
    """

    info: KindInfo
    key: str
    name: str
    namespace: str | None
    raw: str
    reason: str
    mod_revision: int

    @property
    def kind(self) -> str:
        return self.info.kind


Stored = Resource | InvalidStoredResource
_Stored = list[Stored]

# A read-edit-write (patch, label) that keeps losing its compare-and-swap is
# re-read and re-edited this many times before giving up: an operator's edit
# racing that often with other writers should be looked at, not hammered in.
MODIFY_ATTEMPTS = 5

# Identity a patch or label may not change; the path as messages name it.
_IDENTITY = (
    (("apiVersion",), "apiVersion"),
    (("kind",), "kind"),
    (("metadata", "name"), "metadata.name"),
    (("metadata", "namespace"), "metadata.namespace"),
    (("metadata", "uid"), "metadata.uid"),
    (("metadata", "creationTimestamp"), "metadata.creationTimestamp"),
)


@dataclass(frozen=True)
class Outcome:
    """What a write did, or with ``dry_run`` would do.

    ``resource``: as stored afterwards (dry run: as it would be stored);
    ``before``: the key as read before (None: absent, so created);
    ``changed``: False when the result equalled what was stored, and nothing
    was (or would be) written.
    """

    resource: Resource
    before: KeyValue | None
    changed: bool

    @property
    def created(self) -> bool:
        return self.before is None


class _Final(Exception):
    """Inside a compare-and-swap loop: a conflict that re-reading cannot cure (the caller
    named the revision). Carried out of the loop, then raised as RevisionConflict."""


def _same(kv: KeyValue | None, body: JSON) -> bool:
    """Whether ``body`` is exactly what ``kv`` holds (then writing it would change nothing)."""
    return kv is not None and not isinstance(kv.value, Undecodable) and kv.value == body


def _utc_now() -> str:
    return rfc3339(precision="seconds")


class ResourceStore:
    """apply / create / replace / delete / get / list of typed resources."""

    def __init__(
        self,
        ds: Datastore,
        *,
        default_namespace: str = "default",
        now: Callable[[], str] = _utc_now,
        new_uid: Callable[[], str] = lambda: str(uuid.uuid4()),
        backoff: Backoff | None = None,
    ) -> None:
        self.ds = ds
        self.backoff = backoff or Backoff(time.sleep)
        self.default_namespace = default_namespace
        self._now = now
        self._new_uid = new_uid

    # -- naming -----------------------------------------------------------------

    @staticmethod
    def info(kind: str | KindInfo) -> KindInfo:
        """The kind for any operator spelling (``gnp``, ``ippools``, ``NetworkPolicy``)."""
        return kind if isinstance(kind, KindInfo) else kind_info(kind)

    @staticmethod
    def info_of(resource: Resource) -> KindInfo:
        return kind_info(resource.kind, resource.api_version)

    def namespace_for(self, info: KindInfo, namespace: str | None) -> str | None:
        if not info.namespaced:
            if namespace:
                raise ValidationError(
                    f"{info.kind} is cluster-scoped: no namespace allowed",
                    location="metadata.namespace",
                )
            return None
        return namespace or self.default_namespace

    def key(self, kind: str | KindInfo, name: str, namespace: str | None = None) -> str:
        info = self.info(kind)
        return keys.resource_key(info.name, name, self.namespace_for(info, namespace))

    def key_of(self, resource: Resource) -> str:
        return self.key(self.info_of(resource), resource.metadata.name, resource.metadata.namespace)

    # -- encoding -----------------------------------------------------------------

    def _encode(self, resource: Resource, existing: KeyValue | None) -> JSON:
        body = to_dict(resource)
        meta: dict[str, Any] = dict(body.get("metadata") or {})
        meta.pop("resourceVersion", None)
        info = self.info_of(resource)
        if info.namespaced:
            meta["namespace"] = self.namespace_for(info, meta.get("namespace"))
        found = existing.value.get("metadata") if existing is not None else None
        # Only well-formed identity carries over from what was stored (it may be garbage).
        old = {
            k: v
            for k, v in (found.items() if isinstance(found, dict) else ())
            if k in ("uid", "creationTimestamp") and isinstance(v, str) and v
        }
        # Server-set identity survives updates; a new object gets its own.
        meta["uid"] = old.get("uid") or meta.get("uid") or self._new_uid()
        meta["creationTimestamp"] = (
            old.get("creationTimestamp") or meta.get("creationTimestamp") or self._now()
        )
        body["metadata"] = meta
        return body

    def decode(self, kv: KeyValue) -> Resource:
        """The typed resource stored in ``kv``, with ``resourceVersion`` set.

        ValidationError (naming the key) if it does not decode or validate.
        """
        found = self._decode(kv)
        if isinstance(found, InvalidResource):
            raise ValidationError(f"stored resource is invalid: {found.reason}", location=kv.key)
        return found

    def _decode(self, kv: KeyValue) -> Resource | InvalidResource:
        if isinstance(kv.value, Undecodable):
            return InvalidResource(f"stored value does not decode: {kv.value.reason}")
        body = dict(kv.value)
        meta = body.get("metadata")
        if isinstance(meta, dict):
            body["metadata"] = {**meta, "resourceVersion": str(kv.mod_revision)}
        return decode_document(body)

    def read(self, kv: KeyValue, info: KindInfo | None = None) -> Stored:
        """``kv`` as a resource, or as an InvalidStoredResource: never raises on bad data."""
        found = self._decode(kv)
        if not isinstance(found, InvalidResource):
            return found
        value = kv.value
        if isinstance(value, Undecodable):
            raw = value.raw
        else:
            try:
                raw = json.dumps(value, indent=2, ensure_ascii=False)
            except (TypeError, ValueError, RecursionError):
                raw = repr(value)
        kind, name, namespace = _split_key(kv.key, info)
        return InvalidStoredResource(
            info=kind,
            key=kv.key,
            name=name,
            namespace=namespace,
            raw=raw,
            reason=found.reason,
            mod_revision=kv.mod_revision,
        )

    # -- reads ----------------------------------------------------------------------

    def get(self, kind: str | KindInfo, name: str, namespace: str | None = None) -> Resource:
        info = self.info(kind)
        kv = self.ds.get(self.key(info, name, namespace))
        if kv is None:
            raise NotFound(f"{describe(info, name, self.namespace_for(info, namespace))} not found")
        return self.decode(kv)

    def list(self, kind: str | KindInfo, namespace: str | None = None) -> _Resources:
        """Resources of one kind sorted by (namespace, name).

        For a namespaced kind, ``namespace`` limits the list to one namespace;
        None lists every namespace.
        """
        return self.list_with_revision(kind, namespace)[0]

    def list_with_revision(
        self, kind: str | KindInfo, namespace: str | None = None
    ) -> tuple[_Resources, int]:
        """As ``list``, plus the store revision it was read at (to watch from + 1)."""
        info = self.info(kind)
        if info.namespaced and namespace:
            prefix = keys.resource_prefix(info.name, namespace)
        else:
            prefix = keys.resource_prefix(info.name)
        items, revision = self.ds.list(prefix)
        return [self.decode(kv) for kv in items], revision

    def get_any(self, kind: str | KindInfo, name: str, namespace: str | None = None) -> Stored:
        """As ``get``, but a stored value that is invalid comes back as InvalidStoredResource."""
        info = self.info(kind)
        kv = self.ds.get(self.key(info, name, namespace))
        if kv is None:
            raise NotFound(f"{describe(info, name, self.namespace_for(info, namespace))} not found")
        return self.read(kv, info)

    def list_any(self, kind: str | KindInfo, namespace: str | None = None) -> _Stored:
        """As ``list``, with invalid stored values as InvalidStoredResource in their place."""
        return self.list_any_with_revision(kind, namespace)[0]

    def list_any_with_revision(
        self, kind: str | KindInfo, namespace: str | None = None
    ) -> tuple[_Stored, int]:
        """As ``list_any``, plus the store revision it was read at."""
        info = self.info(kind)
        if info.namespaced and namespace:
            prefix = keys.resource_prefix(info.name, namespace)
        else:
            prefix = keys.resource_prefix(info.name)
        items, revision = self.ds.list(prefix)
        return [self.read(kv, info) for kv in items], revision

    def planned(self, resource: Resource) -> tuple[KeyValue | None, JSON]:
        """The key as stored now, and the value an apply of ``resource`` would store there."""
        kv = self.ds.get(self.key_of(resource))
        return kv, self._encode(resource, kv)

    # -- writes -----------------------------------------------------------------------

    def create(self, resource: Resource, *, dry_run: bool = False) -> Resource:
        """Write a new resource; AlreadyExists if one of that kind and name is there."""
        key = self.key_of(resource)
        body = self._encode(resource, None)
        if dry_run:
            if self.ds.get(key) is not None:
                raise AlreadyExists(f"{self.name_of(resource)} already exists")
            return self._stored(body, key, 0)
        try:
            revision = self.ds.create(key, body)
        except AlreadyExists:
            raise AlreadyExists(f"{self.name_of(resource)} already exists") from None
        return self._stored(body, key, revision)

    def replace(self, resource: Resource) -> Resource:
        """Overwrite an existing resource; NotFound if absent.

        With ``metadata.resourceVersion`` set, only if the stored resource is at
        that version (RevisionConflict otherwise); without, the latest wins.
        """
        return self.replace_tracked(resource).resource

    def replace_tracked(self, resource: Resource, *, dry_run: bool = False) -> Outcome:
        """As ``replace``, saying what was there before (to undo the write) and whether
        anything changed."""
        key = self.key_of(resource)
        wanted = resource.metadata.resource_version
        name = self.name_of(resource)

        def step() -> Outcome:
            kv = self.ds.get(key)
            if kv is None:
                raise NotFound(f"{name} not found")
            if wanted:
                _check_version(name, kv, wanted)
            return self._write(key, self._encode(resource, kv), kv, dry_run)

        return self._run(name, step, retry=not wanted)

    def apply(self, resource: Resource) -> Resource:
        """Create or overwrite; with ``metadata.resourceVersion`` set, an existing resource
        only if it is at that version (RevisionConflict otherwise, nothing written)."""
        return self.apply_tracked(resource).resource

    def apply_tracked(self, resource: Resource, *, dry_run: bool = False) -> Outcome:
        """As ``apply``, saying what was there before (None: created) and whether anything
        changed.

        A resourceVersion guards the overwrite of what the caller read; an absent
        resource is created whatever version the manifest carries (as calicoctl
        does: an export applies to another datastore).
        """
        key = self.key_of(resource)
        wanted = resource.metadata.resource_version
        name = self.name_of(resource)

        def step() -> Outcome:
            kv = self.ds.get(key)
            if kv is not None and wanted:
                _check_version(name, kv, wanted)
            return self._write(key, self._encode(resource, kv), kv, dry_run)

        # With a resourceVersion, the caller's read was the read: one attempt.
        return self._run(name, step, retry=not wanted)

    def modify(
        self,
        kind: str | KindInfo,
        name: str,
        namespace: str | None,
        edit: Callable[[dict[str, Any]], Any],
        *,
        check: Callable[[Resource], None] | None = None,
        dry_run: bool = False,
    ) -> Outcome:
        """Read, edit, validate and compare-and-swap one resource (patch, label).

        ``edit`` gets the stored manifest (with ``metadata.resourceVersion``, so
        that an edit setting it pins the version) and returns the new one; it
        may raise ValidationError. The result is validated as a manifest
        (ManifestError naming the field) and by ``check``; it may not change
        identity (kind, name, namespace, uid, creationTimestamp). A lost race
        re-reads and edits again, up to MODIFY_ATTEMPTS times.
        """
        info = self.info(kind)
        ns = self.namespace_for(info, namespace)
        key = keys.resource_key(info.name, name, ns)
        what = describe(info, name, ns)

        def step() -> Outcome:
            kv = self.ds.get(key)
            if kv is None:
                raise NotFound(f"{what} not found")
            if isinstance(kv.value, Undecodable):
                raise ValidationError(
                    f"stored value does not decode ({kv.value.reason}): replace it with"
                    " apply, or remove it with delete",
                    location=what,
                )
            doc = copy.deepcopy(dict(kv.value))
            current = str(kv.mod_revision)
            if isinstance(doc.get("metadata"), dict):
                doc["metadata"]["resourceVersion"] = current
            new = edit(copy.deepcopy(doc))
            if not isinstance(new, dict):
                raise ValidationError(
                    f"the result must be a mapping, got {type(new).__name__}", location=what
                )
            _check_identity(what, doc, new)
            meta = new.get("metadata")
            pinned = meta.get("resourceVersion") if isinstance(meta, dict) else None
            if pinned is not None and str(pinned) != current:
                raise _Final(_modified(what, kv.mod_revision, str(pinned)))
            resource = parse_resource(new)
            if check is not None:
                check(resource)
            return self._write(key, self._encode(resource, kv), kv, dry_run)

        attempts = min(self.backoff.attempts, MODIFY_ATTEMPTS)
        backoff = dataclasses.replace(self.backoff, attempts=attempts)
        try:
            return backoff.run(what, step)
        except _Final as exc:
            raise RevisionConflict(str(exc)) from None

    def _write(self, key: str, body: JSON, kv: KeyValue | None, dry_run: bool) -> Outcome:
        """Store ``body`` at ``key`` over ``kv`` (as read; None: absent) by compare-and-swap,
        unless it is what ``kv`` holds already or this is a dry run."""
        if _same(kv, body):
            assert kv is not None
            return Outcome(self._stored(body, key, kv.mod_revision), kv, changed=False)
        if dry_run:
            return Outcome(self._stored(body, key, kv.mod_revision if kv else 0), kv, True)
        try:
            if kv is None:
                revision = self.ds.create(key, body)
            else:
                revision = self.ds.update(key, body, revision=kv.mod_revision)
        except (AlreadyExists, NotFound):
            raise RevisionConflict(key) from None  # someone else wrote in between
        return Outcome(self._stored(body, key, revision), kv, changed=True)

    def _run(self, what: str, step: Callable[[], Outcome], *, retry: bool) -> Outcome:
        if retry:
            return self.backoff.run(what, step)
        try:
            return step()
        except _Final as exc:
            raise RevisionConflict(str(exc)) from None

    def delete(
        self,
        kind: str | KindInfo,
        name: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        dry_run: bool = False,
        only_if: Callable[[Stored], bool] | None = None,
    ) -> Stored:
        """Delete and return the resource as it was; NotFound if absent.

        A stored value that is invalid is deleted like any other and comes back
        as an InvalidStoredResource (deleting it is how an operator recovers).
        ``only_if``: delete only if the value read passes it (NotFound saying
        so otherwise); the delete is a compare-and-swap on that read, so what
        was checked is what goes.
        """
        info = self.info(kind)
        ns = self.namespace_for(info, namespace)
        key = keys.resource_key(info.name, name, ns)
        what = describe(info, name, ns)

        def step() -> Stored:
            kv = self.ds.get(key)
            if kv is None:
                raise NotFound(f"{what} not found")
            if resource_version:
                _check_version(what, kv, resource_version)
            found = self.read(kv, info)
            if only_if is not None and not only_if(found):
                raise NotFound(f"{what} no longer matches")
            if dry_run:
                return found
            try:
                self.ds.delete(key, revision=kv.mod_revision)
            except NotFound:
                raise RevisionConflict(key) from None  # changed or deleted since the read
            return found

        if not resource_version:
            return self.backoff.run(what, step)
        try:
            return step()
        except RevisionConflict:
            # The named version was read and then lost: gone, or changed since.
            if self.ds.get(key) is None:
                raise NotFound(f"{what} not found") from None
            raise
        except _Final as exc:
            raise RevisionConflict(str(exc)) from None

    def delete_resource(self, resource: Resource) -> Stored:
        """Delete the resource a manifest names (honouring its resourceVersion)."""
        return self.delete(
            self.info_of(resource),
            resource.metadata.name,
            resource.metadata.namespace,
            resource_version=resource.metadata.resource_version,
        )

    # -- helpers -------------------------------------------------------------------------

    def exists(self, resource: Resource) -> bool:
        return self.ds.get(self.key_of(resource)) is not None

    def _stored(self, body: JSON, key: str, revision: int) -> Resource:
        return self.decode(KeyValue(key, body, revision, revision))

    def name_of(self, resource: Resource) -> str:
        """How messages name ``resource``: ``NetworkPolicy shop/web``."""
        info = self.info_of(resource)
        return describe(info, resource.metadata.name, self.namespace_for(info, resource.namespace))


def describe(info: KindInfo, name: str, namespace: str | None) -> str:
    """``NetworkPolicy default/allow-dns``, ``IPPool pool-a``: how messages name a resource."""
    kind = info.kind if info.kind == info.name else f"{info.kind} ({info.api_version})"
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _split_key(key: str, info: KindInfo | None) -> tuple[KindInfo, str, str | None]:
    """(kind, name, namespace) spelled by a resource key (see ``keys.resource_key``)."""
    rest = key[len(keys.RESOURCES) :] if key.startswith(keys.RESOURCES) else key
    kind_name, _, tail = rest.partition("/")
    if info is None:
        info = kind_info(kind_name)
    if info.namespaced and "/" in tail:
        namespace, _, name = tail.partition("/")
        return info, name, namespace
    return info, tail, None


def _modified(what: str, stored: int, wanted: str) -> str:
    return (
        f"{what}: the object has been modified (stored at resourceVersion {stored}, not"
        f" {wanted}); read it again and retry"
    )


def _check_version(what: str, kv: KeyValue, wanted: str) -> None:
    """Raise (out of any retry loop) unless ``kv`` is at the version the caller read."""
    if _parse_version(wanted) != kv.mod_revision:
        raise _Final(_modified(what, kv.mod_revision, wanted))


def _at(doc: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _check_identity(what: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Refuse an edit that would make the resource another one (or forge server-set identity)."""
    for path, name in _IDENTITY:
        old, new = _at(before, path), _at(after, path)
        if old != new:
            shown = "absent" if new is None else repr(new)
            raise ValidationError(f"cannot be changed (stored: {old!r}, edit: {shown})",
                                  location=f"{what}: {name}")


def _parse_version(version: str) -> int:
    try:
        value = int(version)
    except ValueError:
        raise ValidationError(
            f"resourceVersion must be a number, got {version!r}",
            location="metadata.resourceVersion",
        ) from None
    if value <= 0:
        raise ValidationError(
            f"resourceVersion must be positive, got {version!r}",
            location="metadata.resourceVersion",
        )
    return value


def apply_manifests(url: str, text: str) -> None:
    """``gingham apply`` of YAML ``text`` to the datastore at ``url`` (the lab's tools and
    tests apply policy this way)."""
    from gingham.datastore import open_datastore
    from gingham.model import load_manifests

    ds = open_datastore(url)
    try:
        store = ResourceStore(ds)
        for res in load_manifests(text):
            store.apply(res)
    finally:
        ds.close()
