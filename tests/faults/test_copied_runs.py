"""A run folder copied or moved elsewhere keeps to the checkpoints beside its store: it
never writes into, or collects from, the checkpoints of the run it was copied from."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import psycopg
import pytest
from support.paths import COUNTER
from support.postgres import BIN, schema_url
from support.runs import run_script

from populace.checkpoints import MARKER, StorageMissing
from populace.cli import main
from populace.store import Status, open_store


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


def own_checkpoints_run(tmp_path: Path, name: str = "a") -> tuple[Path, Path]:
    """A finished 8-step run whose checkpoints live outside its store's folder."""
    store, checkpoints = tmp_path / name / "runs" / "x.db", tmp_path / f"{name}-checkpoints"
    run_script(COUNTER, store, executor="inline", steps=8, checkpoints=checkpoints)
    return store, checkpoints


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main([*map(str, argv)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_a_copy_sharing_checkpoints_outside_its_folder_is_refused_and_detach_frees_it(
        tmp_path, capsys):
    original, shared = own_checkpoints_run(tmp_path)
    before = files(shared)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    copy = tmp_path / "b" / "runs" / "x.db"
    with pytest.raises(StorageMissing, match="is a copy of the store at .*populace detach"):
        run_script(COUNTER, copy, executor="inline", steps=16)
    refused = open_store(copy)  # refused before anything of the run changed
    assert refused.config().run["steps"] == 8
    assert {m.status for m in refused.members()} == {Status.DONE}
    refused.close()
    code, said = cli(capsys, "collect", copy)
    assert code == 2 and "populace detach" in said
    assert files(shared) == before  # nothing written or collected there

    kept = len(open_store(copy).checkpoints())
    code, said = cli(capsys, "detach", copy, "--checkpoints", tmp_path / "b-checkpoints")
    assert code == 0 and f"its {kept} checkpoint(s) copied" in said, said
    run_script(COUNTER, copy, executor="inline", steps=16)
    assert files(shared) == before
    run_script(COUNTER, original, executor="inline", steps=16)  # the original goes on alone
    for store, folder in ((original, shared), (copy, tmp_path / "b-checkpoints")):
        db = open_store(store)
        assert Path(db.config().checkpoints) == folder.resolve()
        assert all(m.step == 16 and (folder / m.checkpoint.key).is_file()
                   for m in db.members())
        run = db.meta("run")
        db.close()
        assert (folder / MARKER).read_text().split("\n")[0] == run
    assert open_store(original).meta("run") != open_store(copy).meta("run")


def test_deleting_a_copy_keeps_the_checkpoints_of_the_store_it_was_copied_from(tmp_path,
                                                                                capsys):
    original, shared = own_checkpoints_run(tmp_path)
    before = files(shared)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    code, _ = cli(capsys, "delete", tmp_path / "b" / "runs" / "x.db", "--yes")
    assert code == 0 and files(shared) == before
    run_script(COUNTER, original, executor="inline", steps=16)


@pytest.mark.parametrize("how", ["renamed", "copied, then the original deleted"])
def test_a_moved_store_takes_its_checkpoints_outside_its_folder_with_it(tmp_path, how):
    original, shared = own_checkpoints_run(tmp_path)
    if how == "renamed":
        (tmp_path / "a").rename(tmp_path / "b")
    else:  # a move across file systems: a new file, the old one gone
        shutil.copytree(tmp_path / "a", tmp_path / "b")
        shutil.rmtree(tmp_path / "a")
    moved = tmp_path / "b" / "runs" / "x.db"
    run_script(COUNTER, moved, executor="inline", steps=16)
    db = open_store(moved)
    assert all(m.step == 16 and (shared / m.checkpoint.key).is_file() for m in db.members())
    db.close()
    assert str(moved.resolve()) in (shared / MARKER).read_text()


def test_a_mark_written_before_owners_is_taken_over_by_the_store_that_trains(tmp_path):
    original, shared = own_checkpoints_run(tmp_path)
    run = open_store(original).meta("run")
    (shared / MARKER).write_text(run + "\n")  # as a populace before this one wrote it
    run_script(COUNTER, original, executor="inline", steps=16)
    assert str(original.resolve()) in (shared / MARKER).read_text()


def test_a_postgresql_store_restored_into_another_schema_is_a_copy(tmp_path, capsys):
    """pg_dump of the run's schema, restored under another name: the copy is refused,
    detach gives it checkpoints of its own, and the original trains on in its own."""
    original = schema_url()
    shared = tmp_path / "checkpoints"
    run_script(COUNTER, original, executor="inline", steps=8, checkpoints=shared)
    before = files(shared)
    copy = schema_url()
    server, old, new = (original.split("?")[0], original.rsplit("%3D", 1)[1],
                        copy.rsplit("%3D", 1)[1])
    dump = subprocess.run([str(BIN / "pg_dump"), "--no-owner", "-n", old, server], check=True,
                          capture_output=True, text=True).stdout
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {new}")
    subprocess.run([str(BIN / "psql"), "-q", "-v", "ON_ERROR_STOP=1", server], check=True,
                   input=dump.replace(old, new), capture_output=True, text=True)
    with pytest.raises(StorageMissing, match="is a copy of the store at PostgreSQL cluster"):
        run_script(COUNTER, copy, executor="inline", steps=16)
    assert files(shared) == before
    code, said = cli(capsys, "detach", copy, "--checkpoints", tmp_path / "own")
    assert code == 0, said
    run_script(COUNTER, copy, executor="inline", steps=16)
    run_script(COUNTER, original, executor="inline", steps=16)
    for url, folder in ((original, shared), (copy, tmp_path / "own")):
        db = open_store(url)
        assert all(m.step == 16 and (folder / m.checkpoint.key).is_file()
                   for m in db.members())
        db.close()
