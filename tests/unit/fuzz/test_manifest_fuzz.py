"""Fuzz the manifest loader: every input loads or is refused with a ManifestError.

Three sources of input: real documents from tests/corpus with one field
replaced, removed or added (so most of a document is valid and the loader
gets deep into every kind's validators), random JSON-like documents under a
real apiVersion/kind, and raw text. What loads must read back equal after
``dump_yaml``; what is refused must say where (document and field path).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gingham.errors import ValidationError
from gingham.model import ManifestError, dump_yaml, load_manifests, to_dict
from gingham.model.registry import all_kinds

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


def _corpus_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(CORPUS.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                docs.extend(doc["items"] if doc.get("kind") == "List" else [doc])
    return docs


DOCS = _corpus_docs()
KINDS = [(k.api_version, k.kind) for k in all_kinds()]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=12), st.sampled_from(["", "all()", "198.18.0.0/16", "2001:db8::/64", "80",
                                           "1:30", "TCP", "Allow", "-1", "\x00", "a;rm -rf /"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc = json.loads(json.dumps(draw(st.sampled_from(DOCS)), default=str))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
        else:
            parent.append(draw(values))
    return doc


def _load_or_refuse(text: str) -> None:
    try:
        resources = load_manifests(text)
    except ManifestError as exc:
        assert exc.problems, "a ManifestError without problems"
        for problem in exc.problems:
            assert problem.message, exc
        return
    again = load_manifests(dump_yaml(resources)) if resources else []
    assert [to_dict(r) for r in again] == [to_dict(r) for r in resources]


@FUZZ
@given(mutated_docs())
def test_mutated_corpus_documents_load_or_are_refused(doc: dict[str, Any]) -> None:
    _load_or_refuse(json.dumps(doc))


@FUZZ
@given(st.sampled_from(KINDS), st.dictionaries(st.text(max_size=10), values, max_size=5), values)
def test_random_documents_of_every_kind(kind: tuple[str, str], spec: dict[str, Any],
                                        meta: Any) -> None:  # fmt: skip
    doc = {"apiVersion": kind[0], "kind": kind[1], "metadata": meta, "spec": spec}
    _load_or_refuse(json.dumps(doc))


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    try:
        _load_or_refuse(text)
    except ValidationError as exc:  # e.g. a YAML syntax error, reported with its line
        assert str(exc)


YAML_PIECES = [
    "---\n",
    "apiVersion: projectcalico.org/v3\n",
    "kind: IPPool\n",
    "kind: List\n",
    "items:\n",
    "- ",
    "metadata: {name: a}\n",
    "spec:\n",
    "  cidr: 198.18.0.0/16\n",
    "&a ",
    "*a ",
    "!!python/object:os.system ",
    "? ",
    ": ",
    "[",
    "]",
    "{",
    "}",
    "'",
    '"',
    "\t",
    "  ",
    "%YAML 1.1\n",
    "!!binary ",
    "<<: *a\n",
    "0o17",
    "1:30\n",
]


@FUZZ
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=30).map("".join))
@example("kind: List\n!!binary kind: IPPool\n")  # a bytes key in a list document
def test_yaml_token_soup(text: str) -> None:
    try:
        _load_or_refuse(text)
    except ValidationError as exc:
        assert str(exc)


def test_python_tags_are_refused_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f"!!python/object/apply:os.system ['touch {marker}']\n"
    with contextlib.suppress(ValidationError):
        load_manifests(text)
    assert not marker.exists()


def test_billion_laughs_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        ref = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{ref}]")
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n" + "\n".join(lines) + "\n"
    try:
        load_manifests(text)
    except ValidationError as exc:
        assert str(exc)
