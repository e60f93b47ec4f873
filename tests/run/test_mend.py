"""Mending a run that went wrong: retry failed members after a fix, refuse a resume
whose script changed, extend a finished run, delete a run to start afresh."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from support.paths import COUNTER

from populace.cli import main
from populace.mend import delete
from populace.store import StoreError, open_store

INLINE = ["--executor", "inline", "--quiet"]


def _run(store: Path, *flags: str, script: Path = COUNTER) -> int:
    return main(["run", str(script), "--store", str(store), *INLINE, *flags])


def _members(store: Path) -> list[tuple[str, int]]:
    db = open_store(store)
    try:
        return [(m.status, m.step) for m in db.members()]
    finally:
        db.close()


def _no_result_twice(store: Path) -> None:
    db = open_store(store)
    try:
        counts = Counter((r.member, r.start, r.step) for r in db.results())
    finally:
        db.close()
    assert [k for k, n in counts.items() if n > 1] == []


def test_failed_members_train_again_after_a_fix(tmp_path, monkeypatch, capsys):
    store = tmp_path / "run.db"
    monkeypatch.setenv("COUNTER_FAIL_ABOVE", "0")  # a bug in step: every member fails
    assert _run(store, "--steps", "8") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"`populace retry sqlite:///{store}` makes them train again" in err
    assert [status for status, _ in _members(store)] == ["failed"] * 4
    # the same command again, still broken: the run is still failed, nothing retried
    assert _run(store, "--steps", "8") == 1
    monkeypatch.delenv("COUNTER_FAIL_ABOVE")  # the fix
    assert main(["retry", str(store)]) == 0
    assert "member(s) 0, 1, 2, 3 will train again" in capsys.readouterr().out
    assert [status for status, _ in _members(store)] == ["ready"] * 4
    assert _run(store, "--steps", "8") == 0
    assert _members(store) == [("done", 8)] * 4
    db = open_store(store)
    retried = [e for e in db.events() if e.kind == "retry"]
    assert [e.member for e in retried] == [0, 1, 2, 3]
    assert all(m.error is None for m in db.members())


def test_retry_names_members_that_did_not_fail(tmp_path, capsys):
    store = tmp_path / "run.db"
    assert _run(store, "--steps", "4") == 0
    assert main(["retry", str(store), "--member", "2"]) == 2
    assert "member(s) 2 of the run" in capsys.readouterr().err
    assert main(["retry", str(store)]) == 0
    assert "nothing to retry" in capsys.readouterr().out


def test_status_shows_each_failed_members_error(tmp_path, monkeypatch, capsys):
    store = tmp_path / "run.db"
    monkeypatch.setenv("COUNTER_FAIL_ABOVE", "0.5")
    assert _run(store, "--steps", "4", "--exploit", "none") == 0
    capsys.readouterr()
    assert main(["status", str(store)]) == 0
    out = capsys.readouterr().out
    failed = [m for m in open_store(store).members() if m.status == "failed"]
    assert failed, "the counter's x draws should put a member above 0.5"
    assert "error" in out and out.count("RuntimeError: x=") == len(failed)


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The command in a process of its own, which imports the script as it is now."""
    return subprocess.run([sys.executable, "-m", "populace.cli", *args], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "300"})


def test_a_resume_whose_script_changed_is_refused_naming_what_differs(tmp_path):
    store = tmp_path / "run.db"
    script = tmp_path / "counter.py"
    script.write_text(COUNTER.read_text())
    run = ["run", str(script), "--store", str(store), *INLINE, "--steps", "4"]
    assert _cli(*run).returncode == 0
    source = COUNTER.read_text()
    script.write_text(source.replace('space = {"x": Float(0.0, 1.0)}',
                                     'space = {"x": Float(0.0, 2.0), "h2": Float(0.0, 1.0)}'))
    done = _cli(*run)
    assert done.returncode == 2
    assert "hparams added: h2" in done.stderr
    assert "hparam 'x' was" in done.stderr and '"high": 2.0' in done.stderr
    script.write_text(source.replace("class Counter(Trainable)", "class Renamed(Trainable)"))
    done = _cli(*run)
    assert done.returncode == 2
    assert "its trainable is Renamed, the run's is Counter" in done.stderr
    # a worker joining with the changed script is refused the same way
    done = _cli("worker", "--store", str(store), "--wait", "0")
    assert done.returncode == 2 and "its trainable is Renamed" in done.stderr


def test_a_finished_run_trains_on_with_more_steps(tmp_path, capsys):
    store = tmp_path / "run.db"
    assert _run(store, "--steps", "8") == 0
    assert _members(store) == [("done", 8)] * 4
    assert _run(store, "--steps", "16") == 0
    assert "trains on from 8 to 16 steps (4 finished member(s) ready again)" in \
        capsys.readouterr().err
    assert _members(store) == [("done", 16)] * 4
    assert open_store(store).config().run["steps"] == 16
    _no_result_twice(store)
    # the segments after step 8 start from the members' step-8 checkpoints
    results = open_store(store).results()
    assert sorted(r.start for r in results if r.step == 12) == [8] * 4
    assert _run(store, "--steps", "12") == 2
    assert "steps=16; got steps=12 (steps can only grow)" in capsys.readouterr().err


def test_delete_removes_the_store_and_its_checkpoints(tmp_path, capsys):
    store = tmp_path / "run.db"
    checkpoints = tmp_path / "run.checkpoints"
    assert _run(store, "--steps", "8") == 0
    assert any(checkpoints.rglob("*.ckpt"))
    assert main(["delete", str(store)]) == 2  # not a terminal: it asks for --yes
    assert "--yes" in capsys.readouterr().err
    assert store.exists()
    assert main(["delete", str(store), "--yes"]) == 0
    assert "checkpoint file(s)" in capsys.readouterr().out
    assert not store.exists() and not checkpoints.exists()
    assert main(["delete", str(store), "--yes"]) == 2  # nothing left to delete


def test_delete_and_overwrite_take_the_report_along_and_keep_the_replay(tmp_path, capsys):
    """A report left beside a new run under the same name would be taken for its own; a
    replay is a run of its own, so it stays, and the message says how to delete it."""
    store, report = tmp_path / "run.db", tmp_path / "run.report"
    assert _run(store, "--steps", "8") == 0
    assert main(["report", str(store)]) == 0
    assert (report / "report.html").is_file()
    assert _run(store, "--steps", "4", "--overwrite") == 0
    assert not report.exists()
    assert main(["report", str(store)]) == 0
    assert main(["replay", str(store), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["delete", str(store), "--yes"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"and its report {report}" in out and not report.exists()
    replayed = tmp_path / "run.replay.db"
    assert f"kept {replayed}, a replay of it" in out and replayed.is_file()


def test_overwrite_starts_a_new_run_in_the_same_store(tmp_path, capsys):
    store = tmp_path / "run.db"
    assert _run(store, "--steps", "8") == 0
    first_run = open_store(store).meta("run")
    assert _run(store, "--steps", "4") == 2  # a different run: refused without --overwrite
    assert _run(store, "--steps", "4", "--overwrite") == 0
    assert "deleted the run in" in capsys.readouterr().err
    db = open_store(store)
    assert db.meta("run") != first_run
    assert [(m.status, m.step) for m in db.members()] == [("done", 4)] * 4
    assert max(r.step for r in db.results()) == 4


def test_delete_refuses_a_run_that_a_worker_trains(tmp_path):
    store = tmp_path / "run.db"
    assert _run(store, "--steps", "8") == 0
    db = open_store(store)
    db.extend(16)  # its members ready again, as a resume with more steps makes them
    assert db.claim("worker-1", 600.0) is not None
    with pytest.raises(StoreError, match="training members 0: stop its workers first"):
        delete(store)
    assert store.exists()
    db.release("worker-1", 0)
    assert delete(store) > 0 and not store.exists()


def test_a_run_that_never_trained_starts_again_with_changed_settings(tmp_path, capsys):
    """A loop whose first report holds `score` and whose later ones only `accuracy`
    passes the function's preflight (its first report), then fails every member at its
    first ready point. The run trained nothing, so the fixed command starts it again."""
    import populace

    def train(member):
        torch = pytest.importorskip("torch")
        member.register({"model": torch.nn.Linear(1, 1)}, ignore=("x",))
        while member.training:
            first = {"score": member.hparams["x"]} if member.step == 0 else {}
            member.report({**first, "accuracy": member.hparams["x"]})

    space = {"x": populace.Float(0.0, 1.0)}
    store = tmp_path / "fn.db"
    settings = dict(store=store, executor="inline", progress=False, population=2, steps=4,
                    ready_steps=2)
    with pytest.raises(populace.RunFailed, match="set score='accuracy'"):
        populace.run(train, space, **settings)
    capsys.readouterr()
    result = populace.run(train, space, score="accuracy", **settings)
    assert "never trained a segment" in capsys.readouterr().err
    assert [m.status for m in result.members] == ["done", "done"]
    # a run that trained keeps refusing contradicting settings
    with pytest.raises(populace.ConfigError, match="score='accuracy'; got score='loss'"):
        populace.run(train, space, score="loss", **settings)
