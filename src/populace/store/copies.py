"""A copied store made a run of its own (populace.owner.detach), and the run a store file
names, read without opening it as a store (nothing is created or upgraded)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from populace.store.store import Store


def rename_run(store: Store, run: str, checkpoints: str, keys: Mapping[str, str]) -> None:
    """Give the run in `store` the id `run` and the checkpoint storage `checkpoints` (as
    the store records it), its live checkpoints renamed by `keys` (old key: new key),
    in one transaction: the store names either all of the old storage or all of the new."""
    with store.driver.write() as cur:
        cur.execute("SELECT value FROM meta WHERE key = 'config'")
        config = json.loads(cur.fetchone()[0])
        config["checkpoints"] = checkpoints
        for key, value in (("run", run), ("config", config)):
            cur.execute("UPDATE meta SET value = ? WHERE key = ?", (json.dumps(value), key))
        for old, new in keys.items():
            cur.execute("UPDATE checkpoints SET key = ? WHERE key = ? AND deleted = 0",
                        (new, old))


def run_at(path: str) -> str | None:
    """The run id in the SQLite store at `path`, read only; None when it holds none."""
    with contextlib.suppress(sqlite3.Error), contextlib.closing(
            sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'run'").fetchone()
        return None if row is None else json.loads(row[0])
    return None
