"""Typed CRUD over gingham.model resources on any datastore backend.

A resource is stored as its manifest dict (``to_dict``) under the key that
``keys.resource_key`` spells from the kind's unique name (``KubernetesNetworkPolicy``
for ``networking.k8s.io/v1 NetworkPolicy``), without ``metadata.resourceVersion``.
On read, ``resourceVersion`` is the key's ``mod_revision`` as a string, so a
resource read, edited and replaced is compare-and-swapped against what was read.

Kubernetes NetworkPolicy and Namespace are stored as themselves: converting
them is the calculation graph's job. A namespaced resource without a namespace
goes to ``default_namespace``; the namespace need not exist.
"""

from __future__ import annotations

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
from gingham.model import InvalidResource, KindInfo, Resource, decode_document, kind_info, to_dict
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
        info = self.info(kind)
        if info.namespaced and namespace:
            prefix = keys.resource_prefix(info.name, namespace)
        else:
            prefix = keys.resource_prefix(info.name)
        items, _ = self.ds.list(prefix)
        return [self.read(kv, info) for kv in items]

    # -- writes -----------------------------------------------------------------------

    def create(self, resource: Resource) -> Resource:
        """Write a new resource; AlreadyExists if one of that kind and name is there."""
        key = self.key_of(resource)
        body = self._encode(resource, None)
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
        return self.replace_tracked(resource)[0]

    def replace_tracked(self, resource: Resource) -> tuple[Resource, KeyValue]:
        """As ``replace``, plus the key as it was before (to undo the write)."""
        key = self.key_of(resource)
        wanted = resource.metadata.resource_version
        name = self.name_of(resource)

        def step() -> tuple[Resource, KeyValue]:
            kv = self.ds.get(key)
            if kv is None:
                raise NotFound(f"{name} not found")
            revision = kv.mod_revision
            if wanted:
                revision = _parse_version(wanted)
                if revision != kv.mod_revision:
                    raise RevisionConflict(
                        f"{name} is at resourceVersion {kv.mod_revision}, not {wanted}:"
                        " re-read and retry"
                    )
            body = self._encode(resource, kv)
            try:
                new = self.ds.update(key, body, revision=revision)
            except NotFound:
                if wanted:  # the version asked for is gone
                    raise NotFound(f"{name} not found") from None
                raise RevisionConflict(key) from None  # deleted since the read
            return self._stored(body, key, new), kv

        # With a resourceVersion, the caller's read was the read: one attempt.
        return step() if wanted else self.backoff.run(name, step)

    def apply(self, resource: Resource) -> Resource:
        """Create or overwrite (``resourceVersion``, if given, is ignored)."""
        return self.apply_tracked(resource)[0]

    def apply_tracked(self, resource: Resource) -> tuple[Resource, KeyValue | None]:
        """As ``apply``, plus the key as it was before (None: it was created)."""
        key = self.key_of(resource)

        def step() -> tuple[Resource, KeyValue | None]:
            kv = self.ds.get(key)
            body = self._encode(resource, kv)
            try:
                if kv is None:
                    new = self.ds.create(key, body)
                else:
                    new = self.ds.update(key, body, revision=kv.mod_revision)
            except (AlreadyExists, NotFound):
                raise RevisionConflict(key) from None  # someone else wrote in between
            return self._stored(body, key, new), kv

        return self.backoff.run(self.name_of(resource), step)

    def delete(
        self,
        kind: str | KindInfo,
        name: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> Stored:
        """Delete and return the resource as it was; NotFound if absent.

        A stored value that is invalid is deleted like any other and comes back
        as an InvalidStoredResource (deleting it is how an operator recovers).
        """
        info = self.info(kind)
        ns = self.namespace_for(info, namespace)
        key = keys.resource_key(info.name, name, ns)
        what = describe(info, name, ns)

        def step() -> Stored:
            kv = self.ds.get(key)
            if kv is None:
                raise NotFound(f"{what} not found")
            revision = _parse_version(resource_version) if resource_version else kv.mod_revision
            try:
                self.ds.delete(key, revision=revision)
            except NotFound:
                if resource_version:
                    raise NotFound(f"{what} not found") from None
                raise RevisionConflict(key) from None  # deleted since the read
            return self.read(kv, info)

        return step() if resource_version else self.backoff.run(what, step)

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
