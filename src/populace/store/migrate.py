"""Upgrading a store written by an older populace to the schema this one reads.

Each schema change is one step from its version to the next: the member columns that
turn a store of version v into one of version v + 1, in the backends' shared SQL.
`upgrade` runs the steps from a store's version up to `SCHEMA_VERSION` and records the
new version, in the one write transaction its caller holds, so a store is upgraded
whole or not at all. A later schema change adds its step to `STEPS` (and its fixture
store, written by the populace before it, to tests/store/fixtures/); a store older than
the oldest step, or newer than this populace, is refused where it is read
(`populace.store.read`), naming both versions.

Every step so far only adds columns (version 6 also indexes and the triggers that keep a
member's revision, the driver's `triggers`), so every upgrade can be undone (`undo`). A SQLite
store is also copied, whole, beside itself before it is upgraded (`backup`): to go
back, put the copy in its place. docs/faults.md, "Upgrading populace", tells users.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from populace.store.driver import Cursor, Driver, StoreError, safe_url
from populace.store.schema import (
    FIRE_COLUMNS,
    REVISION_COLUMNS,
    REVISION_INDEXES,
    SCHEMA_VERSION,
)

# the member columns version 4 added (PB2's segments, a multi-objective run's objectives),
# as a store of version 3 gets them: no segments yet, no objectives in a run of one score
PB2_COLUMNS = (
    "segments TEXT NOT NULL DEFAULT '[]'",
    "objectives TEXT",
)

# the member columns each step adds to a store of its version, turning it into the next
STEPS: dict[int, tuple[str, ...]] = {3: PB2_COLUMNS, 4: FIRE_COLUMNS, 5: REVISION_COLUMNS}
# what undoes a step's triggers, before its columns go (PostgreSQL's, as `undo` is for it)
_UNDO_FIRST: dict[int, tuple[str, ...]] = {
    5: ("DROP TRIGGER IF EXISTS members_revised ON members",
        "DROP FUNCTION IF EXISTS populace_revised()",
        "DROP INDEX IF EXISTS members_claim", "DROP INDEX IF EXISTS members_checkpoint"),
}
OLDEST = min(STEPS)  # the oldest version this populace upgrades


def upgradable(version: int) -> bool:
    """Whether a store of `version` can be upgraded to `SCHEMA_VERSION` (an older one
    that every step from it up to here exists for)."""
    return version < SCHEMA_VERSION and all(v in STEPS for v in range(version, SCHEMA_VERSION))


def added(version: int) -> list[str]:
    """The names of the member columns the upgrade from `version` adds."""
    return [column.split()[0] for v in range(version, SCHEMA_VERSION) for column in STEPS[v]]


def upgrade_store(driver: Driver, version_of: Callable[[Cursor], int | None]) -> None:
    """Upgrade the store of `driver`, if an older populace wrote it, in one write
    transaction (a SQLite store copied beside itself first), and say so on stderr.

    `version_of` reads a store's schema version (None: no store yet). Nothing happens
    to a store of this version, or to one this populace cannot upgrade (refused when
    read); another process that upgraded it meanwhile leaves nothing to do.

    Raises:
        StoreError: the copy of a SQLite store could not be made (nothing upgraded).
    """
    with driver.read() as cur:
        version = version_of(cur)
    if version is None or not upgradable(version):
        return  # the usual open
    kept: Path | None = None
    with driver.write() as cur:
        version = version_of(cur)
        if version is None or not upgradable(version):
            return
        path: Path | None = getattr(driver, "path", None)  # None: PostgreSQL, no file
        if path is not None:
            try:
                kept = backup(path, version)
            except (OSError, sqlite3.Error) as e:
                raise StoreError(
                    f"{driver.url} has store schema version {version}: this populace "
                    f"upgrades it to {SCHEMA_VERSION} after copying it to "
                    f"{backup_path(path, version)}, which failed ({e}); nothing was "
                    "changed: free space or make the folder writable, then run the same "
                    "command again") from e
        upgrade(cur, version, driver.triggers)
    undo = (f"the store as it was is kept at {kept}" if kept is not None else
            "it only added columns, and can be undone")
    print(f"populace: upgraded the store at {safe_url(driver.url)} from schema {version} to "
          f"{SCHEMA_VERSION} (members' new columns: {', '.join(added(version))}); {undo}: "
          "see \"Upgrading populace\" in populace's docs/faults.md", file=sys.stderr,
          flush=True)


def upgrade(cur: Cursor, version: int, triggers: tuple[str, ...]) -> None:
    """Turn the store at `cur` from `version` into `SCHEMA_VERSION`, inside the caller's
    write transaction, and record the new version; `triggers` are the driver's."""
    if not upgradable(version):
        raise ValueError(f"no upgrade from store schema version {version} to {SCHEMA_VERSION}")
    for v in range(version, SCHEMA_VERSION):
        for column in STEPS[v]:
            cur.execute(f"ALTER TABLE members ADD COLUMN {column}")
    # the rows keep revision 0 (read by every process's first read): changes go above it
    for sql in (*REVISION_INDEXES, *triggers):
        cur.execute(sql)
    # a run written before runs had their own name (populace before 2fcbeb7) gets one: its
    # checkpoint storage, never marked, is marked as this run's when it next trains
    # (`populace.owner.run_storage`)
    cur.execute("INSERT INTO meta (key, value) VALUES ('run', ?) ON CONFLICT (key) DO NOTHING",
                (json.dumps(uuid.uuid4().hex),))
    _set_version(cur, SCHEMA_VERSION)


def undo(version: int) -> list[str]:
    """The statements that turn a store upgraded from `version` back into one of
    `version` (dropping the columns the upgrade added): for a PostgreSQL store, which
    keeps no copy of itself. What was trained since stays, in the old columns."""
    first = [sql for v in range(version, SCHEMA_VERSION) for sql in _UNDO_FIRST.get(v, ())]
    return first + [f"ALTER TABLE members DROP COLUMN {name}"
                    for name in reversed(added(version))] + [
        f"UPDATE meta SET value = '{version}' WHERE key = 'schema_version'"]


def _set_version(cur: Cursor, version: int) -> None:
    cur.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                (json.dumps(version),))


def backup_path(store: Path, version: int) -> Path:
    """Where a SQLite store of `version` is copied before it is upgraded:
    `runs/x.db` of version 3 to `runs/x.db.schema-3.bak`."""
    return store.with_name(f"{store.name}.schema-{version}.bak")


def backup(store: Path, version: int) -> Path:
    """Copy the SQLite store at `store`, of `version`, whole, beside itself (returned).

    SQLite's online backup reads one committed state (the WAL's included) over a
    connection of its own, so the caller may hold the write transaction that upgrades
    the store meanwhile; the copy appears under its name only once complete.
    """
    target = backup_path(store, version)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    # owner-only, as the store itself is created
    os.close(os.open(partial, os.O_CREAT | os.O_WRONLY, 0o600))
    try:
        source = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        try:
            copy = sqlite3.connect(partial)
            try:
                source.backup(copy)
            finally:
                copy.close()
        finally:
            source.close()
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)  # no half copy left to mistake for a whole one
        raise
    return target
