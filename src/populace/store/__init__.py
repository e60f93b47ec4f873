"""Population stores: the single source of truth of a run (see `store.Store`).

Files: `driver` (the contract a backend fulfils and the SQL it must accept),
`schema` (the tables), `migrate` (upgrading an older populace's store), `store` (the
Store: claim, report, fail), `exploits` (carrying out the exploit decisions a report or
failure sets off), `read` (its reads), `records` (the rows it hands out), `rows` (the
writes both halves share), `retry`, and one file per backend (`sqlite`, `postgresql`).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from populace.store.copies import rename_run, run_at
from populace.store.driver import Cursor, Driver, StoreError
from populace.store.read import StoreReader
from populace.store.records import (
    DECISIONS,
    TRAINING,
    CheckpointRow,
    Decision,
    Event,
    FailOutcome,
    Kind,
    MemberRow,
    Outcome,
    Report,
    Result,
    Role,
    RunRecord,
    Status,
)
from populace.store.schema import SCHEMA_VERSION
from populace.store.sqlite import SQLiteDriver
from populace.store.store import Store

__all__ = [
    "DECISIONS", "SCHEMA_VERSION", "TRAINING", "CheckpointRow", "Cursor", "Decision", "Driver",
    "Event", "FailOutcome", "Kind", "MemberRow", "Outcome", "Report", "Result", "Role", "RunRecord",
    "Status", "Store", "StoreError", "StoreReader", "beside", "is_postgres", "open_reader",
    "open_store", "rename_run", "run_at", "store_exists",
]


_POSTGRES = ("postgresql://", "postgres://")


def is_postgres(url: str | os.PathLike[str]) -> bool:
    return os.fspath(url).startswith(_POSTGRES)


def _sqlite_path(url: str | os.PathLike[str]) -> str:
    text = os.fspath(url)
    if text.startswith("sqlite:///"):
        return text[len("sqlite:///"):]
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise StoreError(
            f"store URL scheme must be sqlite or postgresql (or a file path), got {scheme!r}"
        )
    return text


def beside(url: str | os.PathLike[str], suffix: str) -> Path:
    """A path next to the store's file: `runs/x.db` and ".report" give `runs/x.report`.

    A PostgreSQL store has no file: its paths are named after the database, in the
    working directory.
    """
    if is_postgres(url):
        database = urlsplit(os.fspath(url)).path.strip("/") or "populace"
        return Path(f"{database}{suffix}")
    path = Path(_sqlite_path(url))
    return path.parent / f"{path.stem}{suffix}"


def store_exists(url: str | os.PathLike[str]) -> bool:
    """Whether something is at `url` already (a run to resume, or a file that is not a store)."""
    if is_postgres(url):
        store = open_store(url)
        try:
            return store.exists()
        finally:
            store.close()
    path = _sqlite_path(url)
    if os.path.isdir(path):
        raise StoreError(f"store must be a SQLite file or a postgresql:// URL, got "
                         f"{os.fspath(url)!r} (a folder): name a file in it, such as "
                         f"{os.path.join(os.fspath(url), 'run.db')!r}")
    return os.path.isfile(path) and os.path.getsize(path) > 0


def open_store(url: str | os.PathLike[str]) -> Store:
    """Open the store at `url`: a file path, sqlite:///PATH or postgresql://..."""
    if is_postgres(url):
        from populace.store.postgresql import PostgresDriver

        return Store(PostgresDriver(os.fspath(url)))
    return Store(SQLiteDriver(_sqlite_path(url)))


def open_reader(url: str | os.PathLike[str], patience: float = 60.0) -> StoreReader:
    """Open the store at `url` read-only: its reads, and no way to write it.

    A SQLite file is opened with SQLite's `mode=ro` (and must exist: nothing is created),
    a PostgreSQL store in read-only transactions; neither is upgraded, so a store an
    older populace wrote is refused when read. For readers that must change nothing,
    such as the dashboard.

    Raises:
        StoreError: the SQLite file does not exist, or cannot be opened.
    """
    if is_postgres(url):
        from populace.store.postgresql import PostgresDriver

        return StoreReader(PostgresDriver(os.fspath(url), read_only=True), patience)
    return StoreReader(SQLiteDriver(_sqlite_path(url), read_only=True), patience)
