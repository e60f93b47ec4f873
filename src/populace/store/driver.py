"""What a store backend supplies (a `Driver`), and the tables every backend holds."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

# 2: each result names the checkpoint it wrote and the one its segment started from
# 3: a member waiting for its donor keeps the decision it waits to carry out, and every
#    member a short trail of (step, score) along its lineage
SCHEMA_VERSION = 3


class StoreError(RuntimeError):
    """The store cannot be used as asked (not a populace store, no run, a newer schema...)."""


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


def retried(method: Callable[..., T]) -> Callable[..., T]:
    """Make a store call again on a fresh connection while the server is unavailable.

    Backoff is exponential with jitter (tenacity), for up to the store's `patience`
    seconds (a worker sets it to the run's lease: past that its member is someone
    else's anyway); then StoreError names the store, its password hidden. Every
    store call is one transaction, so a call that failed changed nothing, or (a
    commit whose answer was lost) is recognised when it is made again.
    """

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)  # the hot path: no retry machinery
        except StoreUnavailable:
            pass
        import tenacity

        try:
            for attempt in tenacity.Retrying(
                    retry=tenacity.retry_if_exception_type(StoreUnavailable),
                    wait=tenacity.wait_exponential(multiplier=0.05, max=2.0)
                    + tenacity.wait_random(0, 0.05),
                    stop=tenacity.stop_after_delay(self.patience), reraise=True):
                with attempt:
                    return method(self, *args, **kwargs)
        except StoreUnavailable as e:
            raise StoreError(f"cannot reach the store {safe_url(self.url)} for "
                             f"{self.patience:g} s: {e}") from e
        raise AssertionError("unreachable")  # pragma: no cover - Retrying returns or raises

    return call


class Cursor(Protocol):
    def execute(self, sql: str, params: tuple | list = ()) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list: ...


class Driver(Protocol):
    """What a backend supplies: connections and transactions, nothing else."""

    url: str
    types: dict[str, str]  # id, real, text, blob column types in the backend's dialect

    def write(self) -> AbstractContextManager[Cursor]:
        """A serialised write transaction (committed on exit, rolled back on error)."""

    def read(self) -> AbstractContextManager[Cursor]:
        """A read-only transaction seeing one consistent state."""

    def columns(self, cur: Cursor, table: str) -> set[str]:
        """The column names of `table` (empty when there is no such table)."""

    def close(self) -> None: ...

    def remove(self) -> None:
        """Delete the store's database (only ever one that holds no run)."""


def schema(types: dict[str, str]) -> list[str]:
    t = types
    return [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS checkpoints (
            id {t['id']}, member INTEGER NOT NULL, step INTEGER NOT NULL,
            key TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL,
            created {t['real']} NOT NULL, deleted INTEGER NOT NULL DEFAULT 0)""",
        """CREATE INDEX IF NOT EXISTS checkpoints_member
            ON checkpoints (member, deleted, id)""",
        "CREATE INDEX IF NOT EXISTS checkpoints_key ON checkpoints (key, deleted)",
        # a member's newest checkpoints, read at every report, without sorting its history
        "CREATE INDEX IF NOT EXISTS checkpoints_newest ON checkpoints (member, id)",
        f"""CREATE TABLE IF NOT EXISTS members (
            id INTEGER PRIMARY KEY, hparams TEXT NOT NULL, step INTEGER NOT NULL,
            score {t['real']}, generation INTEGER NOT NULL, parent INTEGER,
            status TEXT NOT NULL, checkpoint INTEGER REFERENCES checkpoints (id),
            lease_owner TEXT, lease_expires {t['real']}, error TEXT,
            recent TEXT NOT NULL DEFAULT '[]', trail TEXT NOT NULL DEFAULT '[]',
            failures INTEGER NOT NULL DEFAULT 0, waits_for INTEGER, pending TEXT,
            updated {t['real']} NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS results (
            id {t['id']}, member INTEGER NOT NULL, start INTEGER NOT NULL,
            step INTEGER NOT NULL, score {t['real']}, metrics TEXT NOT NULL, hparams TEXT NOT NULL,
            seconds {t['real']} NOT NULL, time {t['real']} NOT NULL,
            checkpoint INTEGER, parent INTEGER)""",
        "CREATE INDEX IF NOT EXISTS results_member ON results (member, step)",
        f"""CREATE TABLE IF NOT EXISTS events (
            id {t['id']}, kind TEXT NOT NULL, member INTEGER NOT NULL, donor INTEGER,
            step INTEGER NOT NULL, donor_step INTEGER, before TEXT, after TEXT,
            strategy TEXT NOT NULL, detail TEXT, result INTEGER, time {t['real']} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS events_member ON events (member, id)",
    ]
