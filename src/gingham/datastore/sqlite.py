"""The embedded backend: one sqlite file shared by many processes.

Processes in different network namespaces share the file through the
filesystem, so this works wherever the file is visible. The database runs in
WAL mode (readers never block the writer); every write is one
``BEGIN IMMEDIATE`` transaction that bumps the store revision held in ``meta``,
changes ``kv`` and appends to ``history``; a transaction of several keys
(``txn``) is one such transaction too. After a commit that changed the
revision the writer rings the datastore's doorbell (``doorbell.py``: a futex
word in ``<db>-lock``), which wakes every watcher in every process sharing the
file; watchers (``sqlite_watch.py``) then read ``history`` for revisions above
the last one they delivered.

Leases live in ``leases`` with an absolute expiry (wall-clock seconds, because
several processes must agree on it). Nobody runs a timer: any write, keepalive,
read or watch poll that finds an overdue lease deletes its keys, each with a
DELETE event, as a server would.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress

from gingham.datastore.base import (
    JSON,
    Datastore,
    KeyValue,
    TxnResult,
    Watch,
    check_txn,
    decode_value,
    encode_value,
    no_datastore_message,
)
from gingham.datastore.doorbell import Doorbell, open_doorbell
from gingham.datastore.sqlite_history import HISTORY_DELETE, HISTORY_PUT, prefix_end
from gingham.errors import (
    AlreadyExists,
    NoDatastore,
    NotFound,
    RevisionConflict,
    Unavailable,
    ValidationError,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    revision INTEGER NOT NULL,
    compacted INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (id, revision, compacted) VALUES (0, 1, 0);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL,
    lease INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS history (
    revision INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    type INTEGER NOT NULL,
    value TEXT
);
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY,
    ttl INTEGER NOT NULL,
    expiry REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_expiry ON leases (expiry);
"""

_TABLES = frozenset({"meta", "kv", "history", "leases"})
_REQUIRED = frozenset({"meta", "kv"})  # what makes a file a gingham datastore
# Automatic compaction: every _COMPACT_EVERY revisions, history older than
# ``history`` revisions is dropped. Watchers that far behind resync. History
# rows carry whole values (an IPAM block is a few KiB), so keep it modest.
_COMPACT_EVERY = 1000
DEFAULT_HISTORY = 10_000


def _file_uri(path: str) -> str:
    """An sqlite URI that opens ``path`` read-write and never creates it."""
    from urllib.parse import quote

    return f"file:{quote(path)}?mode=rw"


class SqliteDatastore(Datastore):
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        history: int = DEFAULT_HISTORY,
        busy_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.fspath(path)
        self.url = f"sqlite://{self.path}" if self.path.startswith("/") else f"sqlite:{self.path}"
        self._history = history
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._local = threading.local()
        # (pid, resource): a child after fork() must not close its parent's.
        self._all: list[tuple[int, sqlite3.Connection]] = []
        self._lock_fds: list[tuple[int, int]] = []
        self._all_lock = threading.Lock()
        self._closed = False
        # (pid, doorbell): mapped on first use; False when it cannot be (then
        # watchers poll and writers ring nobody).
        self._bell: tuple[int, Doorbell] | bool | None = None
        if create:
            self._make_file()
        elif not os.path.exists(self.path):
            parent = os.path.dirname(os.path.abspath(self.path))
            why = "no such file" if os.path.isdir(parent) else f"no such directory {parent}"
            raise NoDatastore(no_datastore_message(self.url, why))
        if os.path.isdir(self.path):
            raise NoDatastore(f"{self.url} is a directory, not a gingham datastore")
        tables = self._tables()
        if tables >= _TABLES:
            return
        if not tables >= _REQUIRED:
            if not create:
                why = (
                    "the file is empty"
                    if not tables
                    else f"it holds no gingham tables (found: {', '.join(sorted(tables))})"
                )
                raise NoDatastore(no_datastore_message(self.url, why))
            if tables - _TABLES:
                raise NoDatastore(
                    f"{self.url} is an sqlite database of something else"
                    f" (tables: {', '.join(sorted(tables))}): refusing to turn it into a"
                    " gingham datastore; name another path"
                )
        # A new file, or a datastore of an older layout: add what is missing.
        db = self._conn()
        fd = self._lock_fd()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            # executescript commits any open transaction first, so it gets its own.
            db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise Unavailable(f"cannot reach datastore {self.url}: {exc}") from exc
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _make_file(self) -> None:
        """Create the file (0600; its directory 0700 if new) unless it exists."""
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            # Datastore URLs and IPAM state are nobody else's business.
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise Unavailable(
                f"cannot reach datastore {self.url}: cannot create its directory: {exc.strerror}"
            ) from exc
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            return  # it exists (maybe made this instant by another initialiser)
        except OSError as exc:
            raise Unavailable(f"cannot create datastore {self.url}: {exc.strerror}") from exc
        os.close(fd)

    def _tables(self) -> set[str]:
        """The tables in the file, read without changing it (no WAL switch, no schema)."""
        try:
            probe = sqlite3.connect(_file_uri(self.path), uri=True, timeout=self._busy_timeout)
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot reach datastore {self.url}: {exc}") from exc
        try:
            rows = probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
                raise NoDatastore(
                    f"{self.url} is not a gingham datastore: the file is not an sqlite database"
                ) from None
            raise Unavailable(f"cannot reach datastore {self.url}: {exc}") from exc
        finally:
            probe.close()
        return {str(name) for (name,) in rows}

    # -- connections ------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise Unavailable(f"{self.url}: datastore is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        pid = os.getpid()
        # A connection inherited across fork() must never be used by the child.
        if conn is None or getattr(self._local, "pid", None) != pid:
            try:
                # mode=rw: a file deleted under a running process must not come
                # back as a new, empty datastore when a new thread connects.
                conn = sqlite3.connect(
                    _file_uri(self.path),
                    uri=True,
                    timeout=self._busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL survives any process crash; only power loss can
                # lose the last transactions, which suits an agent datastore.
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise Unavailable(f"cannot reach datastore {self.url}: {exc}") from exc
            self._local.conn = conn
            self._local.pid = pid
            with self._all_lock:
                self._all.append((pid, conn))
        return conn

    def _lock_fd(self) -> int:
        fd: int | None = getattr(self._local, "lock_fd", None)
        if fd is None or getattr(self._local, "lock_pid", None) != os.getpid():
            try:
                fd = os.open(self.path + "-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise Unavailable(f"cannot reach datastore {self.url}: {exc.strerror}") from exc
            self._local.lock_fd, self._local.lock_pid = fd, os.getpid()
            with self._all_lock:
                self._lock_fds.append((os.getpid(), fd))
        return fd

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._conn()
        # Writers queue on an flock first: the kernel wakes the next waiter the
        # moment the lock is free, where sqlite's busy handler sleeps in steps of
        # up to 100 ms and, with several processes writing, throughput collapses
        # (measured: 8 processes, ~200 writes/s with the busy handler alone).
        fd = self._lock_fd()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise Unavailable(f"datastore {self.url}: {exc}") from exc
            self._local.bumped = False
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                db.execute("ROLLBACK")
                raise Unavailable(f"datastore {self.url}: {exc}") from exc
            if self._local.bumped:
                # Committed: from here on nothing may fail the write. Under the
                # flock still, so rings never interleave.
                bell = self.doorbell()
                if bell is not None:
                    bell.ring()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def doorbell(self) -> Doorbell | None:
        """This process's mapping of the datastore's doorbell; None if there is none."""
        bell = self._bell
        if isinstance(bell, tuple) and bell[0] == os.getpid():
            return bell[1]
        if bell is False or self._closed:
            return None
        with self._all_lock:
            bell = self._bell
            if isinstance(bell, tuple) and bell[0] == os.getpid():
                return bell[1]
            if bell is False:
                return None
            # A new mapping after fork() too: the inherited one still works, but a
            # child must not close what its parent uses.
            opened = open_doorbell(self.path + "-lock")
            self._bell = (os.getpid(), opened) if opened is not None else False
            return opened

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        db = self._conn()
        try:
            db.execute("BEGIN")
            yield db
        except sqlite3.Error as exc:
            raise Unavailable(f"datastore {self.url}: {exc}") from exc
        finally:
            if db.in_transaction:
                db.execute("COMMIT")

    # -- helpers inside a write transaction --------------------------------

    def _bump(self, db: sqlite3.Connection) -> int:
        (rev,) = db.execute("UPDATE meta SET revision = revision + 1 RETURNING revision").fetchone()
        self._local.bumped = True
        if rev % _COMPACT_EVERY == 0 and rev > self._history:
            self._compact_in(db, rev - self._history)
        return int(rev)

    def _compact_in(self, db: sqlite3.Connection, revision: int) -> None:
        db.execute("DELETE FROM history WHERE revision < ?", (revision,))
        db.execute("UPDATE meta SET compacted = max(compacted, ?)", (revision,))

    def _delete_key(self, db: sqlite3.Connection, key: str) -> int:
        rev = self._bump(db)
        db.execute("DELETE FROM kv WHERE key = ?", (key,))
        db.execute(
            "INSERT INTO history (revision, key, type, value) VALUES (?, ?, ?, NULL)",
            (rev, key, HISTORY_DELETE),
        )
        return rev

    def _drop_lease(self, db: sqlite3.Connection, lease: int) -> None:
        keys = db.execute("SELECT key FROM kv WHERE lease = ? ORDER BY key", (lease,)).fetchall()
        for (key,) in keys:
            self._delete_key(db, key)
        db.execute("DELETE FROM leases WHERE id = ?", (lease,))

    def _expire_in(self, db: sqlite3.Connection) -> None:
        due = db.execute(
            "SELECT id FROM leases WHERE expiry <= ? ORDER BY id", (self._clock(),)
        ).fetchall()
        for (lease,) in due:
            self._drop_lease(db, lease)

    def _check_lease(self, db: sqlite3.Connection, lease: int) -> None:
        if lease and db.execute("SELECT 1 FROM leases WHERE id = ?", (lease,)).fetchone() is None:
            raise NotFound(f"lease {lease} not found (expired or revoked)")

    def expire_leases(self) -> None:
        """Delete the keys of overdue leases now (normally done lazily)."""
        db = self._conn()
        try:
            due = db.execute(
                "SELECT 1 FROM leases WHERE expiry <= ? LIMIT 1", (self._clock(),)
            ).fetchone()
        except sqlite3.Error as exc:
            raise Unavailable(f"datastore {self.url}: {exc}") from exc
        if due is not None:
            with self._write() as wdb:
                self._expire_in(wdb)

    def _put(
        self, db: sqlite3.Connection, key: str, text: str | bytes, create: int, lease: int
    ) -> int:
        rev = self._bump(db)
        db.execute(
            "INSERT OR REPLACE INTO kv (key, value, create_revision, mod_revision, lease)"
            " VALUES (?, ?, ?, ?, ?)",
            (key, text, create or rev, rev, lease),
        )
        db.execute(
            "INSERT INTO history (revision, key, type, value) VALUES (?, ?, ?, ?)",
            (rev, key, HISTORY_PUT, text),
        )
        return rev

    # -- the contract --------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        self.expire_leases()
        with self._read() as db:
            row = db.execute(
                "SELECT key, value, mod_revision, create_revision, lease FROM kv WHERE key = ?",
                (key,),
            ).fetchone()
        return None if row is None else _kv(row)

    def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        self.expire_leases()
        end = prefix_end(prefix)
        with self._read() as db:
            (rev,) = db.execute("SELECT revision FROM meta").fetchone()
            sql = "SELECT key, value, mod_revision, create_revision, lease FROM kv WHERE key >= ?"
            args: tuple[str, ...] = (prefix,)
            if end is not None:
                sql += " AND key < ?"
                args = (prefix, end)
            rows = db.execute(sql + " ORDER BY key", args).fetchall()
        return [_kv(r) for r in rows], int(rev)

    def create(self, key: str, value: JSON, *, lease: int = 0) -> int:
        text = encode_value(value)
        with self._write() as db:
            self._expire_in(db)
            self._check_lease(db, lease)
            if db.execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone() is not None:
                raise AlreadyExists(f"{key} already exists")
            return self._put(db, key, text, 0, lease)

    def put_raw(self, key: str, data: bytes) -> int:
        # Stored as given (a BLOB when bytes): readers decode each row on its own.
        with self._write() as db:
            self._expire_in(db)
            row = db.execute("SELECT create_revision FROM kv WHERE key = ?", (key,)).fetchone()
            return self._put(db, key, bytes(data), row[0] if row else 0, 0)

    def update(self, key: str, value: JSON, *, revision: int, lease: int = 0) -> int:
        text = encode_value(value)
        with self._write() as db:
            self._expire_in(db)
            row = db.execute(
                "SELECT create_revision, mod_revision FROM kv WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                raise NotFound(f"{key} not found")
            if row[1] != revision:
                raise RevisionConflict(
                    f"{key} is at revision {row[1]}, not {revision}: re-read and retry"
                )
            self._check_lease(db, lease)
            return self._put(db, key, text, row[0], lease)

    def delete(self, key: str, *, revision: int | None = None) -> int:
        with self._write() as db:
            self._expire_in(db)
            row = db.execute("SELECT mod_revision FROM kv WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise NotFound(f"{key} not found")
            if revision is not None and row[0] != revision:
                raise RevisionConflict(
                    f"{key} is at revision {row[0]}, not {revision}: re-read and retry"
                )
            return self._delete_key(db, key)

    def txn(
        self,
        compares: Mapping[str, int],
        puts: Mapping[str, JSON] | None = None,
        deletes: Iterable[str] = (),
    ) -> TxnResult:
        texts, gone = check_txn(compares, puts or {}, deletes)
        with self._write() as db:
            self._expire_in(db)
            rows = {
                key: db.execute(
                    "SELECT key, value, mod_revision, create_revision, lease FROM kv"
                    " WHERE key = ?",
                    (key,),
                ).fetchone()
                for key in compares
            }
            if any((row[2] if row else 0) != compares[key] for key, row in rows.items()):
                (rev,) = db.execute("SELECT revision FROM meta").fetchone()
                current = {key: _kv(row) if row else None for key, row in rows.items()}
                return TxnResult(False, int(rev), current=current)
            revisions: dict[str, int] = {}
            for key, text in texts.items():
                row = db.execute("SELECT create_revision FROM kv WHERE key = ?", (key,)).fetchone()
                revisions[key] = self._put(db, key, text, row[0] if row else 0, 0)
            for key in gone:
                if db.execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone() is not None:
                    self._delete_key(db, key)
            (rev,) = db.execute("SELECT revision FROM meta").fetchone()
            return TxnResult(True, int(rev), revisions=revisions)

    def watch(self, prefix: str, *, start_revision: int) -> Watch:
        from gingham.datastore.sqlite_watch import SqliteWatch

        return SqliteWatch(self, prefix, start_revision)

    def revision(self) -> int:
        with self._read() as db:
            (rev,) = db.execute("SELECT revision FROM meta").fetchone()
        return int(rev)

    def grant_lease(self, ttl: int) -> int:
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")
        with self._write() as db:
            self._expire_in(db)
            cur = db.execute(
                "INSERT INTO leases (ttl, expiry) VALUES (?, ?)", (ttl, self._clock() + ttl)
            )
            return int(cur.lastrowid or 0)

    def keepalive(self, lease: int) -> None:
        with self._write() as db:
            self._expire_in(db)
            cur = db.execute(
                "UPDATE leases SET expiry = ? + ttl WHERE id = ?", (self._clock(), lease)
            )
            if cur.rowcount == 0:
                raise NotFound(f"lease {lease} not found (expired or revoked)")

    def revoke_lease(self, lease: int) -> None:
        """Delete the lease and its keys; revoking an unknown lease does nothing."""
        with self._write() as db:
            self._expire_in(db)
            self._drop_lease(db, lease)

    def compact(self, revision: int) -> None:
        with self._write() as db:
            (current,) = db.execute("SELECT revision FROM meta").fetchone()
            if revision > current:
                raise ValidationError(
                    f"cannot compact at revision {revision}: the store is at {current}"
                )
            self._compact_in(db, revision)

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
            fds, self._lock_fds = self._lock_fds, []
        me = os.getpid()
        for pid, conn in conns:
            if pid == me:
                with suppress(sqlite3.Error):
                    conn.close()
        for pid, fd in fds:
            if pid == me:
                with suppress(OSError):
                    os.close(fd)
        with self._all_lock:
            bell, self._bell = self._bell, False
        if isinstance(bell, tuple) and bell[0] == me:
            bell[1].close()


def _kv(row: tuple[str, str | bytes, int, int, int]) -> KeyValue:
    key, value, mod, create, lease = row
    return KeyValue(
        key=key, value=decode_value(value), mod_revision=mod, create_revision=create, lease=lease
    )
