"""sqlite-only behaviour: URL parsing, lazy lease expiry with an injected clock,
automatic history compaction, prefix ranges, several handles on one file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gingham.datastore import EventType, open_datastore, redact_url
from gingham.datastore.cluster import read_cluster_id
from gingham.datastore.sqlite import SqliteDatastore
from gingham.datastore.sqlite_history import prefix_end
from gingham.errors import NoDatastore, NotFound, ResyncRequired, Unavailable, ValidationError


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
    ds = SqliteDatastore(tmp_path / "db", create=True, clock=clock)
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
    ds = open_datastore(f"sqlite://{tmp_path / 'db'}?history=50", create=True)
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
    a, b = open_datastore(url, create=True), open_datastore(url)
    try:
        rev = a.create("/x", {"v": 1})
        kv = b.get("/x")
        assert kv is not None and kv.mod_revision == rev
        assert b.revision() == a.revision() == rev
    finally:
        a.close()
        b.close()


def test_watch_skips_unrelated_revisions(tmp_path: Path) -> None:
    ds = open_datastore(f"sqlite://{tmp_path / 'db'}", create=True)
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


# --- no datastore by accident (issue 12) ----------------------------------------


def test_missing_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(NoDatastore) as info:
        open_datastore(f"sqlite://{path}")
    message = str(info.value)
    assert str(path) in message
    assert f"gingham datastore init --datastore sqlite://{path}" in message
    assert "no such file" in message
    assert sorted(tmp_path.iterdir()) == []  # not the file, not its -lock, -wal or -shm


def test_missing_directory_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "g.db"
    with pytest.raises(NoDatastore, match=f"no such directory {tmp_path / 'no' / 'such'}"):
        open_datastore(f"sqlite://{path}")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("create", [False, True])
def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path, create: bool) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 200)
    before = path.read_bytes()
    with pytest.raises(NoDatastore, match="not an sqlite database"):
        open_datastore(f"sqlite://{path}", create=create)
    assert path.read_bytes() == before


@pytest.mark.parametrize("create", [False, True])
def test_another_programs_sqlite_file_is_refused_untouched(tmp_path: Path, create: bool) -> None:
    import sqlite3

    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(NoDatastore, match="users"):
        open_datastore(f"sqlite://{path}", create=create)
    assert path.read_bytes() == before
    db = sqlite3.connect(path)
    try:
        tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        db.close()
    assert (tables, mode) == ({"users"}, "delete")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NoDatastore, match="is a directory"):
        open_datastore(f"sqlite://{tmp_path}")
    with pytest.raises(NoDatastore, match="is a directory"):
        open_datastore(f"sqlite://{tmp_path}", create=True)


def test_an_empty_file_is_no_datastore_until_created(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(NoDatastore, match="the file is empty"):
        open_datastore(f"sqlite://{path}")
    with open_datastore(f"sqlite://{path}", create=True) as ds:
        assert read_cluster_id(ds) is not None


def test_create_makes_a_private_file_with_a_cluster_id(tmp_path: Path) -> None:
    import stat

    path = tmp_path / "new" / "g.db"
    url = f"sqlite://{path}"
    with open_datastore(url, create=True) as ds:
        cid = read_cluster_id(ds)
        ds.create("/x", {"v": 1})
    assert cid is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for sidecar in path.parent.iterdir():
        assert stat.S_IMODE(sidecar.stat().st_mode) & 0o077 == 0, sidecar
    # Opening again (either way) keeps the datastore and its identity.
    with open_datastore(url, create=True) as ds:
        assert read_cluster_id(ds) == cid
    with open_datastore(url) as ds:
        assert read_cluster_id(ds) == cid
        kv = ds.get("/x")
        assert kv is not None and kv.value == {"v": 1}


def test_a_datastore_deleted_under_a_handle_is_not_recreated(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "g.db"
    ds = open_datastore(f"sqlite://{path}", create=True)
    try:
        for suffix in ("", "-wal", "-shm", "-lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        errors: list[BaseException] = []

        def read_in_new_thread() -> None:
            try:
                ds.get("/x")
            except BaseException as exc:  # reported below
                errors.append(exc)

        thread = threading.Thread(target=read_in_new_thread)
        thread.start()
        thread.join(10)
        assert errors and isinstance(errors[0], Unavailable)
        assert not path.exists()
    finally:
        ds.close()


def test_memory_store_needs_create_too() -> None:
    from gingham.datastore.memory import forget

    with pytest.raises(NoDatastore, match="memory://nobody-made-me"):
        open_datastore("memory://nobody-made-me")
    with pytest.raises(NoDatastore):
        open_datastore("memory://")
    try:
        with open_datastore("memory://made", create=True) as a:
            a.create("/k", {"v": 1})
            with open_datastore("memory://made") as b:
                kv = b.get("/k")
                assert kv is not None and kv.value == {"v": 1}
    finally:
        forget("made")
