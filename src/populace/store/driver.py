"""The driver contract: what a store backend supplies, and what its SQL must accept.

A backend is a `Driver`: connections and transactions, nothing else. The store's
SQL (populace.store.store, .exploits and .read) is written once for every backend,
so a backend's database must accept:

- `?` placeholders (a driver for another style rewrites them, as the PostgreSQL
  driver does to psycopg's `%s`);
- `INSERT ... RETURNING id` and `INSERT ... ON CONFLICT (key) DO UPDATE SET
  value = excluded.value`;
- `ORDER BY ... LIMIT n`, `CASE WHEN`, `COUNT`, `MIN`, `MAX`, joins and `IN (...)`;
- the column types of `types` (see populace.store.schema): an auto-numbered
  integer primary key (`id`), a double (`real`) and `TEXT`;
- the `triggers` that keep each member row's revision (see `Driver.triggers`);
- write transactions that run one at a time (SQLite: BEGIN IMMEDIATE;
  PostgreSQL: an advisory lock), and read transactions that see one
  consistent state.

A driver raises StoreError for anything its database refuses, and
StoreUnavailable when the server went away mid-call (the store then calls again).
The store battery (`populace.testing`) checks a backend against all of this.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from populace.errors import StorageFault


class StoreError(RuntimeError):
    """The store cannot be used as asked (not a populace store, no run, a newer schema...)."""


class StoreFault(StoreError, StorageFault):
    """The store's storage failed (its disk full or read-only, its file locked past the
    driver's timeout): the run stops, no member is at fault, the same command resumes."""


class StoreUnavailable(StoreError):
    """The server went away mid-call (a restart, a dropped connection): the transaction did
    not take effect, or its commit's answer was lost; the call may be made again."""


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    head, at, tail = url.rpartition("@")
    if not at or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, user = head.partition("//")
    return f"{scheme}//{user.split(':', 1)[0]}:***@{tail}"


class Cursor(Protocol):
    """A DB-API cursor, as far as the store uses one."""

    def execute(self, sql: str, params: tuple | list = (), /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list: ...

    @property
    def rowcount(self) -> int:
        """Rows the last UPDATE or DELETE changed."""


class Driver(Protocol):
    """What a backend supplies: connections and transactions, nothing else."""

    url: str
    types: dict[str, str]  # id, real, text, blob column types in the backend's dialect
    # the statements that make every insert and change of a member row give it a revision
    # above every revision before it (schema 6), in the backend's dialect; run where the
    # tables are created and by the upgrade to schema 6, so they must not fail when run again
    triggers: tuple[str, ...]

    def write(self) -> AbstractContextManager[Cursor]:
        """A serialised write transaction (committed on exit, rolled back on error)."""

    def read(self) -> AbstractContextManager[Cursor]:
        """A read-only transaction seeing one consistent state."""

    def columns(self, cur: Cursor, table: str) -> set[str]:
        """The column names of `table` (empty when there is no such table)."""

    def identity(self) -> dict[str, str | int]:
        """Which database this is, the same from every machine that reaches it, and
        different for a copy of it: whose checkpoint storage is whose (populace.owner)."""

    def close(self) -> None: ...

    def remove(self) -> None:
        """Delete the store's database (only ever one that holds no run)."""
