"""Scale out: one example on SQLite and PostgreSQL with `populace worker` processes
started from other folders, and on a local Ray cluster.

PostgreSQL is a real server started by tests/support/postgres.py; Ray starts a local
cluster of its own.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from support.paths import COUNTER
from support.postgres import database_url

import populace
from populace import stopping
from populace.cli import main
from populace.errors import StorageFault
from populace.script import load_script
from populace.store import open_store

POPULACE = [sys.executable, "-m", "populace.cli"]


def _store_url(backend: str, tmp_path: Path, name: str) -> str:
    return str(tmp_path / f"{name}.db") if backend == "sqlite" else database_url(name)


def _check_finished(url: str, steps: int) -> list:
    """Every member done at `steps`, and no result stored twice."""
    store = open_store(url)
    try:
        members, results = store.members(), store.results()
    finally:
        store.close()
    assert [(m.status, m.step) for m in members] == [("done", steps)] * len(members)
    twice = [k for k, n in Counter((r.member, r.start, r.step) for r in results).items() if n > 1]
    assert twice == []
    return results


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_separate_workers_from_other_folders_train_one_run(tmp_path, backend):
    url = _store_url(backend, tmp_path, "separate")
    folders = [tmp_path / name for name in ("head", "node1", "node2")]
    for folder in folders:
        folder.mkdir()
    env = {**os.environ, "COUNTER_SLEEP": "0.01"}
    # the head creates the run and waits; only the two workers train
    head = subprocess.Popen(
        [*POPULACE, "run", str(COUNTER), "--store", url, "--workers", "0", "--steps", "24",
         "--checkpoints", str(tmp_path / "checkpoints"), "--quiet"],
        cwd=folders[0], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    workers = [subprocess.Popen([*POPULACE, "worker", "--store", url], cwd=folder, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for folder in folders[1:]]
    outputs = [p.communicate(timeout=180)[0] for p in (head, *workers)]
    assert [p.returncode for p in (head, *workers)] == [0, 0, 0], outputs
    assert "best member" in outputs[0]
    trained = [int(re.search(r"\((\d+) segments trained", out)[1]) for out in outputs[1:]]
    assert all(n > 0 for n in trained), outputs  # both workers took part
    results = _check_finished(url, 24)
    assert sum(trained) == len(results)


def _head(script: Path, store: Path) -> subprocess.Popen:
    """`populace run --workers 0`: creates the run in `store`, trains nothing itself."""
    return subprocess.Popen(
        [*POPULACE, "run", str(script), "--store", str(store), "--workers", "0", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_until(store: Path, condition, timeout: float = 60) -> None:
    """Until `store` holds a run whose members meet `condition`."""
    deadline = time.monotonic() + timeout
    while True:
        if store.exists():
            db = open_store(store)
            try:
                if db.exists() and condition(db.members()):
                    return
            finally:
                db.close()
        assert time.monotonic() < deadline, f"{store}: condition not met in {timeout} s"
        time.sleep(0.1)


def test_a_worker_waits_for_the_run_then_names_what_is_missing(tmp_path, capsys):
    started = time.monotonic()
    assert main(["worker", "--store", str(tmp_path / "none.db"), "--wait", "0.6"]) == 2
    assert time.monotonic() - started >= 0.6
    err = capsys.readouterr().err
    assert "holds no run" in err and "--workers 0" in err


def test_a_worker_without_the_runs_script_is_told_to_give_it(tmp_path, capsys):
    script = tmp_path / "moved.py"
    script.write_text(COUNTER.read_text())
    store = tmp_path / "run.db"
    # create the run without training it: the head of a cluster run, stopped at once
    head = _head(script, store)
    _wait_until(store, lambda members: True)
    head.send_signal(signal.SIGINT)
    head.communicate(timeout=60)
    script.unlink()
    handlers = [signal.getsignal(s) for s in stopping.HANDLED]
    assert main(["worker", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "moved.py" in err and "--script" in err
    # given the script's new place, the worker trains the run to its end
    assert main(["worker", "--store", str(store), "--script", str(COUNTER)]) == 0
    _check_finished(str(store), 20)
    # called in this process, the command leaves its stop handlers behind for no one
    assert [signal.getsignal(s) for s in stopping.HANDLED] == handlers


def test_a_worker_trains_a_run_whose_head_stopped_before_marking_its_checkpoints(tmp_path):
    """The head was stopped between creating the run and marking its checkpoint folder
    (seen in CI): the run has trained nothing, so the worker marks the folder itself."""
    from populace.config import RunConfig
    from populace.store import RunRecord
    from populace.strategies import space_to_dict

    s = load_script(COUNTER)
    store = open_store(tmp_path / "run.db")
    store.create(RunRecord(run=RunConfig(**{**s.config, "steps": 8}).to_dict(),
                           space=space_to_dict(s.space), checkpoints=str(tmp_path / "c"),
                           trainable="counter:Counter", script=str(COUNTER)),
                 [{"x": 0.1 * (i + 1)} for i in range(4)])
    store.close()
    assert main(["worker", "--store", str(tmp_path / "run.db")]) == 0
    _check_finished(str(tmp_path / "run.db"), 8)


def test_a_terminated_worker_gives_its_member_back(tmp_path):
    store = tmp_path / "run.db"
    head = _head(COUNTER, store)
    worker = subprocess.Popen([*POPULACE, "worker", "--store", str(store)],
                              env={**os.environ, "COUNTER_SLEEP": "5"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_until(store, lambda members: any(m.status == "running" for m in members))
    worker.send_signal(signal.SIGTERM)
    worker.communicate(timeout=30)
    members = open_store(store).members()
    # given back at once, not after its 60 s lease: another worker can take it now
    assert [m.status for m in members] == ["ready"] * 4
    assert all(m.step == 0 for m in members)
    head.send_signal(signal.SIGINT)
    head.communicate(timeout=60)


@pytest.fixture
def ray_cluster(tmp_path, monkeypatch):
    """A local Ray cluster of 2 CPUs, which the executor joins instead of starting one.

    Its worker processes inherit the counter's settings from this process.
    """
    import ray

    monkeypatch.setenv("COUNTER_PIDS", str(tmp_path / "pids"))
    monkeypatch.setenv("COUNTER_SLEEP", "0.02")
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def _ray_run(tmp_path: Path, **settings) -> set[int]:
    """Train the counter on Ray; the processes that trained, other than this one."""
    pids = tmp_path / "pids"
    pids.mkdir()
    s = load_script(COUNTER)
    result = populace.run(s.trainable, s.space, store=tmp_path / "ray.db", script=COUNTER,
                          progress=False, **{**s.config, "executor": "ray", **settings})
    _check_finished(str(tmp_path / "ray.db"), 20)
    assert result.best.step == 20
    # this process only built a member in the preflight
    return {int(p.name) for p in pids.iterdir()} - {os.getpid()}


def test_a_run_on_a_local_ray_cluster(tmp_path, ray_cluster):
    assert len(_ray_run(tmp_path, workers=2)) == 2


def test_ray_workers_get_the_cpus_they_ask_for(tmp_path, ray_cluster):
    # two CPUs each on a 2-CPU cluster: one worker at a time, and the first trains it all
    assert len(_ray_run(tmp_path, workers=2, cpus_per_worker=2)) == 1


@pytest.fixture
def disk_full(monkeypatch):
    """Every checkpoint the counter saves once trained fails with ENOSPC (asked for before
    `ray_cluster`, whose worker processes inherit it)."""
    monkeypatch.setenv("COUNTER_DISK_FULL", "1")


def test_a_storage_fault_on_ray_stops_the_run_with_the_storages_message(
        tmp_path, disk_full, ray_cluster):
    """As on the local executor: exit 75 naming the storage, not "workers died"."""
    (tmp_path / "pids").mkdir()
    s = load_script(COUNTER)
    with pytest.raises(StorageFault, match=r"checkpoint storage .* No space left on device"):
        populace.run(s.trainable, s.space, store=tmp_path / "ray.db", script=COUNTER,
                     progress=False, **{**s.config, "executor": "ray", "workers": 2})
    store = open_store(tmp_path / "ray.db")
    try:
        assert store.events("failed") == []
        assert all(m.status != "failed" and m.error is None for m in store.members())
    finally:
        store.close()


@pytest.fixture
def hang_once(tmp_path, monkeypatch):
    """The first member to reach its third step hangs there, once (before `ray_cluster`)."""
    (tmp_path / "hang").mkdir()
    monkeypatch.setenv("COUNTER_HANG_ONCE", str(tmp_path / "hang"))


def test_a_ray_task_whose_segment_timed_out_is_replaced(tmp_path, hang_once, ray_cluster):
    """Its process ended (exit status 124) with its segment recorded as timed out: a task
    takes its place, as a local worker process does, so one worker still finishes."""
    (tmp_path / "pids").mkdir()
    s = load_script(COUNTER)
    result = populace.run(s.trainable, s.space, store=tmp_path / "ray.db", script=COUNTER,
                          progress=False, **{**s.config, "executor": "ray", "workers": 1,
                                             "segment_timeout": 3.0, "retries": 1})
    assert [m.status for m in result.members] == ["done"] * 4
    store = open_store(tmp_path / "ray.db")
    try:
        assert len(store.events("timeout")) == 1
    finally:
        store.close()


@pytest.mark.parametrize("executor, url", [
    ("local", "file://{tmp}/shared/checkpoints"),  # worker processes share it
    ("inline", "memory://populace-test{tmp}"),  # an fsspec file system of this process
])
def test_checkpoint_storage_by_url(tmp_path, executor, url):
    url = url.format(tmp=tmp_path)
    s = load_script(COUNTER)
    result = populace.run(s.trainable, s.space, store=tmp_path / "u.db", script=COUNTER,
                          checkpoints=url, progress=False,
                          **{**s.config, "executor": executor, "workers": 2})
    store = open_store(tmp_path / "u.db")
    assert store.config().checkpoints == url
    assert store.events("exploit"), "copies load the donor's checkpoint from the URL"
    _check_finished(str(tmp_path / "u.db"), 20)
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    stored = {c.key for c in store.checkpoints()}
    assert stored and all(fs.exists(f"{root}/{key}") for key in stored)
    assert str(result.checkpoint).startswith(url.rstrip("/") + "/")
    assert not (tmp_path / "u.checkpoints").exists()  # nothing went to the default folder


def test_an_unreachable_postgresql_store_is_a_clear_error_without_the_password(capsys):
    url = "postgresql://me:secret@127.0.0.1:1/runs"  # nothing listens on port 1
    assert main(["status", url]) == 2
    err = capsys.readouterr().err
    assert "cannot open the store postgresql://me:***@127.0.0.1:1/runs" in err
    assert "secret" not in err
