"""Every manifest of the corpus loads, covers every kind, and reads back equal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gingham.model import (
    Namespace,
    Resource,
    all_kinds,
    dump_yaml,
    load_manifests,
    parse_resource,
    to_dict,
)
from gingham.model.yamlio import load_yaml_documents

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
FILES = sorted(CORPUS.rglob("*.yaml"))
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def _resources() -> list[Resource]:
    return [r for f in FILES for r in load_manifests(f.read_text())]


def test_corpus_exists() -> None:
    assert len(FILES) >= 10


def test_every_kind_is_in_the_corpus() -> None:
    seen = {type(r).__name__ for r in _resources()}
    assert {info.name for info in all_kinds()} <= seen


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_file_round_trips(path: Path) -> None:
    resources = load_manifests(path.read_text())
    assert resources
    for resource in resources:
        assert parse_resource(to_dict(resource)) == resource
    assert load_manifests(dump_yaml(resources)) == resources
    # A second trip changes nothing in the text either.
    assert dump_yaml(load_manifests(dump_yaml(resources))) == dump_yaml(resources)


def _documents(path: Path) -> list[dict[str, Any]]:
    docs = []
    for doc in load_yaml_documents(path.read_text()):
        docs.extend(doc["items"] if doc.get("kind") == "List" else [doc])
    return docs


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_read_back_has_the_fields_that_were_written(path: Path) -> None:
    """Defaults filled in on parse are not written back; nothing written is lost."""
    for doc in _documents(path):
        out = to_dict(parse_resource(doc))
        assert set(out) == set(doc) or isinstance(parse_resource(doc), Namespace)
        assert set(out.get("spec", {})) == set(doc.get("spec", {}))
        assert out["metadata"]["name"] == doc["metadata"]["name"]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_examples_load_and_round_trip(path: Path) -> None:
    resources = load_manifests(path.read_text())
    assert resources
    assert load_manifests(dump_yaml(resources)) == resources
