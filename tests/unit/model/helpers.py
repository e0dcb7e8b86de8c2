"""Small builders for model tests."""

from __future__ import annotations

from typing import Any

import pytest

from gingham.model import ManifestError, Resource, parse_resource

API = "projectcalico.org/v3"


def doc(kind: str, spec: dict[str, Any] | None = None, name: str = "x",
        namespace: str | None = None, api: str = API, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    out: dict[str, Any] = {"apiVersion": api, "kind": kind, "metadata": metadata}
    if spec is not None:
        out["spec"] = spec
    out.update(extra)
    return out


def problems(document: dict[str, Any]) -> dict[str, str]:
    """path -> message of every problem parse_resource reports (it must report some)."""
    with pytest.raises(ManifestError) as info:
        parse_resource(document)
    return {p.path: p.message for p in info.value.problems}


def ok(document: dict[str, Any]) -> Resource:
    return parse_resource(document)
