"""sqlite-only behaviour: URL parsing, lazy lease expiry with an injected clock,
automatic history compaction, prefix ranges, several handles on one file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gingham.datastore import EventType, open_datastore, redact_url
from gingham.datastore.sqlite import SqliteDatastore, prefix_end
from gingham.errors import NotFound, ResyncRequired, ValidationError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_prefix_end() -> None:
    assert prefix_end("/a/") == "/a0"
    assert prefix_end("") is None
    assert prefix_end("a\U0010ffff") == "b"
    for key in ("/a/", "/a/b", "/a/\U0010ffff", "/a/ü"):
        assert "/a/" <= key < "/a0"
        assert b"/a/" <= key.encode() < b"/a0"


def test_lease_expiry_is_lazy_and_complete(tmp_path: Path) -> None:
    clock = Clock()
    ds = SqliteDatastore(tmp_path / "db", clock=clock)
    try:
        lease = ds.grant_lease(10)
        r1 = ds.create("/l/a", {}, lease=lease)
        ds.create("/l/b", {}, lease=lease)
        ds.create("/l/c", {})
        clock.now += 9
        ds.keepalive(lease)  # now good until +19
        clock.now += 9
        assert [kv.key for kv in ds.list("/l/")[0]] == ["/l/a", "/l/b", "/l/c"]
        clock.now += 2
        # Any read notices the overdue lease and deletes its keys.
        assert [kv.key for kv in ds.list("/l/")[0]] == ["/l/c"]
        with pytest.raises(NotFound):
            ds.keepalive(lease)
        with ds.watch("/l/", start_revision=r1) as watch:
            events = watch.next_batch(1.0)
        deletes = [(e.key, e.type) for e in events if e.type is EventType.DELETE]
        assert deletes == [("/l/a", EventType.DELETE), ("/l/b", EventType.DELETE)]
    finally:
        ds.close()


def test_automatic_compaction(tmp_path: Path) -> None:
    ds = open_datastore(f"sqlite://{tmp_path / 'db'}?history=50")
    try:
        rev = ds.create("/k", {"n": 0})
        first = rev
        for n in range(1, 1100):
            rev = ds.update("/k", {"n": n}, revision=rev)
        with pytest.raises(ResyncRequired), ds.watch("/", start_revision=first) as watch:
            watch.next_batch(1.0)
        with ds.watch("/", start_revision=rev - 10) as watch:
            assert len(watch.next_batch(1.0)) == 11
    finally:
        ds.close()


def test_two_handles_one_file(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'db'}"
    a, b = open_datastore(url), open_datastore(url)
    try:
        rev = a.create("/x", {"v": 1})
        kv = b.get("/x")
        assert kv is not None and kv.mod_revision == rev
        assert b.revision() == a.revision() == rev
    finally:
        a.close()
        b.close()


def test_watch_skips_unrelated_revisions(tmp_path: Path) -> None:
    ds = open_datastore(f"sqlite://{tmp_path / 'db'}")
    try:
        start = ds.revision() + 1
        for i in range(30):
            ds.create(f"/other/{i}", {})
        r = ds.create("/mine/a", {})
        with ds.watch("/mine/", start_revision=start) as watch:
            assert [e.revision for e in watch.next_batch(1.0)] == [r]
            assert watch.next_batch(0.05) == []
    finally:
        ds.close()


@pytest.mark.parametrize("url", ["nonsense", "ftp://x", "sqlite://", "sqlite:///x.db?history=lots"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValidationError):
        open_datastore(url)


def test_redact_url() -> None:
    assert redact_url("etcd://h:1?user=u&password=p") == "etcd://h:1?user=u&password=***"
    assert "s3" not in redact_url("etcd://u:s3@h:1")
    assert redact_url("sqlite:///a/b.db") == "sqlite:///a/b.db"


@pytest.mark.parametrize(
    "url",
    [
        "etcd://",
        "etcd+unix://relative/sock:2379",
        "etcd://127.0.0.1:2379?timeout=soon",
        "etcds://127.0.0.1:2379?cacert=/nonexistent/ca.pem",
    ],
)
def test_bad_etcd_urls(url: str) -> None:
    with pytest.raises(ValidationError):
        open_datastore(url)
