"""SQLite backend: one file, WAL journal, writers serialised by BEGIN IMMEDIATE."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from populace.store.driver import Cursor, StoreError, StoreFault

# SQLite's words for a storage that failed, not a statement: "database or disk is full",
# "database is locked" (past the timeout), "disk I/O error", "attempt to write a readonly
# database"
_FAULTS = ("full", "locked", "disk I/O", "readonly")


class SQLiteDriver:
    """A connection to one SQLite file; use one driver per thread or process.

    `read_only`: the file is opened with SQLite's `mode=ro` (it must exist; nothing is
    created, no pragma set), `write` refuses, and SQLite itself refuses any write, so a
    reader such as the dashboard cannot change the store whatever it runs.
    """

    types = {"id": "INTEGER PRIMARY KEY", "real": "REAL", "text": "TEXT"}
    # a member row's revision: above every other at each insert and change (the inner
    # UPDATE changes the revision, so the trigger does not fire again for it)
    triggers: tuple[str, ...] = tuple(
        f"CREATE TRIGGER IF NOT EXISTS members_{name} AFTER {event} ON members{when}"
        " BEGIN UPDATE members SET revision = (SELECT MAX(revision) FROM members) + 1"
        " WHERE id = NEW.id; END"
        for name, event, when in (("added", "INSERT", ""),
                                  ("revised", "UPDATE", " WHEN NEW.revision = OLD.revision")))

    def __init__(self, path: str | os.PathLike[str], timeout: float = 60.0,
                 read_only: bool = False):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.read_only = read_only
        if read_only:
            self._open_read_only(timeout)
            return
        try:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # created readable by the owner only, before SQLite opens it
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            # autocommit mode: transactions are begun explicitly below
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open the store {self.path}: {e}") from e
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as e:
                # another process opening the file after a crash holds it for a moment
                if "locked" not in str(e) or time.monotonic() > deadline:
                    self._conn.close()
                    raise StoreError(f"cannot open the store {self.path}: {e}") from e
                time.sleep(0.05)
            except sqlite3.DatabaseError as e:
                self._conn.close()
                raise StoreError(f"{self.path} is not a populace store (not SQLite: {e})") from e
        # WAL + NORMAL: a committed transaction survives a crash of any process
        self._conn.execute("PRAGMA synchronous=NORMAL")

    def _open_read_only(self, timeout: float) -> None:
        if not self.path.is_file():
            raise StoreError(f"cannot open the store {self.path}: no such file")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        try:  # one reader shared by a server's threads, each call under the caller's lock
            self._conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the store {self.path}: {e}") from e

    @contextmanager
    def write(self) -> Iterator[sqlite3.Cursor]:
        if self.read_only:
            raise StoreError(f"store {self.path} is open read-only")
        with self._failing_as_store_error():
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Cursor]:
        with self._failing_as_store_error():
            cur = self._conn.cursor()
            cur.execute("BEGIN")
            try:
                yield cur
            finally:
                cur.execute("COMMIT")

    @contextmanager
    def _failing_as_store_error(self) -> Iterator[None]:
        """SQLite's own errors (locked past the timeout, disk I/O) as StoreError: the
        store failed, not the member a worker was training."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if any(word in str(e) for word in _FAULTS):
                raise StoreFault(f"store {self.path}: {e}; no member was failed for it: "
                                 "fix it (free space, end what holds the file), then run "
                                 "the same command again") from e
            raise StoreError(f"store {self.path}: {e}") from e
        except sqlite3.Error as e:
            raise StoreError(f"store {self.path}: {e}") from e

    def columns(self, cur: Cursor, table: str) -> set[str]:
        cur.execute("SELECT name FROM pragma_table_info(?)", (table,))
        return {row[0] for row in cur.fetchall()}

    def identity(self) -> dict[str, str | int]:
        """The file's path, machine and inode: a copy is a new file (another inode), and
        a file moved within its file system, or reached over NFS, keeps its inode."""
        path = self.path.resolve()
        return {"sqlite": str(path), "host": socket.gethostname(), "inode": path.stat().st_ino}

    def close(self) -> None:
        self._conn.close()

    def remove(self) -> None:
        """Delete the database file and its journal (after `close`)."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
