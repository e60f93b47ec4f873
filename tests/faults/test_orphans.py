"""Files no checkpoint row names (a worker killed between a write and its report) are swept
by a resumed run and by `populace gc`; a storage that is not there refuses to train."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.paths import COUNTER

import populace
from populace.checkpoints import CheckpointStorage, open_storage
from populace.cli import main
from populace.collect import grace_for, orphans
from populace.script import load_script
from populace.store import open_store


def run(tmp_path: Path, **settings):
    s = load_script(COUNTER)
    return populace.run(s.trainable, s.space, store=tmp_path / "o.db", script=COUNTER,
                        progress=False, **{**s.config, "executor": "inline", **settings})


def plant(storage: CheckpointStorage, age: float) -> tuple[str, str]:
    """An unrecorded checkpoint and a leftover temp file, `age` seconds old."""
    ref = storage.write(lambda path: path.write_bytes(os.urandom(32)))
    temp = storage.root / f".tmp-{os.urandom(12).hex()}.ckpt"
    temp.write_bytes(b"half written")
    then = time.time() - age
    for path in (storage.root / ref.key, temp):
        os.utime(path, (then, then))
    return ref.key, temp.name


def test_a_resumed_run_sweeps_what_a_killed_worker_left(tmp_path, capsys):
    run(tmp_path)
    store = open_store(tmp_path / "o.db")
    storage = open_storage(store.config().checkpoints)
    live = store.checkpoint_keys()
    planted = plant(storage, age=5)
    run(tmp_path)  # resumes the (finished) run
    names = {name for name, _ in storage.files()}
    assert names == live  # the planted files are gone, every live one is still there
    assert not set(planted) & names
    assert "removed 2 checkpoint file(s)" in capsys.readouterr().err
    store.close()


def test_gc_keeps_named_and_young_files_while_members_train(tmp_path, capsys):
    run(tmp_path)
    store = open_store(tmp_path / "o.db")
    storage = open_storage(store.config().checkpoints)
    live = store.checkpoint_keys()
    old, old_temp = plant(storage, age=10_000)
    young, young_temp = plant(storage, age=1)
    assert grace_for(store) == 0  # the run is over: no worker can report any more
    # a member a worker holds: its write in flight may be a young, unnamed file
    with store.driver.write() as cur:
        cur.execute("UPDATE members SET status = 'ready' WHERE id = 0")
    assert store.claim("w", 60.0) is not None
    assert grace_for(store) == 120.0
    assert orphans(store, storage, grace_for(store)) == sorted([old, old_temp])
    assert main(["gc", str(tmp_path / "o.db"), "--dry-run"]) == 0
    assert {name for name, _ in storage.files()} == live | {old, old_temp, young, young_temp}
    assert main(["gc", str(tmp_path / "o.db")]) == 0
    out = capsys.readouterr().out
    assert f"removed {old}" in out and "removed 2 file(s)" in out and "grace 120 s" in out
    assert {name for name, _ in storage.files()} == live | {young, young_temp}
    store.close()


def test_a_run_whose_checkpoint_folder_is_gone_refuses_to_train(tmp_path, capsys):
    run(tmp_path, steps=8)
    store = open_store(tmp_path / "o.db")
    folder = Path(store.config().checkpoints)
    # as if the run had been killed mid-way: members still to train
    with store.driver.write() as cur:
        cur.execute("UPDATE members SET status = 'ready'")
    results = len(store.results())
    shutil.move(folder, tmp_path / "elsewhere")  # the shared folder is not mounted here
    code = main(["run", str(COUNTER), "--store", str(tmp_path / "o.db"), "--quiet",
                 "--executor", "inline", "--workers", "1", "--steps", "8"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert f"the run's checkpoint storage {folder} is not there on machine" in err
    assert os.uname().nodename in err and "nothing was trained" in err
    assert len(store.results()) == results and store.events("recover") == []
    assert main(["worker", "--store", str(tmp_path / "o.db")]) == 2
    assert "is not there on machine" in capsys.readouterr().err
    shutil.move(tmp_path / "elsewhere", folder)  # mounted again: it trains on
    assert main(["worker", "--store", str(tmp_path / "o.db")]) == 0
    assert store.events("recover") == []
    store.close()


def test_two_runs_cannot_share_a_checkpoint_folder(tmp_path):
    shared = tmp_path / "shared"
    run(tmp_path, checkpoints=shared)
    s = load_script(COUNTER)
    with pytest.raises(populace.ConfigError, match="hold another run's checkpoints: give "
                       "each run a checkpoint folder of its own"):
        populace.run(s.trainable, s.space, store=tmp_path / "other.db", script=COUNTER,
                     checkpoints=shared, progress=False, **{**s.config, "executor": "inline"})


def test_a_postgresql_run_without_checkpoints_says_they_stay_on_this_machine(tmp_path):
    from support.postgres import database_url

    url = database_url("local_checkpoints")
    done = subprocess.run(
        [sys.executable, "-m", "populace.cli", "run", str(COUNTER), "--store", url,
         "--executor", "inline", "--workers", "1", "--steps", "4", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    err = " ".join(done.stderr.split())
    assert f"checkpoints go to {tmp_path / 'local_checkpoints.checkpoints'} on this machine" in err
    assert "a worker on another machine cannot reach them and will refuse to train" in err


def test_collect_is_the_command_and_gc_its_old_name(tmp_path, capsys):
    run(tmp_path)
    store = open_store(tmp_path / "o.db")
    storage = open_storage(store.config().checkpoints)
    planted = plant(storage, age=10_000)
    store.close()
    assert main(["collect", str(tmp_path / "o.db"), "--dry-run"]) == 0
    assert "would remove 2 file(s)" in capsys.readouterr().out
    assert main(["collect", str(tmp_path / "o.db")]) == 0
    assert not set(planted) & {name for name, _ in storage.files()}
    assert "removed 2 file(s)" in capsys.readouterr().out
    assert "old name" in _help(["gc", "--help"], capsys)


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        main(argv)
    return capsys.readouterr().out
