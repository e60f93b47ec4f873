"""A run folder copied or moved elsewhere keeps to the checkpoints beside its store: it
never writes into, or collects from, the checkpoints of the run it was copied from."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from support.paths import COUNTER
from support.runs import run_script

from populace.store import open_store


def files(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


def store_absolute_path(store: Path) -> None:
    """Record the checkpoint folder as an older populace did: its absolute path."""
    with sqlite3.connect(store) as db:
        config = json.loads(db.execute("SELECT value FROM meta WHERE key = 'config'")
                            .fetchone()[0])
        config["checkpoints"] = str(store.with_suffix(".checkpoints").resolve())
        db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(config),))


@pytest.mark.parametrize("written_by", ["this populace", "an older populace"])
def test_a_copied_run_folder_trains_and_collects_only_in_its_own_checkpoints(tmp_path,
                                                                             written_by):
    original = tmp_path / "a" / "runs" / "x.db"
    run_script(COUNTER, original, executor="inline", steps=8, keep_checkpoints=1)
    if written_by == "an older populace":
        store_absolute_path(original)
    before = files(original.with_suffix(".checkpoints"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    copy = tmp_path / "b" / "runs" / "x.db"
    run_script(COUNTER, copy, executor="inline", steps=16, keep_checkpoints=1)
    assert files(original.with_suffix(".checkpoints")) == before  # nothing written or deleted
    db = open_store(copy)
    folder = Path(db.config().checkpoints)
    assert folder == copy.with_suffix(".checkpoints").resolve()
    assert all(m.step == 16 and (folder / m.checkpoint.key).is_file() for m in db.members())
    db.close()
