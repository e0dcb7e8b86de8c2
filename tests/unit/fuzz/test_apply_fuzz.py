"""``gingham apply`` with random files: all written and read back equal, or nothing written.

Each example is a file of corpus documents under fresh random names and
labels, sometimes with one document broken by a random mutation. The CLI
runs in-process (click's runner) against a fresh sqlite file.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gingham.cli.main import cli
from gingham.datastore import open_datastore
from gingham.model import ManifestError, kind_info, load_manifests, to_dict

from .test_manifest_fuzz import DOCS, mutated_docs

names = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4})?", fullmatch=True)
label_keys = st.from_regex(r"([a-z]{1,5}\.io/)?[a-z][a-z0-9_.\-]{0,6}[a-z0-9]", fullmatch=True)
label_values = st.from_regex(r"([A-Za-z0-9]([A-Za-z0-9_.\-]{0,6}[A-Za-z0-9])?)?", fullmatch=True)
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def renamed_doc(draw: st.DrawFn) -> dict[str, Any]:
    doc = json.loads(json.dumps(draw(st.sampled_from(DOCS)), default=str))
    meta = doc.setdefault("metadata", {})
    meta["name"] = draw(names)
    if "namespace" in meta:
        meta["namespace"] = draw(st.sampled_from(["default", "shop", "ns-a"]))
    if doc["kind"] != "Namespace" or draw(st.booleans()):
        meta["labels"] = draw(st.dictionaries(label_keys, label_values, max_size=3))
    return doc


def _identity(doc: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = doc.get("metadata") or {}
    return (doc["apiVersion"], doc["kind"], meta.get("namespace", ""), meta["name"])


def _dump(ds_url: str) -> dict[str, Any]:
    ds = open_datastore(ds_url, create=True)
    try:
        items, _ = ds.list("/")
        return {kv.key: kv.value for kv in items}
    finally:
        ds.close()


def _get_back(run: Any, doc: dict[str, Any]) -> dict[str, Any]:
    kind = "knp" if doc["apiVersion"] == "networking.k8s.io/v1" else doc["kind"]
    args = ["get", kind, doc["metadata"]["name"], "-o", "json"]
    if doc["metadata"].get("namespace"):
        args += ["-n", doc["metadata"]["namespace"]]
    result = run(*args)
    assert result.exit_code == 0, result.output
    back: dict[str, Any] = json.loads(result.output)
    return back


def _with_namespace(resource: Any) -> dict[str, Any]:
    """The document as stored: apply puts a namespaced resource naming none in 'default'."""
    doc = to_dict(resource)
    if kind_info(resource.kind, resource.api_version).namespaced:
        doc["metadata"].setdefault("namespace", "default")
    return doc


def _meaning(doc: dict[str, Any]) -> dict[str, Any]:
    drop = ("resourceVersion", "uid", "creationTimestamp")
    meta = {k: v for k, v in doc["metadata"].items() if k not in drop}
    return dict(doc, metadata=meta)


@FUZZ
@given(
    st.lists(renamed_doc(), min_size=1, max_size=6, unique_by=_identity),
    st.one_of(st.none(), mutated_docs()),
    st.integers(0, 6),
)
def test_apply_writes_everything_or_nothing(
    docs: list[dict[str, Any]], extra: dict[str, Any] | None, where: int
) -> None:
    if extra is not None:
        docs = [*docs[:where], extra, *docs[where:]]
    text = "\n---\n".join(json.dumps(d) for d in docs)
    try:
        expected = load_manifests(text)
    except ManifestError:
        expected = None
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite://{Path(tmp) / 'gingham.db'}"
        runner = CliRunner()

        def run(*args: str, input: str | None = None) -> Any:
            return runner.invoke(cli, ["--datastore", url, *args], input=input)

        before = _dump(url)
        result = run("apply", "-f", "-", input=text)
        assert "Traceback" not in result.output
        if expected is None:
            assert result.exit_code == 1, result.output
            assert "nothing was written" in result.output
            assert _dump(url) == before
            return
        if result.exit_code == 1 and "spec.interfaceName" in result.output:
            # apply's one check beyond the model: an endpoint whose interface its
            # node's agent would not program. Refused whole, like a model error.
            assert "nothing was written" in result.output
            assert _dump(url) == before
            return
        # Documents naming the same resource twice: the last one wins.
        last = {_identity(d): d for d in map(_with_namespace, expected)}
        assert result.exit_code == 0, result.output
        for doc in last.values():
            assert _meaning(_get_back(run, doc)) == _meaning(doc)
